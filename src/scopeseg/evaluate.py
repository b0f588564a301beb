"""Predictions + ground truth -> per-item table, aggregates and an HTML report; threshold search.

Why: one entry point scores any input layout under a named protocol (``metrics.protocols``) and writes the
numbers together with the convention and tolerance of each (``metrics.json``, ``per_item.csv``,
``report.html``), so a number never leaves without its definition.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .config import BaseConfig, Floats, Ints
from .errors import ConfigError, DataError
from .io import check_output, output_dir
from .metrics.inputs import Pair
from .metrics.protocols import PROTOCOLS, EvalResult, get_protocol, run_protocol, score_pairs
from .report.evaluation import build_report

log = logging.getLogger(__name__)

__all__ = [
    "PROTOCOLS",
    "EvalResult",
    "evaluate",
    "save_results",
    "build_report",
    "tune_threshold",
    "load_prob_maps",
]


def evaluate(
    gt: str | Path,
    pred: str | Path,
    protocol: str = "binary",
    runner: Literal["local", "ray"] = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    **params: Any,
) -> EvalResult:
    """Score ``pred`` against ``gt`` under a named protocol (see ``scopeseg.metrics.protocols.PROTOCOLS``).

    ``runner=ray``: units (videos) scored by ``workers`` Ray workers (``address``: a running cluster, else a
    local one) and combined into the same numbers (``archive.evaluation``); ``local`` scores in this process.
    ``pred`` may also be the OUT of ``scopeseg predict MODEL ARCHIVE OUT`` (frames matched by video and index).
    """
    from .archive.evaluation import evaluate_units, is_predict_archive

    if runner == "local" and not (address or (workers or 1) > 1) and not is_predict_archive(pred):
        return run_protocol(protocol, gt, pred, **params)

    return evaluate_units(gt, pred, protocol, runner, address, workers, threads, **params)


def _json_safe(obj: Any) -> Any:
    """NaN / inf become null / "inf" strings so metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def metrics_json(
    result: EvalResult, gt: str | Path | None = None, pred: str | Path | None = None
) -> dict[str, Any]:
    """The content of ``metrics.json``: protocol, params, metrics, conventions, item count and inputs (strict JSON)."""
    payload = result.to_dict()
    payload["inputs"] = {"ground_truth": str(gt) if gt else None, "predictions": str(pred) if pred else None}
    return _json_safe(payload)


def per_item_csv(result: EvalResult) -> str:
    """The per-item table as CSV text (NaN written as empty, inf as 'inf')."""
    cols: dict[str, None] = {}
    for r in result.items:
        for k in r:
            cols.setdefault(k, None)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    for r in result.items:
        w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return buf.getvalue()


def save_results(
    result: EvalResult,
    out_dir: str | Path,
    gt: str | Path | None = None,
    pred: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_item.csv`` and ``report.html`` into ``out_dir`` (atomically, as one folder).

    An existing ``out_dir`` is refused unless ``overwrite`` (then replaced once the new folder is written).
    """
    out_dir = Path(out_dir)
    check_output(out_dir, overwrite)
    report = build_report(result, gt, pred)
    with output_dir(out_dir, overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics_json(result, gt, pred), indent=2))
        (tmp / "per_item.csv").write_text(per_item_csv(result))
        (tmp / "report.html").write_text(report.render())
    return {name: out_dir / name for name in ("metrics.json", "per_item.csv", "report.html")}


# ------------------------------------------------------------------------------- threshold search
def load_prob_maps(folder: str | Path) -> dict[str, np.ndarray]:
    """Float probability maps (.npy, or .npz with one array / key 'prob') keyed by relative path stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("probability-map folder not found", folder)
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() not in (".npy", ".npz") or not f.is_file():
            continue
        try:
            if f.suffix.lower() == ".npy":
                a = np.load(f, allow_pickle=False)
            else:
                with np.load(f, allow_pickle=False) as z:
                    key = "prob" if "prob" in z else (z.files[0] if len(z.files) == 1 else None)
                    if key is None:
                        raise DataError(f"npz holds {z.files}; expected one array or a 'prob' array", f)
                    a = z[key]
        except (ValueError, OSError) as e:
            raise DataError(f"unreadable probability map ({e})", f) from None
        if a.dtype.kind != "f":
            raise DataError(f"probability map has dtype {a.dtype}; expected floats in [0, 1]", f)
        out[str(f.relative_to(folder).with_suffix(""))] = np.squeeze(a)
    if not out:
        raise DataError("no .npy/.npz probability maps found", folder)
    return out


def _opening(mask: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return mask
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.1, 0.91, 0.05), 2))


def _grid_scores(
    prob: np.ndarray, gt: np.ndarray, thresholds: Sequence[float], kernels: Sequence[int], metric: str
) -> np.ndarray:
    """Per-setting score of one item, shape (len(kernels), len(thresholds)).

    Why: each setting's mask is scored by the binary protocol (``score_pairs``) with empty rule ``one``: a
    correct empty prediction scores 1, so images without foreground still reward a clean threshold.
    """
    g, prob = np.asarray(gt) > 0, np.asarray(prob)
    pairs = [Pair(f"k{k}_t{t:g}", g, _opening(prob > t, k)) for k in kernels for t in thresholds]
    rows = score_pairs("binary", pairs, empty="one", surface=False).items
    return np.array([r[metric] for r in rows], dtype=np.float64).reshape(len(kernels), len(thresholds))


def _grid_result(
    total: np.ndarray, n: int, thresholds: Sequence[float], kernels: Sequence[int], metric: str
) -> dict[str, Any]:
    mean = total / max(n, 1)
    grid = [
        {"threshold": float(t), "kernel": int(k), "score": float(mean[i, j])}
        for i, k in enumerate(kernels)
        for j, t in enumerate(thresholds)
    ]
    best = max(grid, key=lambda r: (r["score"], -abs(r["threshold"] - 0.5), -r["kernel"]))
    return {"metric": metric, "best": best, "grid": grid, "num_items": n}


def tune_threshold(
    prob_maps: Sequence[np.ndarray] | dict[str, np.ndarray],
    gt_masks: Sequence[np.ndarray] | dict[str, np.ndarray],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    kernels: Sequence[int] = (0, 3, 5),
    metric: str = "dice",
) -> dict[str, Any]:
    """Grid-search the probability threshold and morphological opening kernel that maximise mean ``metric``.

    Masks are ``prob > threshold`` (as ``Predictor.labels``) then opened with an elliptic k x k kernel
    (0/1 = none). ``metric``: dice or iou per image, both empty = 1 (a correct empty prediction scores),
    averaged over images. Returns ``{"best": {threshold, kernel, score}, "grid": [...], ...}``.
    """
    if metric not in ("dice", "iou"):
        raise ConfigError(f"metric={metric!r}: choose dice or iou")
    if isinstance(prob_maps, dict) != isinstance(gt_masks, dict):
        raise ConfigError("pass probability maps and masks both as lists or both as dicts keyed by name")
    if isinstance(prob_maps, dict):
        missing = [k for k in gt_masks if k not in prob_maps]
        if missing:
            raise DataError(f"{len(missing)} masks have no probability map, e.g. {missing[0]!r}")
        if len(prob_maps) != len(gt_masks):
            log.warning("%d probability maps have no mask and are ignored", len(prob_maps) - len(gt_masks))
        keys = list(gt_masks)
        probs, gts = [prob_maps[k] for k in keys], [gt_masks[k] for k in keys]
    else:
        probs, gts = list(prob_maps), list(gt_masks)
        keys = [str(i) for i in range(len(probs))]
    if not probs or len(probs) != len(gts):
        raise DataError(f"{len(probs)} probability maps for {len(gts)} masks")
    thresholds, kernels = [float(t) for t in thresholds], [int(k) for k in kernels]
    total = np.zeros((len(kernels), len(thresholds)))
    for k, p, g in zip(keys, probs, gts):
        if np.shape(p) != np.shape(g):
            raise DataError(f"item {k}: probability map {np.shape(p)} vs mask {np.shape(g)}")
        total += _grid_scores(p, g, thresholds, kernels, metric)
    return _grid_result(total, len(probs), thresholds, kernels, metric)


def tune_threshold_model(
    model_dir: str | Path,
    data: str | Path,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    kernels: Sequence[int] = (0, 3, 5),
    metric: str = "dice",
    split: str | None = None,
) -> dict[str, Any]:
    """``tune_threshold`` for a saved model on a COCO data set (images read from disk, maps streamed).

    Foreground probability = the binary model's output, or 1 - P(background) for multi-class models.
    """
    from .data.coco import load_dataset
    from .inference.semantic import Predictor
    from .progress import track

    if metric not in ("dice", "iou"):
        raise ConfigError(f"metric={metric!r}: choose dice or iou")
    pred = Predictor.from_pretrained(model_dir)
    ds = load_dataset(data, split=split)
    if not ds.images:
        raise DataError("data set has no images", data)
    thresholds, kernels = [float(t) for t in thresholds], [int(k) for k in kernels]
    total = np.zeros((len(kernels), len(thresholds)))
    for iid in track(list(ds.images), "tuning threshold", total=len(ds.images)):
        prob = pred.probabilities([ds.load_image(iid)])[0]
        fg = prob[0] if pred.binary else 1.0 - prob[0]
        total += _grid_scores(fg, ds.semantic_mask(iid) > 0, thresholds, kernels, metric)
    return _grid_result(total, len(ds.images), thresholds, kernels, metric)


class TuneConfig(BaseConfig):
    """Settings of ``scopeseg tune-threshold PROBS GT [OUT] key=value...`` (the grid searched)."""

    thresholds: Floats | None = None  # probability thresholds (None: 0.10, 0.15, ..., 0.90)
    kernels: Ints = [0, 3, 5]  # opening kernel sizes (0 = none)
    metric: Literal["dice", "iou"] = "dice"  # per-image score to maximise (mean)


def tune_threshold_folders(
    probs: str | Path,
    gt: str | Path,
    thresholds: Sequence[float] | None = None,
    kernels: Sequence[int] = (0, 3, 5),
    metric: str = "dice",
) -> dict[str, Any]:
    """``tune_threshold`` on saved probability maps (or a model folder) against a mask folder / COCO data set."""
    from .metrics.inputs import input_kind, mask_files, read_label_map

    thr = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    if (Path(probs) / "config.json").is_file():
        from .io import read_json

        if (
            read_json(Path(probs) / "config.json").get("family") == "video"
        ):  # maps along first-frame-box propagations
            from .inference.video_objects import video_probability_maps

            return tune_threshold(*video_probability_maps(probs, gt), thr, kernels, metric)
        return tune_threshold_model(probs, gt, thr, kernels, metric)
    prob = load_prob_maps(probs)
    kind = input_kind(gt, "ground truth")
    if kind == "masks":
        masks = {k: read_label_map(f) for k, f in mask_files(Path(gt)).items()}
    elif kind == "coco":
        from .data.coco import CocoDataset

        ds = CocoDataset.load(gt)
        masks = {
            str(Path(str(im["file_name"])).with_suffix("")): ds.semantic_mask(i)
            for i, im in ds.images.items()
        }
    else:
        raise DataError("ground truth for tune-threshold must be a mask folder or COCO data set", gt)
    return tune_threshold(prob, masks, thr, kernels, metric)


def describe_protocols() -> list[dict[str, Any]]:
    """Name, description and default parameters of every protocol."""
    return [
        {"name": n, "description": p.description, "params": p.defaults} for n, p in sorted(PROTOCOLS.items())
    ]


def protocol_defaults(name: str) -> dict[str, Any]:
    """Default parameters of a protocol."""
    return dict(get_protocol(name).defaults)
