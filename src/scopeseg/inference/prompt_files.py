"""Prompted segmentation of image files: prompts from the command line, a prompts JSON, or COCO ground truth.

Prompts are xyxy boxes in original pixels (unlike COCO's xywh ``bbox``) and ``[x, y, label]`` points; the
points of an entry are shared by all its boxes (one prompt set per box), or form one prompt set alone.
Outputs: a label-map PNG per image (prompt i -> value i), an overlay, and ``predictions.json`` (COCO
results with RLE, ``score`` = predicted IoU) that ``scopeseg evaluate`` can score against the data set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import check_inside, read_image, read_json, write_image, write_json
from ..progress import track
from .prompt import PromptPredictor

log = logging.getLogger(__name__)

COLORS = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ],
    np.uint8,
)


@dataclass
class PromptSet:
    """Prompts of one image: boxes ``(N, 4)`` xyxy and points ``(P, 3)`` ``[x, y, label]`` (shared)."""

    file_name: str
    boxes: list[list[float]] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    image_id: int | None = None
    category_ids: list[int] | None = None


def parse_box(text: str) -> list[float]:
    """``"x0,y0,x1,y1"`` -> 4 floats."""
    vals = _floats(text, "--box")
    if len(vals) != 4:
        raise DataError(f"--box {text!r}: expected x0,y0,x1,y1")
    return vals


def parse_point(text: str) -> list[float]:
    """``"x,y,label"`` (label 1 positive, 0 negative; default 1) -> 3 floats."""
    vals = _floats(text, "--point")
    if len(vals) == 2:
        vals.append(1.0)
    if len(vals) != 3 or vals[2] not in (0.0, 1.0):
        raise DataError(f"--point {text!r}: expected x,y,label with label 1 (positive) or 0 (negative)")
    return vals


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise DataError(f"{what} {text!r}: not a comma-separated list of numbers") from None


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
        if any(not isinstance(b, list) or len(b) != 4 for b in boxes):
            raise DataError(f"entry {i} ({item['file_name']}): boxes must be [x0, y0, x1, y1] lists", path)
        if any(not isinstance(p, list) or len(p) != 3 for p in points):
            raise DataError(f"entry {i} ({item['file_name']}): points must be [x, y, label] lists", path)
        out.append(PromptSet(item["file_name"], boxes, points, item.get("image_id")))
    return out


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


def segment_files(
    predictor: PromptPredictor,
    root: str | Path,
    prompt_sets: list[PromptSet],
    out_dir: str | Path,
    multimask: bool = False,
    overlays: bool = True,
) -> dict[str, Any]:
    """Segment every prompt set's image under ``root``; write label maps, overlays, predictions.json."""
    from ..data import rle as rle_mod

    root, out_dir = Path(root), Path(out_dir)
    predictions, summary = [], []
    for ps in track(prompt_sets, "segment", total=len(prompt_sets)):
        path = root / ps.file_name if root.is_dir() else root
        if root.is_dir():
            check_inside(root, ps.file_name)
        image = read_image(path)
        try:
            res = segment_one(predictor, image, ps, multimask)
        except DataError as e:  # name the image whose prompts are wrong
            raise DataError(str(e), path) from None
        stem = Path(ps.file_name).with_suffix("")
        labels = np.zeros(image.shape[:2], np.uint8 if len(res.masks) < 256 else np.uint16)
        for i, m in enumerate(res.masks, start=1):
            labels[m] = i
        write_image(out_dir / "masks" / f"{stem}.png", labels)
        if overlays:
            write_image(out_dir / "overlays" / f"{stem}.jpg", overlay(image, res.masks, ps.boxes))
        for i, (m, s) in enumerate(zip(res.masks, res.scores)):
            r = rle_mod.encode(m)
            pred = {
                "file_name": ps.file_name,
                "prompt_index": i,
                "segmentation": r,
                "bbox": rle_mod.bbox(r),
                "score": float(s),
                "area": int(m.sum()),
            }
            if ps.image_id is not None:
                pred["image_id"] = ps.image_id
            if ps.category_ids is not None:
                pred["category_id"] = ps.category_ids[i]
            predictions.append(pred)
        summary.append(
            {
                "file_name": ps.file_name,
                "scores": [round(float(s), 4) for s in res.scores],
                "areas": [int(m.sum()) for m in res.masks],
            }
        )
    write_json(out_dir / "predictions.json", predictions)
    return {"images": len(prompt_sets), "masks": len(predictions), "out": str(out_dir), "items": summary}
