"""LiteMedSAM fine-tuned on cached embeddings, scored leave-one-source-out on the real images of ../shared/data.

The image encoder is frozen, so every image (and its horizontal flip) is encoded once by the original model's
torch engine and the prompt encoder + mask decoder train on the cached embeddings
(``scopeseg.train.promptable.fit_on_embeddings``, preset ``litemedsam-scope``: Dice per object + BCE + IoU
MSE, box jitter as in the MedSAM recipe). For each held-out source the decoder restarts from the original weights and trains on the
objects of every OTHER source (class-balanced: a source uniformly, then one of its objects), then the held-out
source is scored with exactly the objects, boxes and metric code of benchmarks/promptable_accuracy.py
(one tight GT box per object, ``segment_2d`` + ``medsam_cvpr24``), beside the original LiteMedSAM on the
same embeddings. ``--final`` trains on all sources and writes the shipped delta (fine-tuned - original, fp16)
and checks that the fp16 delta scores like the fp32 model.
Run: ``flock /tmp/heavy.lock .venv/bin/python benchmarks/promptable_finetune_loso.py [--folds surgical]``
-> benchmarks/results/promptable_finetune_loso.{json,md} (runs merge into the json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promptable_accuracy import DATA, ROOT, boxes_of, items  # noqa: E402

SURGICAL = [
    "cholecseg8k_clip",
    "cholecinstanceseg_vid03_unclear",
    "endoscapes2023_vid04_unclear",
    "endovis17_unclear",
]
POLYP = ["kvasir_seg", "kvasir_seg_256", "cvc_clinicdb_unclear", "endotect2020_polyp_unclear"]
NEGATIVES = ["hyperkvasir_uc_negatives"]  # no objects: a box prompt needs an object, so none are used


class CachedPredictor:
    """A PromptPredictor whose ``set_image`` reuses the embedding of the current case (same decode path)."""

    def __init__(self, predictor, cache: dict):
        self.p, self.cache, self.key = predictor, cache, None

    def set_image(self, image) -> None:
        self.p.set_embedding(*self.cache[self.key])

    def predict(self, **kw):
        return self.p.predict(**kw)

    @property
    def image_size(self):
        return self.p.image_size


def score(predictor, cache: dict, cases: list) -> dict:
    from scopeseg.inference.medsam_io import segment_2d
    from scopeseg.metrics.medsam import medsam_cvpr24

    cp = CachedPredictor(predictor, cache)
    dsc, nsd = [], []
    for key, _path, labels in cases:
        cp.key = key
        r = medsam_cvpr24(segment_2d(cp, None, boxes_of(labels)), labels)
        dsc.append(r["dsc"])
        nsd.append(r["nsd"])
    return {"dsc": float(np.mean(dsc)), "nsd": float(np.mean(nsd)), "per_image_dsc": dsc}


def score_zoom(predictor, zcache: dict, cases: list) -> dict:
    """``score`` with box zoom: each object decoded on its own crop's embedding (``zcache[key#k]``: embedding,
    prepared crop, window), pasted back in box order (later boxes overwrite, as ``segment_2d``)."""
    import torch

    from scopeseg.metrics.medsam import medsam_cvpr24

    def logits_of(emb, prep, box):  # crop-size logits of one box (the predictor's own post-processing)
        predictor.set_embedding(emb, prep)
        low = torch.from_numpy(predictor.predict(boxes=box).low_res_logits)[:, None]
        return predictor.recipe.postprocess(low, prep, predictor.engine.img_size)[0, 0].numpy()

    dsc, nsd = [], []
    for key, _path, labels in cases:
        seg = np.zeros(labels.shape, np.int32)
        for k, box in enumerate(boxes_of(labels), start=1):
            emb, prep, (x0, y0, x1, y1) = zcache[f"{key}#{k}"]
            local = np.array([[box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0]])
            logits = logits_of(emb, prep, local)
            if f"{key}#{k}|mirror" in zcache:  # flip TTA: the mirrored crop, mirrored back, averaged
                memb, mprep, _ = zcache[f"{key}#{k}|mirror"]
                cw = x1 - x0
                fbox = np.array([[cw - local[0, 2], local[0, 1], cw - local[0, 0], local[0, 3]]])
                logits = 0.5 * (logits + logits_of(memb, mprep, fbox)[:, ::-1])
            seg[y0:y1, x0:x1][logits > 0] = k
        r = medsam_cvpr24(seg, labels)
        dsc.append(r["dsc"])
        nsd.append(r["nsd"])
    return {"dsc": float(np.mean(dsc)), "nsd": float(np.mean(nsd)), "per_image_dsc": dsc}


def zoom_inputs(
    model, p0, cases: dict, sources: list, zoom, work: Path, flip: bool, tta: bool = False
) -> tuple[dict, dict, dict]:
    """Crop embeddings of every object (and of its mirror image): (eval cache, training embeddings, objects)."""
    from scopeseg.io import read_image
    from scopeseg.models import weights as W
    from scopeseg.models.sam.recipes import as_rgb_uint8, get_recipe, zoom_window
    from scopeseg.train.promptable import prompt_objects

    disk = work / f"zoom_{zoom.margin:g}_{zoom.min_side}.safetensors"
    stored = W.load_safetensors(disk) if disk.is_file() else {}
    n0, recipe = len(stored), get_recipe(model.preprocess)
    zcache, train_emb, objects = {}, {}, {s: [] for s in sources}
    for s in sources:
        for key, path, lab in cases[s]:
            img = as_rgb_uint8(read_image(path))
            views = [("", img, lab)]
            if flip:
                views.append(("|flip", img[:, ::-1], lab[:, ::-1]))
            for suffix, im, lb in views:
                for k, box in enumerate(boxes_of(lb), start=1):
                    x0, y0, x1, y1 = zoom_window(box, lb.shape, zoom)
                    crop = np.ascontiguousarray(im[y0:y1, x0:x1])
                    ckey = f"{key}#{k}{suffix}"
                    if ckey not in stored:
                        p0.set_image(crop)
                        stored[ckey] = p0.get_embedding()[0]
                    if not suffix:  # scoring needs the prepared crop; training only the embedding
                        prep = recipe.prepare(crop, int(model.img_size))
                        zcache[f"{key}#{k}"] = (stored[ckey], prep, (x0, y0, x1, y1))
                    if not suffix and tta:  # the same window mirrored (flip TTA at scoring)
                        mirror = np.ascontiguousarray(crop[:, ::-1])
                        if ckey + "|mirror" not in stored:
                            p0.set_image(mirror)
                            stored[ckey + "|mirror"] = p0.get_embedding()[0]
                        mprep = recipe.prepare(mirror, int(model.img_size))
                        zcache[ckey + "|mirror"] = (stored[ckey + "|mirror"], mprep, (x0, y0, x1, y1))
                    train_emb[ckey] = stored[ckey][0].half()
                    local = np.ascontiguousarray(lb[y0:y1, x0:x1] == k).astype(np.int32)
                    objects[s] += prompt_objects(model, local, ckey, group=s)
    if len(stored) > n0:
        W.save_safetensors(stored, disk)
    return zcache, train_emb, objects


def cpu_info() -> dict:
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    keep = ["avx2", "avx512f", "avx512_bf16", "amx_tile", "fma"]
    return {
        "cpu": platform.processor() or platform.machine(),
        "flags": [f for f in keep if f in flags],
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--folds", default="all", help="held-out sources (comma list), 'surgical', 'polyp', 'all'"
    )
    ap.add_argument("--final", action="store_true", help="also train on all sources and write the delta")
    ap.add_argument("--steps", type=int, default=21, help="steps per training (fewer if over the budget)")
    ap.add_argument(
        "--budget-minutes", type=float, default=None, help="whole-run limit: steps cut to fit every training"
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--box-shift", type=float, default=0.0, help="5 = MedSAM")
    ap.add_argument("--box-jitter", type=float, default=0.0)
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--loss", default=None, help="loss spec (default: preset litemedsam-scope's)")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="also train on N synthetic frames (scopeseg synth, textured; a group of their own, never scored)",
    )
    ap.add_argument("--synthetic-weight", type=int, default=1, help="groups the synthetic frames count as")
    ap.add_argument(
        "--train-neck",
        action="store_true",
        help="also train the image encoder's neck (train_neck=true: trunk features cached, neck trained)",
    )
    ap.add_argument(
        "--zoom",
        default=None,
        help="MARGIN,MIN_SIDE: box zoom (each object trained and scored on its own crop; models.sam.recipes.Zoom)",
    )
    ap.add_argument(
        "--tta", action="store_true", help="with --zoom: flip test-time augmentation when scoring"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sources", default=None, help="subset of the real sources (smoke runs)")
    ap.add_argument("--work", default="/tmp/18b")
    ap.add_argument("--tag", default="", help="name of this setting in the json (ablations)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "promptable_finetune_loso"))
    args = ap.parse_args()
    import torch

    from scopeseg.config import build_config
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.models import weights as W
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.recipes import as_rgb_uint8, get_recipe
    from scopeseg.train.promptable import fit_on_embeddings, prompt_objects

    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found")
    t_start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = create_model("litemedsam").eval()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    p0 = PromptPredictor.from_pretrained(model, engine="torch", threads=args.threads)

    # cases and cached embeddings (of the original engine: the fine-tuned models share its frozen encoder)
    sources = args.sources.split(",") if args.sources else SURGICAL + POLYP
    cases = {s: [(f"{s}/{p.name}", p, lab) for p, lab in items(s)] for s in sources}
    eval_cache: dict = {}
    train_emb: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    disk = work / "embeddings.safetensors"  # the frozen encoder's outputs, reused by later runs
    stored = W.load_safetensors(disk) if disk.is_file() else {}
    recipe = get_recipe(model.preprocess)
    for s in sources:
        for key, path, _lab in cases[s]:
            img = read_image(path)
            if key in stored and key + "|flip" in stored:
                prep = recipe.prepare(as_rgb_uint8(img), int(model.img_size))
                emb, flip = stored[key], stored[key + "|flip"]
            else:
                p0.set_image(img)
                emb, prep = p0.get_embedding()
                p0.set_image(np.ascontiguousarray(img[:, ::-1]))
                flip = p0.get_embedding()[0]
                stored[key], stored[key + "|flip"] = emb, flip
            eval_cache[key] = (emb, prep)
            train_emb[key] = emb[0].half()
            if not args.no_flip:
                train_emb[key + "|flip"] = flip[0].half()
    if not disk.is_file():
        W.save_safetensors(stored, disk)
    if args.train_neck:  # train on trunk features (cached in their own file); eval embeddings follow the neck
        if args.synthetic:
            raise SystemExit("--train-neck with --synthetic is not supported")
        trunk_disk = work / "trunk.safetensors"
        trunks = W.load_safetensors(trunk_disk) if trunk_disk.is_file() else {}
        enc, n_trunks = model.image_encoder, len(trunks)
        for s in sources:
            for key, _path, _lab in cases[s]:
                if key not in trunks:
                    img = as_rgb_uint8(read_image(_path))
                    with torch.no_grad():
                        for k, im in ((key, img), (key + "|flip", np.ascontiguousarray(img[:, ::-1]))):
                            px = torch.from_numpy(recipe.prepare(im, int(model.img_size)).pixels)
                            trunks[k] = enc.trunk(px)[0].half()
                train_emb[key] = trunks[key]
                if not args.no_flip:
                    train_emb[key + "|flip"] = trunks[key + "|flip"]
        if len(trunks) > n_trunks:
            W.save_safetensors(trunks, trunk_disk)
    encode_s = time.perf_counter() - t0
    print(f"encoded {len(train_emb)} inputs in {encode_s:.0f} s", flush=True)
    objects = {}
    for s in sources:
        objects[s] = []
        for key, _path, lab in cases[s]:
            objects[s] += prompt_objects(model, lab, key, group=s)
            if not args.no_flip:
                objects[s] += prompt_objects(
                    model, np.ascontiguousarray(lab[:, ::-1]), key + "|flip", group=s
                )
    zoom = zcache = None
    if args.zoom:
        from scopeseg.models.sam.recipes import Zoom

        if args.synthetic or args.train_neck:
            raise SystemExit("--zoom with --synthetic or --train-neck is not supported")
        m, side = args.zoom.split(",")
        zoom = Zoom(float(m), int(side))
        t1 = time.perf_counter()
        zcache, train_emb, objects = zoom_inputs(
            model, p0, cases, sources, zoom, work, not args.no_flip, args.tta
        )
        print(f"zoom {zoom}: {len(train_emb)} crops in {time.perf_counter() - t1:.0f} s", flush=True)
    synth_objects = (
        synthetic_objects(model, p0, args, work, train_emb, stored, disk) if args.synthetic else []
    )

    def scored(predictor, cache: dict, group: list) -> dict:
        return score_zoom(predictor, zcache, group) if zoom else score(predictor, cache, group)

    cfg = build_config(
        preset="litemedsam-scope",
        overrides=[
            *([f"loss={args.loss}"] if args.loss else []),
            f"lr={args.lr}",
            f"batch_size={args.batch}",
            f"box_shift={args.box_shift}",
            f"box_jitter={args.box_jitter}",
            "freeze_encoder=true",
            f"train_neck={str(args.train_neck).lower()}",
        ],
    )

    out = Path(args.out)
    result = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    tag = args.tag or f"steps{args.steps}_b{args.batch}_lr{args.lr:g}_shift{args.box_shift:g}"
    run = result.setdefault("settings", {}).setdefault(tag, {"folds": {}})
    run["config"] = {
        "steps": args.steps,
        "batch_size": args.batch,
        "lr": args.lr,
        "schedule": cfg.schedule,
        "weight_decay": cfg.weight_decay,
        "loss": cfg.loss,
        "box_shift_px_at_256": args.box_shift,
        "box_jitter": args.box_jitter,
        "hflip": not args.no_flip,
        "balance": "per source",
        "synthetic_frames": args.synthetic,
        "synthetic_groups": args.synthetic_weight if args.synthetic else 0,
        "zoom": None
        if zoom is None
        else {"margin": zoom.margin, "min_side": zoom.min_side, "flip_tta": args.tta},
        "trained": "prompt encoder + mask decoder + encoder neck (encoder trunk frozen)"
        if args.train_neck
        else "prompt encoder + mask decoder (image encoder frozen)",
    }
    run["encode_seconds"] = encode_s
    result["original"] = {s: score(p0, eval_cache, cases[s]) for s in sources}
    if zoom:
        run["original_zoom"] = {s: score_zoom(p0, zcache, cases[s]) for s in sources}
    result["cases"] = {
        s: {"images": len(cases[s]), "objects": int(sum(lab.max() for _, _, lab in cases[s]))}
        for s in sources
    }
    result["cases"][NEGATIVES[0]] = {"images": 0, "objects": 0, "note": "no objects to prompt: not used"}
    named = {"all": sources, "surgical": SURGICAL, "polyp": POLYP}
    folds = [s for s in named.get(args.folds, args.folds.split(",")) if s in sources]
    if args.budget_minutes:  # time 3 steps, then fit every training of this run into what is left
        t0 = time.perf_counter()
        fit_on_embeddings(model, train_emb, [o for s in sources for o in objects[s]], cfg, steps=3)
        step_s = (time.perf_counter() - t0) / 3
        model.load_state_dict(base)
        left = 60 * args.budget_minutes - (time.perf_counter() - t_start)
        trainings = len(folds) + int(args.final)
        fitted = int(left / trainings / (step_s * 1.15) - 2)  # 15 % for scoring
        run["step_seconds"] = step_s
        run["config"]["steps"] = args.steps = max(10, min(args.steps, fitted))
        print(f"{step_s:.2f} s/step: {args.steps} steps per training ({trainings} trainings)", flush=True)

    def tuned_cache(keys: list) -> dict:
        """Eval embeddings of the fine-tuned model: the original's, or its own neck over the cached trunk."""
        if not args.train_neck:
            return eval_cache
        with torch.no_grad():
            neck = model.image_encoder.neck.eval()
            return {k: (neck(train_emb[k][None].float()), eval_cache[k][1]) for k in keys}

    def save() -> None:
        result["conditions"] = {**cpu_info(), "threads": args.threads, "torch": torch.__version__}
        run["wall_seconds"] = time.perf_counter() - t_start
        out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(render_md(result))

    for held in folds:
        model.load_state_dict(base)
        train_objs = [o for s in sources if s != held for o in objects[s]] + synth_objects
        t0 = time.perf_counter()
        losses = fit_on_embeddings(model, train_emb, train_objs, cfg, steps=args.steps)
        secs = time.perf_counter() - t0
        p = PromptPredictor.from_pretrained(model, engine="torch", threads=args.threads)
        sc = scored(p, tuned_cache([k for k, _, _ in cases[held]]), cases[held])
        run["folds"][held] = {
            "trained_on": [s for s in sources if s != held],
            "train_objects": len(train_objs),
            "train_seconds": secs,
            "loss_first10": float(np.mean(losses[:10])),
            "loss_last10": float(np.mean(losses[-10:])),
            **sc,
        }
        o = result["original"][held]
        print(f"{held}: original {o['dsc']:.4f} -> fine-tuned {sc['dsc']:.4f} ({secs:.0f} s)", flush=True)
        save()
    if args.final:
        model.load_state_dict(base)
        train_objs = [o for s in sources for o in objects[s]] + synth_objects
        t0 = time.perf_counter()
        losses = fit_on_embeddings(model, train_emb, train_objs, cfg, steps=args.steps)
        secs = time.perf_counter() - t0
        delta = W.make_delta(model.state_dict(), base)
        path = work / f"litemedsam-scope-{tag}.safetensors"
        W.save_safetensors(delta, path, metadata={"base": "litemedsam", "kind": "delta fp16"})
        every = [k for s in sources for k, _, _ in cases[s]]
        fp32 = PromptPredictor.from_pretrained(model, engine="torch", threads=args.threads)
        fp32_cache = tuned_cache(every)
        model.load_state_dict(W.apply_delta(base, W.load_safetensors(path)))
        fp16 = PromptPredictor.from_pretrained(model, engine="torch", threads=args.threads)
        fp16_cache = tuned_cache(every)
        run["final"] = {
            "train_objects": len(train_objs),
            "train_seconds": secs,
            "loss_first10": float(np.mean(losses[:10])),
            "loss_last10": float(np.mean(losses[-10:])),
            "delta_file": str(path),
            "delta_bytes": path.stat().st_size,
            "delta_sha256": W.sha256_file(path),
            "delta_tensors": len(delta),
            "training_set_scores_fp32": {s: scored(fp32, fp32_cache, cases[s])["dsc"] for s in sources},
            "training_set_scores_fp16_delta": {s: scored(fp16, fp16_cache, cases[s])["dsc"] for s in sources},
        }
        print(json.dumps({k: v for k, v in run["final"].items()}, indent=1), flush=True)
    save()
    print(render_md(result))


def synthetic_objects(model, p0, args, work: Path, train_emb: dict, stored: dict, disk: Path) -> list:
    """Objects of ``args.synthetic`` synthetic frames (one frame per video, generator seed 31, instruments and
    polyps, textured tissue), their embeddings added to ``train_emb`` (and cached in ``disk``); the groups
    ``synthetic0..`` (``--synthetic-weight`` of them) so balanced sampling draws them that often."""
    from scopeseg.data.coco import load_dataset
    from scopeseg.data.synthetic.config import SynthConfig
    from scopeseg.data.synthetic.writer import generate
    from scopeseg.models import weights as W
    from scopeseg.train.promptable import prompt_objects

    folder = work / f"synthetic{args.synthetic}"
    if not (folder / "annotations.json").is_file():
        cfg = SynthConfig(videos=args.synthetic, frames=1, size=(480, 736), seed=31, tissue_texture=0.7)
        generate(folder, cfg, progress=False)
    ds = load_dataset(folder)
    objs, new = [], 0
    for n, iid in enumerate(sorted(ds.images)):
        key = f"synthetic/{iid}"
        if key not in stored:
            p0.set_image(ds.load_image(iid))
            stored[key] = p0.get_embedding()[0]
            new += 1
        train_emb[key] = stored[key][0].half()
        masks, _cats, _ids = ds.instance_masks(iid)
        labels = np.zeros(masks.shape[1:], np.int32)
        for k, m in enumerate(masks):
            labels[m] = k + 1
        group = f"synthetic{n % max(1, args.synthetic_weight)}"
        objs += prompt_objects(model, labels, key, group=group)
    if new:
        W.save_safetensors(stored, disk)
    print(f"synthetic: {len(ds.images)} frames, {len(objs)} objects ({new} encoded)", flush=True)
    return objs


def _agg(scores: dict, cases: dict, group: list[str]) -> tuple[float, float]:
    """(mean over the group's images, mean over its sources) of per-image DSC."""
    per_image = [d for s in group if s in scores for d in scores[s]["per_image_dsc"]]
    per_source = [scores[s]["dsc"] for s in group if s in scores]
    return float(np.mean(per_image)), float(np.mean(per_source))


def render_md(r: dict) -> str:
    c = r.get("conditions", {})
    lines = [
        "# litemedsam-scope: LiteMedSAM fine-tuned on cached embeddings, leave-one-source-out",
        "",
        "Each row: the decoder trained from the original weights on every OTHER source of ../shared/data, "
        "scored on the held-out source with one tight GT box per object (MedSAM-laptop CVPR24 DSC / NSD, "
        "the code of promptable_accuracy.py), beside the original LiteMedSAM on the same objects and boxes "
        "(torch engine, same cached embeddings). Sources are credited in each folder's SOURCE.md.",
        f"Conditions: CPU flags {','.join(c.get('flags', []))}, {c.get('cores')} cores shared, "
        f"{c.get('threads')} threads, load average at the end {c.get('load_avg')}, torch {c.get('torch')}.",
        "",
    ]
    orig = r["original"]
    for tag, run in r.get("settings", {}).items():
        cfgs = ", ".join(f"{k} {v}" for k, v in run["config"].items())
        lines += [f"## {tag}", "", cfgs, ""]
        oz = run.get("original_zoom")  # the original with the same box zoom (fine-tuned rows are zoomed)
        zh, zs = (" original + zoom DSC |", "---|") if oz else ("", "")
        lines += [
            f"| held-out source | images | objects | original DSC |{zh} fine-tuned DSC | change | "
            "original NSD | fine-tuned NSD | train s |",
            f"|---|---|---|---|{zs}---|---|---|---|---|",
        ]
        for s, f in run["folds"].items():
            o, n = orig[s], r["cases"][s]
            z = f" {oz[s]['dsc']:.4f} |" if oz else ""
            lines.append(
                f"| {s} | {n['images']} | {n['objects']} | {o['dsc']:.4f} |{z} {f['dsc']:.4f} | "
                f"{f['dsc'] - o['dsc']:+.4f} | {o['nsd']:.4f} | {f['nsd']:.4f} | {f['train_seconds']:.0f} |"
            )
        for name, group in (("surgical", SURGICAL), ("polyp", POLYP)):
            if all(s in run["folds"] for s in group):
                oi, os_ = _agg(orig, r["cases"], group)
                fi, fs = _agg(run["folds"], r["cases"], group)
                zi, zs_ = (
                    (f" {_agg(oz, r['cases'], group)[0]:.4f} |", f" {_agg(oz, r['cases'], group)[1]:.4f} |")
                    if oz
                    else ("", "")
                )
                lines.append(
                    f"| **{name}, mean over images** | | | {oi:.4f} |{zi} {fi:.4f} | {fi - oi:+.4f} | | | |"
                )
                lines.append(
                    f"| **{name}, mean over sources** | | | {os_:.4f} |{zs_} {fs:.4f} | {fs - os_:+.4f} | | | |"
                )
        if "final" in run:
            fin = run["final"]
            lines += [
                "",
                f"Shipped model (all sources, {fin['train_objects']} objects incl. flips, "
                f"{fin['train_seconds']:.0f} s): delta {fin['delta_bytes'] / 1e6:.2f} MB fp16, "
                f"sha256 {fin['delta_sha256'][:16]}...; training-set DSC fp32 vs fp16 delta: "
                + ", ".join(
                    f"{s} {fin['training_set_scores_fp32'][s]:.4f}/{fin['training_set_scores_fp16_delta'][s]:.4f}"
                    for s in fin["training_set_scores_fp32"]
                ),
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
