"""Prompted segmentation of image files: prompts from the config, a prompts JSON, or COCO ground truth.

Prompts are xyxy boxes in original pixels (unlike COCO's xywh ``bbox``) and ``[x, y, label]`` points; the
points of an entry are shared by all its boxes (one prompt set per box), or form one prompt set alone.
Outputs (``inference.predictions``): ``predicted/`` (a data set, one annotation per prompt, ``score`` =
predicted IoU; the ground truth's image and category ids with ``from_gt``) and ``results.json`` (COCO
results keyed to it), which ``scopeseg evaluate`` scores; views: a label-map PNG per image (prompt i -> i)
and an overlay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ..config import BaseConfig
from ..errors import ConfigError, DataError
from ..io import check_inside, check_output, image_size, read_image, read_json, write_image
from ..progress import track
from ..viz import PROMPT_COLORS
from .predictions import PredictionWriter
from .prompt import PromptPredictor, check_boxes, check_points

log = logging.getLogger(__name__)

COLORS = np.array(PROMPT_COLORS, np.uint8)


@dataclass
class PromptSet:
    """Prompts of one image: boxes ``(N, 4)`` xyxy and points ``(P, 3)`` ``[x, y, label]`` (shared)."""

    file_name: str
    boxes: list[list[float]] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    image_id: int | None = None
    category_ids: list[int] | None = None


class PromptEngineConfig(BaseConfig):
    """Engine settings of the promptable commands (``segment``, ``medsam-infer``)."""

    #: auto: the fastest engine measured for this CPU at the asked precision
    engine: Literal["torch", "onnx", "openvino", "auto"] = "torch"
    #: encoder precision: bf16 (torch; openvino on CPUs with avx512_bf16/AMX); int8 = dynamic int8 MatMuls,
    #: int8-static = calibrated QDQ (onnx, openvino)
    precision: Literal["fp32", "bf16", "int8", "int8-static"] = "fp32"
    threads: int | None = Field(None, ge=1)  # CPU threads (None: the torch / ORT default)
    #: box zoom: auto (the model's default: on for litemedsam-scope), off, or MARGIN,MIN_SIDE (e.g. 0.5,160):
    #: each box segmented in its own crop (one encoder pass per box)
    zoom: str = "auto"

    def predictor(self, model: str | Path) -> PromptPredictor:
        """The ``PromptPredictor`` of ``model`` with these settings."""
        return PromptPredictor.from_pretrained(
            model, engine=self.engine, precision=self.precision, threads=self.threads, zoom=self.zoom
        )


class SegmentConfig(PromptEngineConfig):
    """Settings of ``scopeseg segment MODEL INPUT OUT key=value...`` (where the prompts come from, decoding)."""

    boxes: list[list[float]] = []  # xyxy pixels: boxes=x0,y0,x1,y1 or boxes=[[x0,y0,x1,y1],...]
    points: list[list[float]] = []  # points=x,y[,label] or points=[[x,y,label],...]; label 1 / 0
    prompts: str | None = None  # a prompts JSON: [{"file_name", "boxes", "points"}]; INPUT = image folder
    from_gt: bool = False  # one box per ground-truth annotation of the COCO data set INPUT
    jitter: float = Field(0.0, ge=0.0)  # from_gt: move box sides by up to this fraction of the side
    seed: int = 0  # from_gt: jitter seed
    multimask: bool = False  # decode 3 masks per prompt and keep the best-scored one
    overlays: bool = True
    images: bool = True  # store the images (links) in the predicted data set

    @field_validator("boxes", mode="before")
    @classmethod
    def _boxes(cls, v: Any) -> Any:
        return _prompt_list(v, parse_box, 4)

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> Any:
        return _prompt_list(v, parse_point, (2, 3))


def _prompt_list(v: Any, parse, sizes: int | tuple[int, ...]) -> Any:
    """One prompt as text or a flat list, or a list of prompts -> a list of parsed prompts."""
    if isinstance(v, str):
        return [parse(v)]
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
        v = [v]
    if isinstance(v, (list, tuple)):
        return [parse(",".join(str(x) for x in p)) if isinstance(p, (list, tuple)) else p for p in v]
    return v


def parse_box(text: str) -> list[float]:
    """``"x0,y0,x1,y1"`` -> 4 floats."""
    vals = _floats(text, "boxes")
    if len(vals) != 4:
        raise ConfigError(f"boxes {text!r}: expected x0,y0,x1,y1")
    return vals


def parse_point(text: str) -> list[float]:
    """``"x,y,label"`` (label 1 positive, 0 negative; default 1) -> 3 floats."""
    vals = _floats(text, "points")
    if len(vals) == 2:
        vals.append(1.0)
    if len(vals) != 3 or vals[2] not in (0.0, 1.0):
        raise ConfigError(f"points {text!r}: expected x,y,label with label 1 (positive) or 0 (negative)")
    return vals


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{what} {text!r}: not a comma-separated list of numbers") from None


def load_prompts(path: str | Path) -> list[PromptSet]:
    """Read a prompts JSON: a list of ``{"file_name", "boxes": [[x0,y0,x1,y1]...], "points": [[x,y,l]...]}``."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError("prompts file must hold a JSON list of {file_name, boxes, points}", path)
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "file_name" not in item:
            raise DataError(f"entry {i}: needs a 'file_name'", path)
        extra = set(item) - {"file_name", "boxes", "points", "image_id"}
        if extra:
            raise DataError(f"entry {i}: unknown key(s) {', '.join(sorted(extra))}", path)
        boxes, points = item.get("boxes") or [], item.get("points") or []
        if not boxes and not points:
            raise DataError(f"entry {i} ({item['file_name']}): no boxes or points", path)
        if any(not isinstance(b, list) or len(b) != 4 or not all(map(_is_number, b)) for b in boxes):
            raise DataError(f"entry {i} ({item['file_name']}): boxes must be [x0, y0, x1, y1] lists", path)
        if any(not isinstance(p, list) or len(p) != 3 or not all(map(_is_number, p)) for p in points):
            raise DataError(f"entry {i} ({item['file_name']}): points must be [x, y, label] lists", path)
        out.append(PromptSet(item["file_name"], boxes, points, item.get("image_id")))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def jitter_box(box: np.ndarray, size: tuple[int, int], jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Move each side by up to ``jitter`` x the box side (uniform), clipped to the image; never degenerate."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d = rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
    out = np.array([x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]])
    out = np.clip(out, 0, [size[1], size[0], size[1], size[0]])
    if out[2] - out[0] < 1 or out[3] - out[1] < 1:
        return np.asarray(box, np.float64)
    return out


def prompts_from_coco(dataset, jitter: float = 0.0, seed: int = 0) -> list[PromptSet]:
    """One box prompt per ground-truth annotation (its mask's tight xyxy box, optionally jittered)."""
    from ..data import rle as rle_mod

    rng = np.random.default_rng(seed)
    out = []
    for image_id, img in sorted(dataset.images.items()):
        anns = [a for a in dataset.annotations.values() if a["image_id"] == image_id]
        boxes, cats = [], []
        for a in sorted(anns, key=lambda a: a["id"]):
            x, y, w, h = rle_mod.bbox(dataset.rle(a))
            if w < 1 or h < 1:
                continue
            box = np.array([x, y, x + w, y + h], np.float64)
            if jitter > 0:
                box = jitter_box(box, (img["height"], img["width"]), jitter, rng)
            boxes.append(box.tolist())
            cats.append(int(a["category_id"]))
        if boxes:
            out.append(PromptSet(img["file_name"], boxes, [], image_id, cats))
    return out


def overlay(
    image: np.ndarray, masks: np.ndarray, boxes: list[list[float]], alpha: float = 0.45
) -> np.ndarray:
    """Colour each mask over the image and draw its box."""
    import cv2

    out = image.astype(np.float32).copy()
    for i, m in enumerate(masks):
        out[m] = (1 - alpha) * out[m] + alpha * COLORS[i % len(COLORS)]
    out = out.astype(np.uint8)
    for i, b in enumerate(boxes):
        color = tuple(int(c) for c in COLORS[i % len(COLORS)])
        cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), color, 2)
    return out


def segment_one(predictor: PromptPredictor, image: np.ndarray, prompts: PromptSet, multimask: bool = False):
    """Run one image's prompts; returns the ``PromptResult`` (best of 3 per prompt when multimask)."""
    predictor.set_image(image)
    boxes = np.asarray(prompts.boxes, np.float64) if prompts.boxes else None
    pts = np.asarray(prompts.points, np.float64) if prompts.points else None
    res = predictor.predict(
        boxes=boxes,
        points=None if pts is None else pts[None, :, :2],
        point_labels=None if pts is None else pts[None, :, 2],
        multimask=multimask,
    )
    if multimask:  # keep the mask with the best predicted IoU per prompt
        best = res.scores.argmax(axis=1)
        rows = np.arange(len(best))
        res.masks, res.scores = res.masks[rows, best], res.scores[rows, best]
        res.low_res_logits = res.low_res_logits[rows, best]
    return res


def _image_path(root: Path, ps: PromptSet) -> Path:
    return check_inside(root, ps.file_name) if root.is_dir() else root


def check_prompt_sets(root: Path, sets: list[PromptSet]) -> None:
    """Check every prompt set against its image's size (read from the header) before anything runs.

    Why: a box outside image 500 is refused before the model loads and before any output is written.
    """
    for ps in sets:
        path = _image_path(root, ps)
        size = image_size(path)
        try:
            if ps.boxes:
                check_boxes(ps.boxes, size)
            if ps.points:
                pts = np.asarray(ps.points, np.float64)
                check_points(pts[None, :, :2], pts[None, :, 2], size, len(ps.boxes) or None)
        except DataError as e:
            raise DataError(str(e), path) from None


def segment_files(
    predictor: PromptPredictor | Callable[[], PromptPredictor],
    root: str | Path,
    prompt_sets: list[PromptSet],
    out_dir: str | Path,
    multimask: bool = False,
    overlays: bool = True,
    categories: list[dict[str, Any]] | None = None,
    images: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Segment every prompt set's image under ``root``; write ``predicted/``, ``results.json`` and views.

    ``categories`` (``{"id", "name", ...}``) is the category table of the predicted data set; without it,
    every mask is category 1 ``object``. A prompt set's ``image_id`` (if given) is kept as the image id.
    ``out_dir`` appears whole at the end; an existing one is refused unless ``overwrite``. ``predictor`` may
    be a function that loads it, called once the prompts (against the image sizes) and ``out_dir`` are checked.
    """
    root, out_dir = Path(root), Path(out_dir)
    check_prompt_sets(root, prompt_sets)
    check_output(out_dir, overwrite)
    if not isinstance(predictor, PromptPredictor):
        predictor = predictor()
    summary = []
    cats = categories or [{"id": 1, "name": "object"}]
    with PredictionWriter(out_dir, cats, images, overwrite) as writer:
        for ps in track(prompt_sets, "segment", total=len(prompt_sets)):
            path = _image_path(root, ps)
            image = read_image(path)
            try:
                res = segment_one(predictor, image, ps, multimask)
            except DataError as e:  # name the image whose prompts are wrong
                raise DataError(str(e), path) from None
            stem = Path(ps.file_name).with_suffix("")
            labels = np.zeros(image.shape[:2], np.uint8 if len(res.masks) < 256 else np.uint16)
            for i, m in enumerate(res.masks, start=1):
                labels[m] = i
            write_image(writer.view(f"masks/{stem.as_posix()}.png"), labels)
            if overlays:
                write_image(
                    writer.view(f"overlays/{stem.as_posix()}.jpg"), overlay(image, res.masks, ps.boxes)
                )
            iid = writer.add_image(ps.file_name, image.shape[0], image.shape[1], source=path, id=ps.image_id)
            for i, (m, sc) in enumerate(zip(res.masks, res.scores)):
                cid = ps.category_ids[i] if ps.category_ids is not None else 1
                writer.add_mask(iid, cid, m, sc, prompt_index=i)
            summary.append(
                {
                    "file_name": ps.file_name,
                    "scores": [round(float(x), 4) for x in res.scores],
                    "areas": [int(m.sum()) for m in res.masks],
                }
            )
    n_masks = len(writer.ds.annotations)
    return {
        "images": len(prompt_sets),
        "masks": n_masks,
        "out": str(out_dir),
        "items": summary,
        **writer.paths(),
    }


def prompt_sets(
    input_path: str | Path, cfg: SegmentConfig
) -> tuple[Path, list[PromptSet], list[dict[str, Any]] | None]:
    """The prompts a ``SegmentConfig`` asks for: ``(image root, prompt sets, categories or None)``.

    ``from_gt``: ``input_path`` is a COCO data set (its categories and image ids are kept); ``prompts``: a
    prompts JSON over the image folder ``input_path``; else ``boxes`` / ``points`` on the image ``input_path``.
    """
    path = Path(input_path)
    given = [name for name, on in (("from_gt", cfg.from_gt), ("prompts", cfg.prompts), ("boxes/points", cfg.boxes or cfg.points)) if on]  # fmt: skip
    if len(given) != 1:
        what = f"{' and '.join(given)} together" if given else "no prompts"
        raise ConfigError(f"segment: {what}; give boxes=/points=, or prompts=JSON, or from_gt=true")
    if cfg.from_gt:
        from ..data.coco import load_dataset
        from ..data.records import resolve_data_path

        ds = load_dataset(path)
        cats = [
            {k: v for k, v in c.items() if k != "id"} | {"id": cid}
            for cid, c in sorted(ds.categories.items())
        ]
        return resolve_data_path(path)[1], prompts_from_coco(ds, jitter=cfg.jitter, seed=cfg.seed), cats
    if cfg.prompts:
        return path, load_prompts(cfg.prompts), None
    if not path.exists():
        raise DataError("image not found", path)
    if path.is_dir():  # boxes= / points= are pixels of one image
        raise DataError(
            "boxes=/points= prompt one image, not a folder (for a folder give prompts=JSON)", path
        )
    return path, [PromptSet(path.name, cfg.boxes, cfg.points)], None


def segment(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    cfg: SegmentConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``scopeseg segment``: assemble the prompts, check ``out``, load the model, segment into ``out``."""
    cfg = cfg or SegmentConfig()
    root, sets, cats = prompt_sets(input_path, cfg)
    return segment_files(
        lambda: cfg.predictor(model),
        root,
        sets,
        out,
        cfg.multimask,
        cfg.overlays,
        cats,
        cfg.images,
        overwrite,
    )
