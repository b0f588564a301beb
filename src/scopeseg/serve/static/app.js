// scopeseg web app: Segment, Data and Results pages over the JSON API. No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const S = (window.scopeseg = {
  status: null, media: null, frame: 0, model: null, object: 1, tool: "box",
  prompts: {},          // "frame:object" -> {box, points, labels}
  last: null,           // last /api/segment answer (tests read it)
  lastRoundTrip: null,  // ms from the end of a gesture to the new overlay shown
  browse: { root: 0, path: "" },
  ds: null, dsOffset: 0, result: null,
});

// ------------------------------------------------------------------ helpers
async function api(path, opts = {}) {
  const init = { method: opts.method || (opts.body !== undefined ? "POST" : "GET"), headers: {} };
  if (opts.raw !== undefined) { init.body = opts.raw; init.method = "POST"; }
  else if (opts.body !== undefined) { init.body = JSON.stringify(opts.body); init.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: `HTTP ${r.status}` }; }
  if (!r.ok) { const err = new Error(data.error || `HTTP ${r.status}`); err.status = r.status; throw err; }
  return data;
}
function say(text, error = false) { const m = $("message"); m.textContent = text; m.className = error ? "error" : ""; }
function fail(e) { say(e.message || String(e), true); }
function qs(params) { return new URLSearchParams(params).toString(); }
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function fmt(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : (v === null || v === undefined ? "" : String(v)); }

// ------------------------------------------------------------------ pages
function showPage() {
  const page = (location.hash || "#segment").slice(1).split("/")[0];
  for (const p of ["segment", "data", "results"]) {
    $("page-" + p).hidden = p !== page;
    $("nav-" + p).classList.toggle("active", p === page);
  }
  if (page === "data") loadDatasets().catch(fail);
  if (page === "results") loadResults().catch(fail);
}
window.addEventListener("hashchange", showPage);

// ------------------------------------------------------------------ status, files
async function init() {
  S.status = await api("/api/status");
  for (const sel of [$("root-select"), $("save-root")]) {
    sel.innerHTML = "";
    S.status.roots.forEach((r) => sel.append(el("option", { value: r.index, text: r.name })));
  }
  const ms = $("model-select");
  ms.innerHTML = "";
  S.status.models.forEach((m) => ms.append(el("option", { value: m.name, text: `${m.name} (${m.family})` })));
  S.model = localStorage.getItem("scopeseg.model");
  if (!S.status.models.some((m) => m.name === S.model)) S.model = S.status.models.length ? S.status.models[0].name : null;
  if (S.model) ms.value = S.model;
  const pm = $("propagate-model");
  pm.innerHTML = "";
  S.status.models.filter((m) => m.video).forEach((m) => pm.append(el("option", { value: m.name, text: `${m.name} (${m.family})` })));
  modelChanged();
  await browse(0, "");
  showPage();
  const mid = localStorage.getItem("scopeseg.media");
  if (mid) {
    try { await setMedia(await api(`/api/media/${mid}`), Number(localStorage.getItem("scopeseg.frame") || 0)); }
    catch (e) { localStorage.removeItem("scopeseg.media"); }
  }
  pollJobs();
}

async function browse(root, path) {
  const d = await api("/api/files?" + qs({ root, path }));
  S.browse = { root, path };
  $("file-path").textContent = "/" + path;
  const ul = $("file-list");
  ul.innerHTML = "";
  for (const e of d.entries) {
    const li = el("li", { title: e.path }, e.name, el("span", { class: "kind", text: e.kind }));
    li.addEventListener("click", () => {
      if (e.kind === "image" || e.kind === "video") openFile(root, e.path).catch(fail);
      else browse(root, e.path).catch(fail);
    });
    ul.append(li);
  }
}
$("root-select").addEventListener("change", (ev) => browse(Number(ev.target.value), "").catch(fail));
$("up-btn").addEventListener("click", () => {
  const parts = S.browse.path.split("/").filter(Boolean); parts.pop();
  browse(S.browse.root, parts.join("/")).catch(fail);
});

async function openFile(root, path) {
  say("opening " + path + " ...");
  await setMedia(await api("/api/open", { body: { root, path } }), 0);
  say("opened " + path);
}
$("upload-input").addEventListener("change", async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  try {
    say("uploading " + f.name + " ...");
    await setMedia(await api("/api/upload?" + qs({ name: f.name }), { raw: f }), 0);
    say("uploaded " + f.name);
  } catch (e) { fail(e); }
  ev.target.value = "";
});

// ------------------------------------------------------------------ media and frames
async function setMedia(media, frame) {
  S.media = media;
  localStorage.setItem("scopeseg.media", media.id);
  $("media-title").textContent = `${media.name} — ${media.width}×${media.height}, ${media.frames} frame(s)` +
    (media.truncated ? " (the first ones: max_frames)" : "") + ` (${media.source})`;
  $("video-controls").hidden = media.frames < 2;
  $("frame-slider").max = media.frames - 1;
  $("save-name").value = $("save-name").value || (media.name.replace(/\.[^.]*$/, "") + "-labels");
  renderObjects();
  updatePropagate();
  await showFrame(Math.min(frame, media.frames - 1));
}

function frameLoaded(img) { return new Promise((res, rej) => { if (img.complete && img.naturalWidth) res(); else { img.onload = () => res(); img.onerror = () => rej(new Error("image failed to load")); } }); }

async function showFrame(i) {
  if (!S.media) return;
  S.frame = i;
  localStorage.setItem("scopeseg.frame", String(i));
  $("frame-slider").value = i;
  $("frame-label").textContent = `frame ${i + 1} / ${S.media.frames}`;
  const img = $("frame-img");
  img.src = `/api/media/${S.media.id}/frame/${i}`;
  await frameLoaded(img);
  const cv = $("draw");
  cv.width = img.naturalWidth; cv.height = img.naturalHeight;
  const labels = await api(`/api/media/${S.media.id}/labels/${i}`);
  applyLabels(labels);
  drawPrompts();
  const m = currentModel();
  if (m && m.family === "promptable") api("/api/embed", { body: { media: S.media.id, frame: i, model: m.name } }).catch(fail);
}
$("frame-slider").addEventListener("change", (ev) => showFrame(Number(ev.target.value)).catch(fail));
$("prev-btn").addEventListener("click", () => S.frame > 0 && showFrame(S.frame - 1).catch(fail));
$("next-btn").addEventListener("click", () => S.media && S.frame < S.media.frames - 1 && showFrame(S.frame + 1).catch(fail));

function applyLabels(d) {
  $("overlay-img").src = d.overlay;
  for (const [oid, o] of Object.entries(d.objects)) {
    const key = `${d.frame}:${oid}`;
    if (o.source === "prompt") S.prompts[key] = { box: o.box, points: o.points || [], labels: o.labels || [] };
  }
  const n = Object.keys(d.objects).length;
  $("seg-info").textContent = `${n} object(s) on this frame${d.accepted ? " — accepted" : ""}`;
  $("accept-btn").textContent = d.accepted ? "Un-accept frame" : "Accept frame";
  $("accept-btn").dataset.accepted = d.accepted ? "1" : "";
}

// ------------------------------------------------------------------ models
function currentModel() { return S.status && S.status.models.find((m) => m.name === S.model); }
function modelChanged() {
  S.model = $("model-select").value || null;
  if (S.model) localStorage.setItem("scopeseg.model", S.model);
  const m = currentModel();
  const dense = m && m.family !== "promptable";
  $("classes-row").hidden = !dense;
  $("classes-input").disabled = !(m && m.editable_classes);
  if (m) $("classes-input").value = (m.classes || []).join(", ");
  if (m && m.video) $("propagate-model").value = m.name;
  updatePropagate();
}
$("model-select").addEventListener("change", modelChanged);
function updatePropagate() { $("propagate-btn").disabled = !(S.media && S.media.frames > 1 && $("propagate-model").value); }

$("run-model-btn").addEventListener("click", async () => {
  if (!S.media) return say("open an image first", true);
  try {
    const classes = $("classes-input").value.split(",").map((s) => s.trim()).filter(Boolean);
    const d = await api("/api/predict", { body: { media: S.media.id, frame: S.frame, model: S.model, classes } });
    S.media = await api(`/api/media/${S.media.id}`);
    renderObjects(); applyLabels(d);
    say(`model: ${Object.keys(d.objects).length} object(s) in ${d.timing.total_ms} ms`);
  } catch (e) { fail(e); }
});

// ------------------------------------------------------------------ objects
function renderObjects() {
  const ul = $("object-list");
  ul.innerHTML = "";
  if (!S.media) return;
  for (const o of S.media.objects) {
    const sw = el("span", { class: "swatch" });
    sw.style.background = `rgb(${o.color.join(",")})`;
    const li = el("li", { "data-id": o.id }, sw, `${o.id}: ${o.name}`);
    if (o.id === S.object) li.classList.add("selected");
    li.addEventListener("click", () => { S.object = o.id; renderObjects(); drawPrompts(); });
    li.addEventListener("dblclick", async () => {
      const name = prompt("class name of object " + o.id, o.name);
      if (name) { S.media = await api(`/api/media/${S.media.id}/objects`, { body: { id: o.id, name } }); renderObjects(); }
    });
    ul.append(li);
  }
}
$("add-object-btn").addEventListener("click", async () => {
  if (!S.media) return;
  try {
    S.media = await api(`/api/media/${S.media.id}/objects`, { body: { name: "object" } });
    S.object = Math.max(...S.media.objects.map((o) => o.id));
    renderObjects(); drawPrompts();
  } catch (e) { fail(e); }
});

// ------------------------------------------------------------------ drawing and prompts
document.querySelectorAll("input[name=tool]").forEach((r) => r.addEventListener("change", () => { S.tool = r.value; }));
function toImage(ev) {
  const cv = $("draw"), r = cv.getBoundingClientRect();
  const x = ((ev.clientX - r.left) * cv.width) / r.width, y = ((ev.clientY - r.top) * cv.height) / r.height;
  const cl = (v, hi) => Math.round(Math.min(Math.max(v, 0), hi) * 10) / 10;
  return [cl(x, cv.width), cl(y, cv.height)];
}
function promptOf() { const k = `${S.frame}:${S.object}`; return (S.prompts[k] = S.prompts[k] || { box: null, points: [], labels: [] }); }
function drawPrompts(drag) {
  const cv = $("draw"), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const lw = Math.max(1, cv.width / 400);
  const p = S.prompts[`${S.frame}:${S.object}`];
  const box = drag || (p && p.box);
  if (box) { g.strokeStyle = "#00e5ff"; g.lineWidth = 2 * lw; g.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]); }
  if (p) p.points.forEach((pt, i) => {
    g.beginPath(); g.arc(pt[0], pt[1], 5 * lw, 0, 2 * Math.PI);
    g.fillStyle = p.labels[i] ? "#2ecc40" : "#ff4136"; g.fill(); g.strokeStyle = "#fff"; g.lineWidth = lw; g.stroke();
  });
}
let dragStart = null;
$("draw").addEventListener("mousedown", (ev) => {
  if (!S.media) return;
  if (S.tool === "box") { dragStart = toImage(ev); ev.preventDefault(); }
});
$("draw").addEventListener("mousemove", (ev) => {
  if (!dragStart) return;
  const [x, y] = toImage(ev);
  drawPrompts([Math.min(dragStart[0], x), Math.min(dragStart[1], y), Math.max(dragStart[0], x), Math.max(dragStart[1], y)]);
});
window.addEventListener("mouseup", (ev) => {
  if (!dragStart) return;
  const [x, y] = toImage(ev), s = dragStart;
  dragStart = null;
  const box = [Math.min(s[0], x), Math.min(s[1], y), Math.max(s[0], x), Math.max(s[1], y)];
  if (box[2] - box[0] < 2 || box[3] - box[1] < 2) { drawPrompts(); return; }
  const p = promptOf();
  p.box = box; p.points = []; p.labels = [];
  runPrompt(performance.now());
});
$("draw").addEventListener("click", (ev) => {
  if (!S.media || S.tool === "box") return;
  const p = promptOf();
  p.points.push(toImage(ev)); p.labels.push(S.tool === "pos" ? 1 : 0);
  runPrompt(performance.now());
});

let inflight = null, queued = null;
async function runPrompt(t0) {
  const m = currentModel();
  if (!m || m.family !== "promptable") { say("choose a promptable model to draw prompts", true); return; }
  drawPrompts();
  if (inflight) { queued = t0; return; }  // the newest prompt runs once the one in flight is back
  const p = promptOf();
  inflight = api("/api/segment", { body: { media: S.media.id, frame: S.frame, model: m.name, object: S.object, box: p.box, points: p.points, labels: p.labels } });
  try {
    const d = await inflight;
    S.last = d;
    const ov = $("overlay-img");
    const shown = new Promise((res) => { ov.onload = res; ov.onerror = res; });
    applyLabels(d);
    await shown;
    S.lastRoundTrip = performance.now() - t0;
    say(`mask in ${S.lastRoundTrip.toFixed(0)} ms (server ${d.timing.total_ms} ms${d.timing.cached_embedding ? ", cached embedding" : ", image encoded"})`);
    document.body.dataset.segments = String(Number(document.body.dataset.segments || 0) + 1);
  } catch (e) { fail(e); }
  inflight = null;
  if (queued !== null) { const t = queued; queued = null; runPrompt(t); }
}

$("clear-btn").addEventListener("click", async () => {
  if (!S.media) return;
  for (const k of Object.keys(S.prompts)) if (k.startsWith(S.frame + ":")) delete S.prompts[k];
  try { applyLabels(await api("/api/clear", { body: { media: S.media.id, frame: S.frame } })); drawPrompts(); } catch (e) { fail(e); }
});
$("accept-btn").addEventListener("click", async () => {
  if (!S.media) return;
  try { applyLabels(await api("/api/accept", { body: { media: S.media.id, frame: S.frame, accepted: !$("accept-btn").dataset.accepted } })); } catch (e) { fail(e); }
});
$("propagate-btn").addEventListener("click", async () => {
  try {
    const job = await api("/api/jobs/propagate", { body: { media: S.media.id, model: $("propagate-model").value } });
    say("propagation started"); watchJob(job.id);
  } catch (e) { fail(e); }
});
$("save-btn").addEventListener("click", async () => {
  if (!S.media) return;
  try {
    const d = await api(`/api/media/${S.media.id}/save`, { body: { root: Number($("save-root").value), path: $("save-name").value, only_accepted: $("save-accepted").checked } });
    say(`saved ${d.frames} frame(s) to ${d.saved}`);
  } catch (e) { fail(e); }
});

// ------------------------------------------------------------------ jobs
const watched = new Set();
function watchJob(id) { watched.add(id); pollJobs(); }
let pollTimer = null;
async function pollJobs() {
  clearTimeout(pollTimer);
  let running = false;
  try {
    const d = await api("/api/jobs");
    const ul = $("job-list");
    ul.innerHTML = "";
    for (const j of d.jobs) {
      const active = j.status === "running" || j.status === "queued";
      running = running || active;
      const li = el("li", { "data-id": j.id, "data-status": j.status },
        el("span", { text: j.title }),
        el("progress", { max: Math.max(j.total, 1), value: j.done }),
        el("span", { text: `${j.done}/${j.total}` }),
        el("span", { class: "status-" + j.status, text: j.status + (j.error ? ": " + j.error : "") }),
        el("span", { class: "muted", text: j.message || "" }));
      if (active) li.append(el("button", { text: "Cancel", onclick: () => api(`/api/jobs/${j.id}/cancel`, { body: {} }).then(pollJobs).catch(fail) }));
      ul.append(li);
      if (!active && watched.has(j.id)) {
        watched.delete(j.id);
        if (j.kind === "propagate" && S.media && j.result.media === S.media.id) showFrame(S.frame).catch(fail);
        if (j.kind === "evaluate" && !$("page-results").hidden) loadResults().catch(fail);
      }
    }
  } catch (e) { fail(e); }
  pollTimer = setTimeout(pollJobs, running ? 500 : 3000);
}

// ------------------------------------------------------------------ data page
async function loadDatasets() {
  const d = await api("/api/datasets");
  const ul = $("dataset-list");
  ul.innerHTML = "";
  for (const x of d.datasets) {
    const li = el("li", { title: x.path }, x.path || x.name);
    li.addEventListener("click", () => { ul.querySelectorAll("li").forEach((l) => l.classList.remove("selected")); li.classList.add("selected"); openDataset(x.root, x.path).catch(fail); });
    ul.append(li);
  }
  if (!d.datasets.length) ul.append(el("li", { class: "muted", text: "no data sets under the roots" }));
}
async function openDataset(root, path) {
  const d = await api("/api/dataset?" + qs({ root, path }));
  S.ds = d;
  $("dataset-summary").innerHTML = "";
  $("dataset-summary").append(el("h3", { text: `${path}: ${d.images} images, ${d.annotations} annotations, ${d.videos.length} videos` }));
  const vf = $("video-filter"), cf = $("category-filter");
  vf.innerHTML = '<option value="">all</option>'; cf.innerHTML = '<option value="">all</option>';
  d.videos.forEach((v) => vf.append(el("option", { value: v.id, text: `${v.name} (${v.frames})` })));
  d.categories.forEach((c) => cf.append(el("option", { value: c.id, text: `${c.name} (${c.annotations})` })));
  $("problems").innerHTML = "";
  $("segment-video-btn").hidden = true;
  const pm = $("predict-model");
  pm.innerHTML = "";
  S.status.models.filter((m) => m.family === "semantic").forEach((m) => pm.append(el("option", { value: m.name, text: m.name })));
  $("predict-row").hidden = !pm.options.length;
  $("predict-out").value = path.replace(/\//g, "-") + "-predicted";
  await loadFrames(true);
}
$("predict-btn").addEventListener("click", async () => {
  if (!S.ds) return;
  try {
    const job = await api("/api/jobs/predict", { body: { model: $("predict-model").value, input: { root: S.ds.root, path: S.ds.path }, out: { root: S.ds.root, path: $("predict-out").value } } });
    say("prediction started"); watchJob(job.id);
  } catch (e) { fail(e); }
});
async function loadFrames(reset) {
  if (!S.ds) return;
  if (reset) { S.dsOffset = 0; $("thumbs").innerHTML = ""; }
  const p = { root: S.ds.root, path: S.ds.path, offset: S.dsOffset, limit: 48 };
  if ($("video-filter").value) p.video = $("video-filter").value;
  if ($("category-filter").value) p.category = $("category-filter").value;
  const d = await api("/api/dataset/frames?" + qs(p));
  for (const it of d.items) {
    const src = "/api/dataset/image?" + qs({ root: S.ds.root, path: S.ds.path, image_id: it.id, max_side: 240 });
    const fig = el("figure", { "data-id": it.id }, el("img", { src, alt: it.file_name, loading: "lazy" }), el("figcaption", { text: `${it.id}: ${it.file_name} (${it.annotations})` }));
    fig.addEventListener("click", () => showBig(it.id, it.file_name));
    $("thumbs").append(fig);
  }
  S.dsOffset += d.items.length;
  $("frame-count").textContent = `${S.dsOffset} of ${d.total} frames`;
  $("more-btn").hidden = S.dsOffset >= d.total;
}
async function segmentFromDataset(ref) {
  try {
    const media = await api("/api/open/dataset", { body: Object.assign({ root: S.ds.root, path: S.ds.path }, ref) });
    location.hash = "#segment";
    await setMedia(media, 0);
    say(`opened ${media.name} from ${S.ds.path} with its labels`);
  } catch (e) { fail(e); }
}
$("segment-video-btn").addEventListener("click", () => segmentFromDataset({ video: Number($("video-filter").value) }));
$("big-segment").addEventListener("click", () => segmentFromDataset({ image_id: Number($("big-view").dataset.id) }));
function showBig(id, name) {
  $("big-view").hidden = false;
  $("big-view").dataset.id = String(id);
  $("big-title").textContent = `image ${id}: ${name || ""}`;
  $("big-img").src = "/api/dataset/image?" + qs({ root: S.ds.root, path: S.ds.path, image_id: id });
  $("big-view").scrollIntoView();
}
$("big-close").addEventListener("click", () => { $("big-view").hidden = true; });
$("video-filter").addEventListener("change", () => { $("segment-video-btn").hidden = !$("video-filter").value; loadFrames(true).catch(fail); });
$("category-filter").addEventListener("change", () => loadFrames(true).catch(fail));
$("more-btn").addEventListener("click", () => loadFrames(false).catch(fail));
$("validate-btn").addEventListener("click", async () => {
  if (!S.ds) return;
  try {
    say("validating ...");
    const r = await api("/api/dataset/validate?" + qs({ root: S.ds.root, path: S.ds.path }));
    const box = $("problems");
    box.innerHTML = "";
    box.append(el("p", { text: `${r.errors} error(s), ${r.warnings} warning(s)` + (r.ok ? " — sound" : "") }));
    if (!r.problems.length) { say("validated"); return; }
    const t = el("table", { class: "problems" }, el("tr", {}, el("th", { text: "severity" }), el("th", { text: "code" }), el("th", { text: "image" }), el("th", { text: "message" })));
    for (const p of r.problems) {
      const link = p.link !== null ? el("a", { href: "#data", text: String(p.image_id), onclick: (ev) => { ev.preventDefault(); showBig(p.image_id, ""); } }) : document.createTextNode(p.image_id === null ? "" : String(p.image_id));
      t.append(el("tr", {}, el("td", { class: "sev-" + p.severity, text: p.severity }), el("td", { text: p.code }), el("td", {}, link), el("td", { text: p.message })));
    }
    box.append(t);
    say("validated");
  } catch (e) { fail(e); }
});

// ------------------------------------------------------------------ results page
async function loadResults() {
  const d = await api("/api/results");
  const ul = $("result-list");
  ul.innerHTML = "";
  for (const x of d.results) {
    const li = el("li", { title: x.path }, x.path || x.name, el("span", { class: "kind", text: x.kind }));
    li.addEventListener("click", () => { ul.querySelectorAll("li").forEach((l) => l.classList.remove("selected")); li.classList.add("selected"); (x.kind === "run" ? openRun : openEvaluation)(x.root, x.path).catch(fail); });
    ul.append(li);
  }
  if (!d.results.length) ul.append(el("li", { class: "muted", text: "no evaluations or runs under the roots" }));
  const sets = (await api("/api/datasets")).datasets;
  for (const id of ["eval-gt", "eval-pred"]) {
    const sel = $(id), keep = sel.value;
    sel.innerHTML = "";
    sets.forEach((x) => sel.append(el("option", { value: JSON.stringify([x.root, x.path]), text: x.path })));
    if (keep) sel.value = keep;
  }
}
$("eval-btn").addEventListener("click", async () => {
  try {
    const [gr, gp] = JSON.parse($("eval-gt").value), [pr, pp] = JSON.parse($("eval-pred").value);
    const body = { gt: { root: gr, path: gp }, pred: { root: pr, path: pp }, protocol: $("eval-protocol").value, out: { root: pr, path: $("eval-out").value } };
    const job = await api("/api/jobs/evaluate", { body });
    say("evaluation started"); watchJob(job.id);
  } catch (e) { fail(e); }
});
function numericColumns(items) {
  const cols = [];
  if (!items.length) return cols;
  for (const k of Object.keys(items[0])) if (k !== "item" && items.some((r) => typeof r[k] === "number")) cols.push(k);
  return cols;
}
function histogram(values, title) {
  const W = 320, H = 160, B = 20, pad = 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart"); svg.setAttribute("width", W); svg.setAttribute("height", H);
  const v = values.filter((x) => typeof x === "number");
  const lo = Math.min(...v, 0), hi = Math.max(...v, 1);
  const counts = new Array(B).fill(0);
  v.forEach((x) => { counts[Math.min(B - 1, Math.floor(((x - lo) / (hi - lo || 1)) * B))]++; });
  const top = Math.max(...counts, 1), bw = (W - 2 * pad) / B;
  counts.forEach((c, i) => {
    const r = document.createElementNS(ns, "rect");
    const h = ((H - 2 * pad) * c) / top;
    r.setAttribute("x", pad + i * bw); r.setAttribute("y", H - pad - h); r.setAttribute("width", bw - 1); r.setAttribute("height", h); r.setAttribute("fill", "#3c78a8");
    svg.append(r);
  });
  const label = (x, y, t) => { const e = document.createElementNS(ns, "text"); e.setAttribute("x", x); e.setAttribute("y", y); e.textContent = t; svg.append(e); };
  label(pad, 14, `${title} (n=${v.length})`); label(pad, H - 8, fmt(lo)); label(W - pad - 30, H - 8, fmt(hi));
  return svg;
}
function lineChart(points, title) {
  const W = 320, H = 180, pad = 28, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart"); svg.setAttribute("width", W); svg.setAttribute("height", H);
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const X = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad), Y = (y) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const path = document.createElementNS(ns, "polyline");
  path.setAttribute("points", points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "));
  path.setAttribute("fill", "none"); path.setAttribute("stroke", "#c0392b"); path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  const label = (x, y, t) => { const e = document.createElementNS(ns, "text"); e.setAttribute("x", x); e.setAttribute("y", y); e.textContent = t; svg.append(e); };
  label(pad, 14, title); label(2, pad, fmt(y1)); label(2, H - pad, fmt(y0)); label(W - pad - 20, H - 6, fmt(x1));
  return svg;
}
async function openEvaluation(root, path) {
  const d = await api("/api/evaluation?" + qs({ root, path }));
  S.result = d;
  const v = $("result-view");
  v.innerHTML = "";
  $("drill").hidden = true;
  const m = d.metrics;
  v.append(el("h3", { text: `${path} — protocol ${m.protocol || "?"}, ${d.items.length} items` }));
  const t = el("table", { id: "metrics-table" });
  for (const [k, val] of Object.entries(m.metrics || {})) if (typeof val !== "object" || val === null) t.append(el("tr", {}, el("th", { text: k }), el("td", { text: fmt(val) })));
  v.append(t);
  const cols = numericColumns(d.items);
  const charts = el("div", { class: "row" });
  cols.slice(0, 3).forEach((c) => charts.append(histogram(d.items.map((r) => r[c]), c)));
  v.append(charts);
  if (cols.length) {
    const key = cols[0];
    const sorted = [...d.items].sort((a, b) => (a[key] ?? Infinity) - (b[key] ?? Infinity));
    v.append(el("p", { class: "muted", text: `per item, worst ${key} first` + (d.drilldown ? " — click a row for its overlay" : "") }));
    const it = el("table", { id: "items-table" }, el("tr", {}, el("th", { text: "item" }), ...cols.map((c) => el("th", { text: c }))));
    for (const r of sorted.slice(0, 200)) {
      const tr = el("tr", { class: d.drilldown ? "clickable" : "" }, el("td", { text: String(r.item) }), ...cols.map((c) => el("td", { text: fmt(r[c]) })));
      if (d.drilldown) tr.addEventListener("click", () => {
        $("drill").hidden = false;
        $("drill-title").textContent = `${r.item}: ground truth | prediction | errors (TP green, FP red, FN blue)`;
        $("drill-img").src = "/api/evaluation/item?" + qs({ root, path, item: r.item });
      });
      it.append(tr);
    }
    v.append(it);
  }
}
$("drill-close").addEventListener("click", () => { $("drill").hidden = true; });
async function openRun(root, path) {
  const d = await api("/api/run?" + qs({ root, path }));
  const v = $("result-view");
  v.innerHTML = "";
  $("drill").hidden = true;
  v.append(el("h3", { text: `training run ${path}` }));
  const t = el("table", { id: "run-table" });
  const flat = Object.assign({}, d.metrics && typeof d.metrics === "object" ? d.metrics : {});
  for (const [k, val] of Object.entries(flat)) if (typeof val !== "object" || val === null) t.append(el("tr", {}, el("th", { text: k }), el("td", { text: fmt(val) })));
  v.append(t);
  const charts = el("div", { class: "row", id: "curves" });
  charts.style.flexWrap = "wrap";
  for (const [k, pts] of Object.entries(d.curves)) if (pts.length > 1) charts.append(lineChart(pts, k));
  if (!charts.childNodes.length) charts.append(el("span", { class: "muted", text: "no curves logged" }));
  v.append(charts);
}

init().catch(fail);
