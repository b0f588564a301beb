"""Run a semantic ``Predictor`` over an image, a folder, a COCO data set or a video and write the results.

Outputs in ``OUT`` (see ``inference.predictions``): ``predicted/`` (the canonical data set of the
predictions: RLE, ``score`` = mean probability inside the mask, images linked or, for a video, written as
frames) and ``results.json`` (COCO results keyed to its ids: a COCO input's own image ids, its category ids
for model classes of the same name); views for people: ``masks/*.png`` (binary 0/255, multi-class class
index), ``overlays/*.jpg`` and for a video or stream ``<name>_overlay.mp4`` (``inference.streams``). The whole folder appears at once (a
temp sibling renamed at the end); an existing ``OUT`` is refused unless ``overwrite`` (``--overwrite``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ..config import BaseConfig
from ..data.coco import CocoDataset
from ..errors import ConfigError, DataError
from ..io import check_output, is_image, is_video, read_image
from ..progress import track
from .predictions import MaskViews, PredictionWriter, model_categories
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
    # videos and streams (inference.streams)
    stride: int = Field(1, ge=1)  # predict every stride-th frame
    resize: tuple[int, int] | None = None  # HxW frames are scaled to while decoding (480x736)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # overlay opacity
    contours: bool = True  # overlay draws region outlines
    smooth: float = Field(0.0, ge=0.0, lt=1.0)  # EMA factor over frame probabilities (0: off)
    partial: bool = False  # a decoding error publishes the frames before it (noted) instead of failing
    max_frames: int | None = Field(None, ge=1)  # stop after this many decoded frames (streams)
    # archives (a folder of videos, one unit per video: scopeseg.archive)
    runner: Literal["local", "ray"] = "local"  # ray: units on Ray workers (pip install 'scopeseg[ray]')
    address: str | None = None  # runner=ray: auto | HOST:PORT of a running cluster (None: a local one)
    workers: int | None = Field(None, ge=1)  # runner=ray: workers, each with one engine of `threads` threads

    @field_validator("resize", mode="before")
    @classmethod
    def _hxw(cls, v: Any) -> Any:
        if isinstance(v, str) and re.fullmatch(r"\d+x\d+", v.strip()):
            return tuple(int(x) for x in v.strip().split("x"))
        return v


#: PredictConfig keys that apply to videos and streams only
VIDEO_KEYS = ("stride", "resize", "alpha", "contours", "smooth", "partial", "max_frames")
#: PredictConfig keys that choose where units run, not what they give (left out of an archive job's digest)
RUNNER_KEYS = ("runner", "address", "workers", "threads")


def input_kind(path: str | Path) -> str:
    """``image`` | ``folder`` | ``coco`` | ``video`` | ``stream`` (URL, device, pipe) for a prediction input."""
    from ..video_io import is_stream

    if is_stream(path):
        return "stream"
    path = Path(path)
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
    with PredictionWriter(out, model_categories(predictor.classes, gt), images, overwrite) as w:
        frames = MaskViews(predictor, w, masks, overlays)
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
@_register("stream")
def predict_video(
    predictor: Predictor,
    path: str | Path,
    out: Path,
    masks: bool = False,
    overlays: bool = True,
    images: bool = True,
    overwrite: bool = False,
    **video: Any,
) -> dict[str, Any]:
    """Decode -> predict -> overlay mp4 + the predicted COCO-video data set (``streams.predict_video``)."""
    from .streams import predict_video as run

    return run(predictor, path, out, masks, overlays, images, overwrite, **video)


def predict_path(
    predictor: Predictor, input_path: str | Path, out: str | Path, overwrite: bool = False, **kw: Any
) -> dict[str, Any]:
    """Predict any supported input into ``out``; returns what was written (``predicted``, ``results``, ...).

    ``out`` appears whole at the end; an existing ``out`` is refused unless ``overwrite`` (then replaced
    only when the prediction succeeded).
    """
    kind, out = input_kind(input_path), Path(out)
    path = input_path if kind == "stream" else Path(input_path)
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
    kind = input_kind(input_path)
    video = {k: getattr(cfg, k) for k in VIDEO_KEYS}
    if kind not in ("video", "stream"):
        changed = [k for k in VIDEO_KEYS if video[k] != PredictConfig.model_fields[k].default]
        if changed:
            raise ConfigError(f"{', '.join(changed)} apply to videos and streams only, not to a {kind} input")
        video = {}
    spread = [k for k in RUNNER_KEYS[:3] if getattr(cfg, k) != PredictConfig.model_fields[k].default]
    if spread:
        raise ConfigError(
            f"{', '.join(spread)} apply to archives (a folder of videos), not to a {kind} input"
        )
    check_output(out, overwrite)
    predictor = Predictor.from_pretrained(
        model, cfg.engine, cfg.precision, cfg.threads, batch_size=cfg.batch_size, threshold=cfg.threshold
    )
    masks = cfg.masks if cfg.masks is not None else kind not in ("video", "stream")
    return predict_path(
        predictor, input_path, out, overwrite, masks=masks, overlays=cfg.overlays, images=cfg.images, **video
    )
