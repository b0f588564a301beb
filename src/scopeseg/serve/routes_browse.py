"""Data and Results pages API, and the jobs list: data sets with overlays and their ``validate`` problems,
evaluations (metrics.json, per_item.csv) with per-item drill-down, training runs with their curves."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from ..errors import DataError
from ..io import read_json
from .deps import Body, FileRef, Srv, cached, dataset_at, stamp
from .files import Forbidden
from .jobs import Cancelled, Job
from .render import comparison, dataset_overlay, encode, thumbnail

router = APIRouter(prefix="/api")


def _found(s, kinds: tuple[str, ...]) -> list[dict]:
    out = []
    for i, p, kind in s.roots.find(kinds, s.cfg.scan_depth):
        out.append(
            {"root": i, "path": p.relative_to(s.roots.paths[i]).as_posix(), "kind": kind, "name": p.name}
        )
    return out


def _png(img: np.ndarray) -> Response:
    return Response(encode(img, ".png"), media_type="image/png", headers={"Cache-Control": "no-cache"})


# ------------------------------------------------------------------ data sets
@router.get("/datasets")
def datasets(s: Srv):
    return {"datasets": _found(s, ("dataset",))}


@router.get("/dataset")
def dataset(s: Srv, root: int = Query(0), path: str = Query("", max_length=4096)):
    ds = dataset_at(s, root, path)
    per_cat: dict[Any, int] = {}
    for a in ds.annotations.values():
        per_cat[a.get("category_id")] = per_cat.get(a.get("category_id"), 0) + 1
    return {
        "root": root,
        "path": path,
        "images": len(ds.images),
        "annotations": len(ds.annotations),
        "categories": [
            {
                "id": cid,
                "name": c.get("name"),
                "color": list(ds.category_color(cid)),
                "annotations": per_cat.get(cid, 0),
            }
            for cid, c in sorted(ds.categories.items(), key=lambda kv: str(kv[0]))
        ],
        "videos": [
            {"id": vid, "name": v.get("name"), "frames": len(ds.frames_by_video.get(vid, []))}
            for vid, v in sorted(ds.videos.items(), key=lambda kv: str(kv[0]))
        ],
    }


@router.get("/dataset/frames")
def dataset_frames(
    s: Srv,
    root: int = Query(0),
    path: str = Query("", max_length=4096),
    video: int | None = Query(None),
    category: int | None = Query(None),
    offset: int = Query(0, ge=0),
    limit: int = Query(48, ge=1, le=500),
):
    ds = dataset_at(s, root, path)
    if video is not None:
        if video not in ds.videos:
            raise DataError(f"no video {video} in the data set")
        ids = list(ds.frames_by_video.get(video, []))
    else:
        ids = list(ds.images)
    if category is not None:
        keep = ds.images_by_category.get(category, set())
        ids = [i for i in ids if i in keep]
    items = []
    for iid in ids[offset : offset + limit]:
        im = ds.images[iid]
        items.append(
            {
                "id": iid,
                "file_name": im.get("file_name"),
                "video_id": im.get("video_id"),
                "frame_index": im.get("frame_index"),
                "annotations": len(ds.anns_by_image.get(iid, [])),
            }
        )
    return {"total": len(ids), "offset": offset, "items": items}


@router.get("/dataset/image")
def dataset_image(
    s: Srv,
    root: int = Query(0),
    path: str = Query("", max_length=4096),
    image_id: int = Query(...),
    overlay: bool = Query(True),
    max_side: int = Query(0, ge=0, le=4096),
):
    ds = dataset_at(s, root, path)
    if image_id not in ds.images:
        raise DataError(f"no image {image_id} in the data set")
    img = ds.load_image(image_id)
    if overlay:
        masks, cats, _ = ds.instance_masks(image_id)
        img = dataset_overlay(img, masks, [ds.category_color(c) for c in cats])
    return _png(thumbnail(img, max_side) if max_side else img)


@router.get("/dataset/validate")
def dataset_validate(s: Srv, root: int = Query(0), path: str = Query("", max_length=4096)):
    from ..data.validate import validate

    ds = dataset_at(s, root, path)
    ann = Path(ds.path) if ds.path else s.roots.resolve(root, path)
    report = cached(s, ("validate", str(ann), stamp(ann)), lambda: validate(ds))
    d = report.to_dict()
    d["problems"] = d["problems"][:1000]
    for p in d["problems"]:
        p["link"] = p["image_id"] if p["image_id"] in ds.images else None
    return d


# ------------------------------------------------------------------ results
@router.get("/results")
def results(s: Srv):
    return {"results": _found(s, ("evaluation", "run"))}


def _read_csv(path: Path, max_rows: int = 100_000) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= max_rows:
                break
            rows.append({k: _num(v) for k, v in row.items() if k is not None})
    return rows


def _num(v: Any) -> Any:
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except ValueError:
        return v
    return x if math.isfinite(x) else None


@router.get("/evaluation")
def evaluation(s: Srv, root: int = Query(0), path: str = Query("", max_length=4096)):
    folder = s.roots.resolve(root, path)
    metrics = read_json(folder / "metrics.json", expect=dict)
    items = _read_csv(folder / "per_item.csv")
    inputs = metrics.get("inputs") or {}
    drill = all(inputs.get(k) and s.roots.locate(inputs[k]) for k in ("ground_truth", "predictions"))
    return {"root": root, "path": path, "metrics": metrics, "items": items, "drilldown": bool(drill)}


def _pairs(s, folder: Path) -> tuple[dict, Any]:
    from ..data.coco import CocoDataset
    from ..metrics.inputs import input_kind, load_pairs

    metrics = read_json(folder / "metrics.json", expect=dict)
    inputs = metrics.get("inputs") or {}
    gt, pred = inputs.get("ground_truth"), inputs.get("predictions")
    for what, p in (("ground truth", gt), ("predictions", pred)):
        if not p or s.roots.locate(p) is None:
            raise Forbidden(f"the evaluation's {what} ({p}) lies outside the data roots")
    pairs, _ = load_pairs(gt, pred)
    ds = CocoDataset.load(gt, check=False) if input_kind(gt, "ground truth") == "coco" else None
    return {p.key: p for p in pairs}, ds


@router.get("/evaluation/item")
def evaluation_item(
    s: Srv,
    root: int = Query(0),
    path: str = Query("", max_length=4096),
    item: str = Query(..., max_length=4096),
):
    folder = s.roots.resolve(root, path)
    pairs, ds = cached(
        s, ("pairs", str(folder), stamp(folder / "metrics.json")), lambda: _pairs(s, folder), 2
    )
    pair = pairs.get(item)
    if pair is None:
        raise DataError(f"no item {item!r} in this evaluation")
    img = None
    if ds is not None:
        by_name = {im.get("file_name"): iid for iid, im in ds.images.items()}
        iid = by_name.get(item)
        if iid is None and item.isdigit() and int(item) in ds.images:
            iid = int(item)
        if iid is not None:
            try:
                img = ds.load_image(iid)
            except DataError:
                img = None
    if img is None or img.shape[:2] != pair.gt.shape:
        img = np.full((*pair.gt.shape, 3), 96, np.uint8)
    return _png(comparison(img, pair.gt, pair.pred))


@router.get("/run")
def run(s: Srv, root: int = Query(0), path: str = Query("", max_length=4096)):
    folder = s.roots.resolve(root, path)
    info = read_json(folder / "run.json", expect=dict) if (folder / "run.json").is_file() else {}
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
    curves: dict[str, list[list[float]]] = {}
    logs = sorted((folder / "logs").glob("csv*/metrics.csv")) if (folder / "logs").is_dir() else []
    for f in logs:
        for row in _read_csv(f):
            x = row.get("epoch") if row.get("epoch") is not None else row.get("step")
            if not isinstance(x, float):
                continue
            for k, v in row.items():
                if k in ("epoch", "step") or not isinstance(v, float):
                    continue
                curves.setdefault(k, []).append([x, v])
    return {"root": root, "path": path, "run": info, "metrics": metrics, "curves": curves}


# ------------------------------------------------------------------ jobs
@router.get("/jobs")
def jobs(s: Srv):
    return {"jobs": s.jobs.list()}


@router.get("/jobs/{job_id}")
def job(s: Srv, job_id: str):
    return s.jobs.get(job_id).public()


@router.post("/jobs/{job_id}/cancel")
def cancel(s: Srv, job_id: str):
    return s.jobs.cancel(job_id).public()


class PredictFolder(Body):
    model: str = Field(max_length=512)
    input: FileRef
    out: FileRef


class Evaluate(Body):
    gt: FileRef
    pred: FileRef
    out: FileRef
    protocol: str = Field("binary", max_length=64)


def _new_output(s, ref: FileRef) -> Path:
    from ..io import check_output

    target = s.roots.resolve(ref.root, ref.path, must_exist=False)
    if target == s.roots.root(ref.root):
        raise Forbidden("the output cannot be a data root itself")
    check_output(target)  # refused when it exists: nothing a user owns is replaced
    return target


class _Progress:
    """A semantic predictor that reports each batch to its job and stops there when cancelled."""

    def __init__(self, predictor: Any, job: Job, total: int):
        self._p, self._job, self._done = predictor, job, 0
        job.progress(0, total, "predicting")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def probabilities(self, images):
        self._job.progress(self._done)
        out = self._p.probabilities(images)
        self._done += len(images)
        self._job.progress(self._done)
        return out


@router.post("/jobs/predict")
def predict_folder(s: Srv, req: PredictFolder):
    """A semantic model over a folder / data set under a root into a new output folder (``predict_path``)."""
    from ..inference.semantic_files import input_kind, predict_path
    from ..io import is_image

    src = s.roots.resolve(req.input.root, req.input.path)
    kind = input_kind(src)
    if kind not in ("folder", "coco", "image"):
        raise DataError(f"{req.input.path!r} is a {kind}; folders, data sets and images are predicted here")
    out = _new_output(s, req.out)
    entry, predictor = s.models.predictor(req.model)
    if entry.family != "semantic":
        raise DataError(f"model {req.model!r} is {entry.family}; folder prediction runs semantic models")
    if kind == "folder":
        total = sum(1 for p in src.rglob("*") if p.is_file() and is_image(p))
    elif kind == "coco":
        total = len(dataset_at(s, req.input.root, req.input.path).images)
    else:
        total = 1

    def work(job: Job) -> dict:
        with entry.lock:
            res = predict_path(_Progress(predictor, job, total), src, out)
        where = s.roots.locate(res["predicted"])
        return {"predicted": where and {"root": where[0], "path": where[1]}, "images": total}

    return s.jobs.start("predict", f"predict {src.name} -> {out.name}", work).public()


@router.post("/jobs/evaluate")
def evaluate_job(s: Srv, req: Evaluate):
    """Score predictions against ground truth under the roots into a new folder (``evaluate.save_results``)."""
    from ..evaluate import evaluate, save_results

    gt = s.roots.resolve(req.gt.root, req.gt.path)
    pred = s.roots.resolve(req.pred.root, req.pred.path)
    out = _new_output(s, req.out)

    def work(job: Job) -> dict:
        job.progress(0, 2, f"scoring ({req.protocol})")
        result = evaluate(gt, pred, req.protocol)
        if job.cancelled:  # the scorer runs in one call: a cancel takes effect before anything is written
            raise Cancelled()
        job.progress(1, 2, "writing")
        save_results(result, out, gt, pred)
        job.progress(2, 2, "done")
        return {"evaluation": {"root": req.out.root, "path": req.out.path}, "metrics": _short(result)}

    return s.jobs.start("evaluate", f"evaluate {pred.name} ({req.protocol})", work).public()


def _short(result: Any) -> dict:
    d = result.to_dict().get("metrics", {})
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
