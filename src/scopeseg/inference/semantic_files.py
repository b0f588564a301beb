"""Run a semantic ``Predictor`` over an image, a folder, a COCO data set or a video and write the results.

Outputs in ``OUT`` (see ``inference.predictions``): ``predicted/`` (the canonical data set of the
predictions: RLE, ``score`` = mean probability inside the mask, images linked or, for a video, written as
frames) and ``results.json`` (COCO results keyed to its ids: a COCO input's own image ids, its category ids
for model classes of the same name); views for people: ``masks/*.png`` (binary 0/255, multi-class class
index), ``overlays/*.jpg`` and for a video ``<name>_overlay.mp4``. The whole folder appears at once (a
temp sibling renamed at the end); an existing ``OUT`` is refused unless ``overwrite`` (``--overwrite``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import BaseConfig
from ..data.coco import CocoDataset
from ..errors import DataError
from ..io import check_output, is_image, is_video, read_image, write_image
from ..progress import track
from ..viz import palette_color
from .predictions import PredictionWriter
from .semantic import Predictor

INPUT_KINDS: dict[str, Callable[..., dict[str, Any]]] = {}


class PredictConfig(BaseConfig):
    """Settings of ``scopeseg predict MODEL INPUT OUT key=value...``."""

    batch_size: int = Field(4, ge=1)
    threshold: float | None = Field(None, ge=0.0, le=1.0)  # binary models; None: the model's own
    masks: bool | None = None  # mask PNG views; None: yes except for videos
    overlays: bool = True  # overlay images / overlay video
    images: bool = True  # store the images (links; video frames as JPEG) in the predicted data set
    #: onnx/openvino: exported once into MODEL/onnx (announced); auto: fastest measured for this CPU
    engine: Literal["torch", "onnx", "openvino", "auto"] = "torch"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: torch, or openvino on CPUs with avx512_bf16/AMX
    threads: int | None = Field(None, ge=1)  # CPU threads (None: the torch / ORT default)


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


def _categories(classes: list[str], gt: CocoDataset | None) -> list[dict[str, Any]]:
    """Model classes as categories: a COCO input's id for a class of the same name, else the next free id."""
    by_name = {c["name"]: cid for cid, c in gt.categories.items()} if gt is not None else {}
    next_id = max([0, *by_name.values()]) + 1 if by_name else 1
    out = []
    for i, name in enumerate(classes):
        cid = by_name.get(name)
        if cid is None:
            cid, next_id = next_id, next_id + 1
        out.append({"name": name, "id": cid, "color": palette_color(i)})
    return out


class _Frames:
    """Turns probability maps into masks of the predicted data set plus PNG / overlay views."""

    def __init__(self, predictor: Predictor, writer: PredictionWriter, masks: bool, overlays: bool):
        self.p, self.w, self.masks, self.overlays = predictor, writer, masks, overlays
        cats = list(writer.ds.categories)
        self.cat_ids = {i + 1: cid for i, cid in enumerate(cats)}  # label value -> category id
        self.colors = {i + 1: writer.ds.categories[cid]["color"] for i, cid in enumerate(cats)}

    def add(self, iid: int, probs: np.ndarray, stem: str, img: np.ndarray, views: bool = True) -> np.ndarray:
        labels = self.p.labels(probs)
        for c, cid in self.cat_ids.items():
            m = labels == c
            if m.any():
                score = float(probs[0][m].mean() if self.p.binary else probs[c][m].mean())
                self.w.add_mask(iid, cid, m, score)
        if views and self.masks:
            write_image(self.w.view(f"masks/{stem}.png"), labels * 255 if self.p.binary else labels)
        if views and self.overlays:
            from ..viz import overlay

            write_image(self.w.view(f"overlays/{stem}.jpg"), overlay(img, labels, self.colors), quality=90)
        return labels


def _predict_images(
    predictor: Predictor,
    items: list[tuple[str, Path, int | None]],
    out: Path,
    masks: bool,
    overlays: bool,
    images: bool,
    gt: CocoDataset | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Predict ``(file_name, path, image id or None)`` items; returns where the outputs are."""
    with PredictionWriter(out, _categories(predictor.classes, gt), images, overwrite) as w:
        frames = _Frames(predictor, w, masks, overlays)
        bs = predictor.batch_size
        for start in track(range(0, len(items), bs), "predicting", total=(len(items) + bs - 1) // bs):
            chunk = items[start : start + bs]
            pixels = [read_image(p) for _, p, _ in chunk]
            for (name, path, gid), img, probs in zip(chunk, pixels, predictor.probabilities(pixels)):
                iid = w.add_image(name, img.shape[0], img.shape[1], source=path, id=gid)
                frames.add(iid, probs, Path(name).with_suffix("").as_posix(), img)
    return w.paths()


@_register("image")
def predict_image_file(
    predictor: Predictor,
    path: Path,
    out: Path,
    masks: bool = True,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    return {
        "images": 1,
        **_predict_images(
            predictor, [(path.name, path, None)], out, masks, overlays, images, None, overwrite
        ),
    }


@_register("folder")
def predict_folder(
    predictor: Predictor,
    path: Path,
    out: Path,
    masks: bool = True,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p))
    if not files:
        raise DataError("no images in folder", path)
    items = [(p.relative_to(path).as_posix(), p, None) for p in files]
    res = _predict_images(predictor, items, out, masks, overlays, images, None, overwrite)
    return {"images": len(files), **res}


@_register("coco")
def predict_coco(
    predictor: Predictor,
    path: Path,
    out: Path,
    masks: bool = True,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict every image of a COCO data set, keeping its image ids (and category ids by class name)."""
    gt = CocoDataset.load(path)
    items = [(gt.images[i]["file_name"], gt.image_path(i), i) for i in gt.images]
    summary: dict[str, Any] = {
        "images": len(items),
        **_predict_images(predictor, items, out, masks, overlays, images, gt, overwrite),
    }
    unmatched = sorted(set(predictor.classes) - {c["name"] for c in gt.categories.values()})
    if unmatched:
        summary["note"] = f"model classes {unmatched} are no category of {path}: they got new category ids"
    return summary


@_register("video")
def predict_video(
    predictor: Predictor,
    path: Path,
    out: Path,
    masks: bool = False,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Decode -> predict (batched, bounded memory) -> overlay mp4 + the predicted COCO-video data set."""
    from ..video_io import VideoWriter, iter_frames, video_info
    from ..viz import overlay

    info = video_info(path)
    res: dict[str, Any] = {}
    n = 0
    with PredictionWriter(out, _categories(predictor.classes, None), images, overwrite) as w:
        frames = _Frames(predictor, w, masks, False)
        vid = w.add_video(path.stem, fps=info["fps"], source=str(path))
        name = f"{path.stem}_overlay.mp4"
        with VideoWriter(w.view(name), fps=info["fps"] or 25.0) if overlays else nullcontext() as writer:
            batches = _batched(
                track(iter_frames(path), "predicting video", total=info["frames"]), predictor.batch_size
            )
            for batch in batches:
                imgs = [f for _, f in batch]
                for (i, img), probs in zip(batch, predictor.probabilities(imgs)):
                    iid = w.add_image(
                        f"{path.stem}/{i:06d}.jpg",
                        img.shape[0],
                        img.shape[1],
                        pixels=img,
                        video_id=vid,
                        frame_index=i,
                    )
                    labels = frames.add(iid, probs, f"{path.stem}_{i:06d}", img, views=masks)
                    if writer is not None:
                        writer.write(overlay(img, labels, frames.colors))
                    n += 1
        if overlays:
            res["overlay_video"] = str(out / name)
    return {"frames": n, **w.paths(), **res}


def _batched(items, n: int) -> Iterator[list]:
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


def predict_path(
    predictor: Predictor, input_path: str | Path, out: str | Path, overwrite: bool = False, **kw: Any
) -> dict[str, Any]:
    """Predict any supported input into ``out``; returns what was written (``predicted``, ``results``, ...).

    ``out`` appears whole at the end; an existing ``out`` is refused unless ``overwrite`` (then replaced
    only when the prediction succeeded).
    """
    path, out = Path(input_path), Path(out)
    kind = input_kind(path)
    check_output(out, overwrite)
    return {"kind": kind, **INPUT_KINDS[kind](predictor, path, out, overwrite=overwrite, **kw)}


def predict_model(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    cfg: PredictConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``scopeseg predict``: load the model, predict ``input_path`` into ``out`` under ``cfg``.

    Input and output are checked before the model is loaded (a refused command costs nothing).
    """
    cfg = cfg or PredictConfig()
    input_kind(Path(input_path))
    check_output(out, overwrite)
    predictor = Predictor.from_pretrained(
        model, cfg.engine, cfg.precision, cfg.threads, batch_size=cfg.batch_size, threshold=cfg.threshold
    )
    path = Path(input_path)
    masks = cfg.masks if cfg.masks is not None else input_kind(path) != "video"
    return predict_path(
        predictor, path, out, overwrite, masks=masks, overlays=cfg.overlays, images=cfg.images
    )
