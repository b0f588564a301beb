"""Segment page API: browse and open media, upload, prompts -> masks, dense models, propagation, save."""

from __future__ import annotations

import shutil
import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field

from ..data import rle as rle_ops
from ..errors import DataError, ScopesegError
from ..io import VIDEO_SUFFIXES, is_image, is_video
from .deps import Body, FileRef, Srv, dataset_at
from .files import TooLarge, sanitise_name
from .jobs import Job
from .media import Media, ObjectLabel, check_pixels
from .render import data_url, encode, overlay_png

router = APIRouter(prefix="/api")


class Prompt(Body):
    media: str = Field(max_length=64)
    frame: int = Field(0, ge=0)
    model: str = Field(max_length=512)
    object: int = Field(1, ge=1, le=255)
    box: list[float] | None = Field(None, min_length=4, max_length=4)
    points: list[list[float]] = Field(default_factory=list, max_length=64)
    labels: list[int] = Field(default_factory=list, max_length=64)
    refine: bool = False  # feed the object's previous low-res logits back (SAM-style refinement)


class FrameRef(Body):
    media: str = Field(max_length=64)
    frame: int = Field(0, ge=0)
    model: str | None = Field(None, max_length=512)


class Clear(Body):
    media: str = Field(max_length=64)
    frame: int = Field(0, ge=0)
    object: int | None = Field(None, ge=1, le=255)


class Accept(Body):
    media: str = Field(max_length=64)
    frame: int = Field(0, ge=0)
    accepted: bool = True


class ObjectName(Body):
    id: int | None = Field(None, ge=1, le=255)
    name: str = Field(max_length=100)


class Predict(Body):
    media: str = Field(max_length=64)
    frame: int = Field(0, ge=0)
    model: str = Field(max_length=512)
    classes: list[str] = Field(default_factory=list, max_length=100)


class Propagate(Body):
    media: str = Field(max_length=64)
    model: str = Field(max_length=512)
    direction: Literal["forward", "backward", "both", "auto"] = "auto"


class Save(Body):
    root: int = Field(ge=0)
    path: str = Field(max_length=1024)
    only_accepted: bool = False


def _frame_payload(media: Media, frame: int) -> dict:
    labels = media.label_map(frame)
    return {
        "frame": frame,
        "objects": media.frame_labels(frame),
        "overlay": data_url(overlay_png(labels)),
        "accepted": frame in media.accepted,
    }


def _open_media(s, path, source: str, origin: bool = True) -> dict:
    media = s.media.open_path(path, source, s.cfg.max_image_pixels, s.cfg.max_frames, origin)
    return media.summary()


# ------------------------------------------------------------------ files and media
@router.get("/files")
def list_files(s: Srv, root: int = Query(0), path: str = Query("", max_length=4096)):
    return {"root": root, "path": path, "entries": [e.__dict__ for e in s.roots.listing(root, path)]}


@router.post("/open")
def open_file(s: Srv, ref: FileRef):
    path = s.roots.resolve(ref.root, ref.path)
    if not path.is_file() or not (is_image(path) or is_video(path)):
        raise DataError(f"{ref.path!r} is not an image or video file")
    return _open_media(s, path, f"{ref.root}:{ref.path}")


@router.post("/upload")
async def upload(request: Request, s: Srv, name: str = Query("upload.png", max_length=255)):
    """The raw file as the request body (``?name=`` its file name); refused above the size limit."""
    safe = sanitise_name(name)
    suffix = "." + safe.rsplit(".", 1)[-1].lower() if "." in safe else ""
    if not (is_image(safe) or suffix in VIDEO_SUFFIXES):
        raise DataError(f"upload {safe!r}: not an image or video file name")
    folder = s.uploads / f"{time.time_ns()}"
    folder.mkdir()
    dest = folder / safe
    size = 0
    with open(dest, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > s.max_upload:
                f.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise TooLarge(f"upload {safe!r} exceeds the limit of {s.max_upload} bytes")
            f.write(chunk)
    try:
        if size == 0:
            raise DataError(f"upload {safe!r} is empty")
        return _open_media(s, dest, "upload", origin=False)
    except ScopesegError as e:  # named by the upload's name, not the server's temp folder
        raise type(e)(str(e).replace(str(dest), f"upload {safe!r}")) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class DatasetRef(Body):
    root: int = Field(ge=0)
    path: str = Field(max_length=4096)
    video: int | None = None
    image_id: int | None = None


@router.post("/open/dataset")
def open_dataset(s: Srv, ref: DatasetRef):
    """A data set's video (or one image) as media, its annotations as labels to correct and save anew."""
    ds = dataset_at(s, ref.root, ref.path)
    if ref.video is not None:
        if ref.video not in ds.videos:
            raise DataError(f"no video {ref.video} in the data set")
        ids = list(ds.frames_by_video.get(ref.video, []))[: s.cfg.max_frames]
        name = str(ds.videos[ref.video].get("name", ref.video))
    elif ref.image_id is not None and ref.image_id in ds.images:
        ids = [ref.image_id]
        name = str(ds.images[ref.image_id].get("file_name", ref.image_id)).rsplit("/", 1)[-1]
    else:
        raise DataError("give a video id or an image id of the data set")
    if not ids:
        raise DataError(f"video {ref.video} has no frames")
    frames = []
    for iid in ids:
        im = ds.images[iid]
        check_pixels(
            int(im.get("height", 0)), int(im.get("width", 0)), s.cfg.max_image_pixels, f"image {iid}"
        )
        frames.append(ds.load_image(iid))
    if len({f.shape for f in frames}) != 1:
        raise DataError(f"the frames of video {ref.video} differ in size")
    media = s.media.add(name, "video" if ref.video is not None else "image", frames, f"{ref.root}:{ref.path}",
                        origin=s.roots.resolve(ref.root, ref.path))  # fmt: skip
    media.objects.clear()
    for t, iid in enumerate(ids):
        for a in ds.image_anns(iid):
            oid = int(a.get("track_id") or a["category_id"])
            if not 1 <= oid <= 255:
                continue
            media.objects.setdefault(oid, str(ds.categories.get(a["category_id"], {}).get("name", "object")))
            media.labels.setdefault(t, {})[oid] = ObjectLabel(ds.rle(a), a.get("score"), "dataset")
    media.objects = media.objects or {1: "object"}
    return media.summary()


@router.get("/media")
def list_media(s: Srv):
    return {"media": s.media.list()}


@router.get("/media/{media_id}")
def media_info(s: Srv, media_id: str):
    return s.media.get(media_id).summary()


@router.get("/media/{media_id}/frame/{frame}")
def media_frame(s: Srv, media_id: str, frame: int):
    img = s.media.get(media_id).frame(frame)
    return Response(
        encode(img, ".jpg", 92), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/media/{media_id}/labels/{frame}")
def media_labels(s: Srv, media_id: str, frame: int):
    media = s.media.get(media_id)
    media.frame(frame)
    return _frame_payload(media, frame)


@router.post("/media/{media_id}/objects")
def name_object(s: Srv, media_id: str, obj: ObjectName):
    media = s.media.get(media_id)
    name = " ".join(obj.name.split())[:100] or "object"
    with media.lock:
        oid = obj.id if obj.id is not None else max(media.objects, default=0) + 1
        if oid > 255:
            raise DataError("at most 255 objects per media item")
        media.objects[oid] = name
    return media.summary()


# ------------------------------------------------------------------ prompts
@router.post("/embed")
def embed(s: Srv, ref: FrameRef):
    """Encode a frame ahead of the first prompt (the image embedding is then cached)."""
    media = s.media.get(ref.media)
    img = media.frame(ref.frame)
    t0 = time.perf_counter()
    s.models.embedding(ref.model, (media.id, ref.frame), img)
    return {"ms": round((time.perf_counter() - t0) * 1000, 1)}


@router.post("/segment")
def segment(s: Srv, p: Prompt):
    """One object's mask from its box and points on the frame (the embedding is cached per frame)."""
    t0 = time.perf_counter()
    media = s.media.get(p.media)
    img = media.frame(p.frame)
    if len(p.points) != len(p.labels):
        raise DataError(f"{len(p.points)} points but {len(p.labels)} labels")
    if any(len(pt) != 2 for pt in p.points):
        raise DataError("every point is [x, y]")
    if any(v not in (0, 1) for v in p.labels):
        raise DataError("point labels are 1 (positive) or 0 (negative)")
    prev = media.labels.get(p.frame, {}).get(p.object)
    mask_in = prev.low_res[None] if (p.refine and prev is not None and prev.low_res is not None) else None
    mask, score, low, cached = s.models.decode(
        p.model, (media.id, p.frame), img, p.box, p.points, p.labels, mask_in
    )
    t1 = time.perf_counter()
    label = ObjectLabel(rle_ops.encode(mask), round(score, 4), "prompt", p.box, p.points, p.labels, low)
    with media.lock:
        media.labels.setdefault(p.frame, {})[p.object] = label
        media.objects.setdefault(p.object, f"object {p.object}")
    out = _frame_payload(media, p.frame)
    out["object"] = p.object
    out["timing"] = {
        "decode_ms": round((t1 - t0) * 1000, 1),
        "total_ms": round((time.perf_counter() - t0) * 1000, 1),
        "cached_embedding": cached,
    }
    return out


@router.post("/clear")
def clear(s: Srv, c: Clear):
    media = s.media.get(c.media)
    media.frame(c.frame)
    with media.lock:
        frame = media.labels.get(c.frame, {})
        if c.object is None:
            frame.clear()
        else:
            frame.pop(c.object, None)
        media.accepted.discard(c.frame)
    return _frame_payload(media, c.frame)


@router.post("/accept")
def accept(s: Srv, a: Accept):
    media = s.media.get(a.media)
    media.frame(a.frame)
    with media.lock:
        (media.accepted.add if a.accepted else media.accepted.discard)(a.frame)
    return _frame_payload(media, a.frame)


@router.post("/predict")
def predict(s: Srv, p: Predict):
    """A semantic or instance model on one frame: one object per class (or instance) found."""
    from .models import dense_objects

    media = s.media.get(p.media)
    img = media.frame(p.frame)
    entry, predictor = s.models.predictor(p.model)
    if entry.family == "promptable":
        raise DataError(f"model {p.model!r} is promptable: draw a box or click instead")
    t0 = time.perf_counter()
    with entry.lock:
        objs = dense_objects(predictor, img, [c.strip() for c in p.classes if c.strip()])
    with media.lock:
        frame = media.labels.setdefault(p.frame, {})
        frame.clear()
        for name, mask, score in objs[:255]:
            # an existing object of that class not used on this frame yet, else a new one (instances of one
            # class stay separate objects)
            oid = next((k for k, v in sorted(media.objects.items()) if v == name and k not in frame), None)
            if oid is None:
                oid = max(media.objects, default=0) + 1
                if oid > 255:
                    break
                media.objects[oid] = name
            frame[oid] = ObjectLabel(rle_ops.encode(mask), round(score, 4), "model")
    out = _frame_payload(media, p.frame)
    out["timing"] = {"total_ms": round((time.perf_counter() - t0) * 1000, 1)}
    return out


# ------------------------------------------------------------------ propagation
def _propagation_prompts(media: Media) -> dict[int, dict[int, Any]]:
    """User-made masks (prompted or accepted frames) as mask prompts for the tracker."""
    from ..inference.tracking import Prompt as TrackPrompt

    prompts: dict[int, dict[int, Any]] = {}
    with media.lock:
        for f, objs in sorted(media.labels.items()):
            for oid, lab in objs.items():
                if lab.source == "prompt" or f in media.accepted:
                    mask = rle_ops.decode(lab.rle).astype(bool)
                    if mask.any():
                        prompts.setdefault(f, {})[oid] = TrackPrompt(mask=mask)
    return prompts


@router.post("/jobs/propagate")
def propagate(s: Srv, p: Propagate):
    """Propagate the user's masks through the video in the background (``inference.tracking``)."""
    from ..inference.prompt import PromptPredictor
    from ..inference.tracking import propagate as track

    media = s.media.get(p.media)
    if len(media.frames) < 2:
        raise DataError(f"{media.name!r} is a single image: nothing to propagate")
    entry, shared = s.models.predictor(p.model)
    if entry.family not in ("promptable", "video"):
        raise DataError(
            f"model {p.model!r} is a {entry.family} model; propagate with a promptable or video model"
        )
    prompts = _propagation_prompts(media)
    if not prompts:
        raise DataError("no masks to propagate: draw a box on a frame first")
    direction = p.direction
    if direction == "auto":
        direction = "forward" if min(prompts) == 0 else "both"
    fixed = set(prompts)

    def work(job: Job) -> dict:
        if entry.family == "promptable":
            return _propagate(job, PromptPredictor(shared.engine))  # its own image cache, shared engine
        with entry.lock:  # a video model keeps per-object memory: one propagation at a time
            return _propagate(job, shared)

    def _propagate(job: Job, model: Any) -> dict:
        n = len(media.frames)
        job.progress(0, n, f"{direction} from frame(s) {sorted(fixed)}")
        done = 0
        for t, masks in track(model, media.frames, prompts, direction=direction):
            job.progress(done, n)
            if t not in fixed:
                with media.lock:
                    frame = media.labels.setdefault(t, {})
                    for oid in list(frame):
                        if frame[oid].source == "propagated":
                            del frame[oid]
                    for oid, m in masks.items():
                        if m.any():
                            frame[oid] = ObjectLabel(rle_ops.encode(m), None, "propagated")
            done += 1
            job.progress(done, n)
        return {"media": media.id, "frames": done, "labelled": len(media.labels)}

    job = s.jobs.start("propagate", f"propagate {media.name}", work)
    return job.public()


# ------------------------------------------------------------------ save
@router.post("/media/{media_id}/save")
def save(s: Srv, media_id: str, req: Save):
    """Write the labels as a canonical COCO-video data set into a new folder under a root (atomic)."""
    from ..data.coco import CocoDataset
    from ..io import output_dir, write_image
    from .files import Forbidden

    media = s.media.get(media_id)
    parts = [sanitise_name(p, "labels") for p in req.path.split("/") if p not in ("", ".")]
    if not parts:
        raise DataError("give a folder name to save into")
    target = s.roots.resolve(req.root, "/".join(parts), must_exist=False)
    src = media.origin
    if src is not None and (target == src or src.is_relative_to(target) or target.is_relative_to(src)):
        raise Forbidden("the labels would be written over or into their source; choose another folder")
    with media.lock:
        frames = sorted(media.accepted if req.only_accepted else media.labels)
        labels = {f: dict(media.labels.get(f, {})) for f in frames}
        objects = dict(media.objects)
    if not any(labels.values()):
        raise DataError("nothing to save: no labelled frames" + (" accepted" if req.only_accepted else ""))
    stem = sanitise_name(media.name.rsplit(".", 1)[0], "media")
    with output_dir(target) as tmp:
        ds = CocoDataset(root=tmp)
        cats: dict[str, int] = {}
        for oid in sorted(objects):
            name = objects[oid]
            if name not in cats:
                cats[name] = ds.add_category(name, id=len(cats) + 1)
        vid = ds.add_video(stem, fps=media.fps) if media.kind == "video" else None
        h, w = media.size
        for f in frames:
            fn = f"frames/{stem}/{f:05d}.png" if vid is not None else f"images/{stem}.png"
            write_image(tmp / fn, media.frames[f])
            kw = {"video_id": vid, "frame_index": f} if vid is not None else {}
            iid = ds.add_image(fn, h, w, **kw)
            for oid, lab in sorted(labels[f].items()):
                cid = cats[objects.get(oid, f"object {oid}")]
                extra = {"score": lab.score} if lab.score is not None else {}
                ds.add_annotation(iid, cid, lab.rle, track_id=oid, source=lab.source, **extra)
        ds.save(tmp)
    return {"saved": f"{req.root}:{'/'.join(parts)}", "frames": len(frames), "categories": len(cats)}
