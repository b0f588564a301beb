"""Run a semantic ``Predictor`` over an image, a folder, a COCO data set or a video and write the results.

Outputs in ``OUT``: ``masks/*.png`` (binary 0/255, multi-class class index), ``overlays/*.jpg``,
``predictions.json`` (canonical COCO data set of the predictions, RLE, ``score`` = mean probability inside
the mask); for a COCO input also ``results.json`` (COCO results keyed to its image and category ids); for a
video ``<name>_overlay.mp4`` and ``<name>.json`` (COCO-video). Files are written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data.coco import PALETTE, CocoDataset
from ..errors import DataError
from ..io import is_image, is_video, read_image, write_image, write_json
from ..progress import track
from .semantic import Predictor

INPUT_KINDS: dict[str, Callable[..., dict[str, Any]]] = {}


def input_kind(path: Path) -> str:
    """``image`` | ``folder`` | ``coco`` | ``video`` for a prediction input path."""
    if not path.exists():
        raise DataError("input not found", path)
    if path.is_dir():
        return "coco" if (path / "annotations.json").is_file() else "folder"
    if path.suffix.lower() == ".json":
        return "coco"
    if is_video(path):
        return "video"
    if is_image(path):
        return "image"
    raise DataError(
        "unsupported input (expected an image, a folder of images, a COCO JSON / data folder or a video)",
        path,
    )


def _register(kind: str):
    def deco(fn):
        INPUT_KINDS[kind] = fn
        return fn

    return deco


class _Writer:
    """Accumulates predicted frames into a canonical data set and writes masks and overlays."""

    def __init__(self, predictor: Predictor, out: Path, masks: bool, overlays: bool):
        self.p, self.out, self.masks, self.overlays = predictor, out, masks, overlays
        self.ds = CocoDataset(root=out)
        self.colors = {i + 1: PALETTE[i % len(PALETTE)] for i in range(len(predictor.classes))}
        for i, name in enumerate(predictor.classes):
            self.ds.add_category(name, id=i + 1, color=self.colors[i + 1])

    def add(
        self,
        img: np.ndarray,
        probs: np.ndarray,
        stem: str,
        file_name: str,
        write_files: bool = True,
        **image_kw,
    ) -> tuple[int, np.ndarray]:
        labels = self.p.labels(probs)
        iid = self.ds.add_image(file_name, img.shape[0], img.shape[1], **image_kw)
        for c in range(1, len(self.p.classes) + 1):
            m = labels == c
            if m.any():
                score = float(probs[0][m].mean() if self.p.binary else probs[c][m].mean())
                self.ds.add_annotation(iid, c, m, score=round(score, 5))
        if write_files and self.masks:
            write_image(self.out / "masks" / f"{stem}.png", labels * 255 if self.p.binary else labels)
        if write_files and self.overlays:
            from ..viz import overlay

            write_image(self.out / "overlays" / f"{stem}.jpg", overlay(img, labels, self.colors), quality=90)
        return iid, labels


def _predict_images(
    predictor: Predictor, items: list[tuple[str, Path]], out: Path, masks: bool, overlays: bool
) -> _Writer:
    w = _Writer(predictor, out, masks, overlays)
    bs = predictor.batch_size
    for start in track(range(0, len(items), bs), "predicting", total=(len(items) + bs - 1) // bs):
        chunk = items[start : start + bs]
        images = [read_image(p) for _, p in chunk]
        for (name, _p), img, probs in zip(chunk, images, predictor.probabilities(images)):
            w.add(img, probs, Path(name).with_suffix("").as_posix(), name)
    return w


@_register("image")
def predict_image_file(
    predictor: Predictor, path: Path, out: Path, masks: bool = True, overlays: bool = True
) -> dict[str, Any]:
    w = _predict_images(predictor, [(path.name, path)], out, masks, overlays)
    w.ds.save(out / "predictions.json")
    return {"images": 1, "predictions": str(out / "predictions.json")}


@_register("folder")
def predict_folder(
    predictor: Predictor, path: Path, out: Path, masks: bool = True, overlays: bool = True
) -> dict[str, Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p))
    if not files:
        raise DataError("no images in folder", path)
    w = _predict_images(predictor, [(p.relative_to(path).as_posix(), p) for p in files], out, masks, overlays)
    w.ds.save(out / "predictions.json")
    return {"images": len(files), "predictions": str(out / "predictions.json")}


@_register("coco")
def predict_coco(
    predictor: Predictor, path: Path, out: Path, masks: bool = True, overlays: bool = True
) -> dict[str, Any]:
    gt = CocoDataset.load(path)
    items = [(gt.images[i]["file_name"], gt.image_path(i)) for i in gt.images]
    w = _predict_images(predictor, items, out, masks, overlays)
    # COCO results keyed to the input's ids, categories matched by name; a model class that is no category
    # of the input (a binary "instrument" model on per-type GT) gets no results rather than a wrong id
    by_name = {c["name"]: cid for cid, c in gt.categories.items()}
    results = []
    for gt_iid, pred_iid in zip(gt.images, w.ds.images):
        for a in w.ds.image_anns(pred_iid):
            name = w.ds.categories[a["category_id"]]["name"]
            if name in by_name:
                results.append(
                    {
                        "image_id": gt_iid,
                        "category_id": by_name[name],
                        "segmentation": a["segmentation"],
                        "bbox": a["bbox"],
                        "score": a["score"],
                    }
                )
    w.ds.save(out / "predictions.json")
    summary = {"images": len(items), "predictions": str(out / "predictions.json")}
    unmatched = sorted(set(predictor.classes) - set(by_name))
    if len(unmatched) < len(predictor.classes):
        write_json(out / "results.json", results)
        summary["results"] = str(out / "results.json")
    if unmatched:
        summary["note"] = f"model classes {unmatched} are no category of {path}; they are not in results.json"
    return summary


@_register("video")
def predict_video(
    predictor: Predictor, path: Path, out: Path, masks: bool = False, overlays: bool = True
) -> dict[str, Any]:
    """Decode -> predict (batched, bounded memory) -> overlay mp4 + COCO-video JSON of the predictions."""
    from ..video_io import VideoWriter, iter_frames, video_info
    from ..viz import overlay

    info = video_info(path)
    w = _Writer(predictor, out, masks, False)
    vid = w.ds.add_video(path.stem, fps=info["fps"], source=str(path))
    writer = VideoWriter(out / f"{path.stem}_overlay.mp4", fps=info["fps"] or 25.0) if overlays else None
    n = 0
    try:
        frames = ((i, f) for i, f in iter_frames(path))
        for batch in _batched(track(frames, "predicting video", total=info["frames"]), predictor.batch_size):
            imgs = [f for _, f in batch]
            for (i, img), probs in zip(batch, predictor.probabilities(imgs)):
                _, labels = w.add(
                    img,
                    probs,
                    f"{path.stem}_{i:06d}",
                    f"{path.stem}/{i:06d}.jpg",
                    write_files=masks,
                    video_id=vid,
                    frame_index=i,
                )
                if writer is not None:
                    writer.write(overlay(img, labels, w.colors))
                n += 1
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    w.ds.save(out / f"{path.stem}.json")
    res = {"frames": n, "predictions": str(out / f"{path.stem}.json")}
    if overlays:
        res["overlay_video"] = str(out / f"{path.stem}_overlay.mp4")
    return res


def _batched(items, n: int) -> Iterator[list]:
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


def predict_path(predictor: Predictor, input_path: str | Path, out: str | Path, **kw: Any) -> dict[str, Any]:
    """Predict any supported input into ``out``; returns a summary of what was written."""
    path, out = Path(input_path), Path(out)
    kind = input_kind(path)
    out.mkdir(parents=True, exist_ok=True)
    return {"kind": kind, **INPUT_KINDS[kind](predictor, path, out, **kw)}
