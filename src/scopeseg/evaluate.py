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
from typing import Any

import numpy as np

from .errors import ConfigError, DataError
from .io import atomic_dir
from .metrics.protocols import PROTOCOLS, EvalResult, get_protocol, run_protocol

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


def evaluate(gt: str | Path, pred: str | Path, protocol: str = "binary", **params: Any) -> EvalResult:
    """Score ``pred`` against ``gt`` under a named protocol (see ``scopeseg.metrics.protocols.PROTOCOLS``)."""
    return run_protocol(protocol, gt, pred, **params)


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
    result: EvalResult, out_dir: str | Path, gt: str | Path | None = None, pred: str | Path | None = None
) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_item.csv`` and ``report.html`` into ``out_dir`` (atomically, as one folder)."""
    out_dir = Path(out_dir)
    payload = result.to_dict()
    payload["inputs"] = {"ground_truth": str(gt) if gt else None, "predictions": str(pred) if pred else None}
    report = build_report(result, gt, pred)
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(_json_safe(payload), indent=2))
        (tmp / "per_item.csv").write_text(per_item_csv(result))
        (tmp / "report.html").write_text(report.render())
    return {name: out_dir / name for name in ("metrics.json", "per_item.csv", "report.html")}


def _flat_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cards, tables = {}, []
    for k, v in metrics.items():
        if isinstance(v, dict):
            tables.append({"name": k, "values": v})
        else:
            cards[k] = v
    return cards, tables


def build_report(result: EvalResult, gt: str | Path | None = None, pred: str | Path | None = None):
    """HTML report: headline numbers, conventions, per-class tables, distributions and worst cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import HtmlReport

    proto = PROTOCOLS.get(result.protocol)
    rep = HtmlReport(f"Evaluation: {result.protocol}")
    rep.paragraph(proto.description if proto else "")
    if gt or pred:
        rep.table([{"ground truth": str(gt), "predictions": str(pred), "items": len(result.items)}])
    cards, tables = _flat_metrics(result.metrics)
    rep.heading("Results").metrics(cards)
    rep.heading("Conventions (what each number means)")
    rep.table(
        [{"metric": k, "convention": v} for k, v in result.conventions.items()],
        columns=["metric", "convention"],
    )
    rep.code("\n".join(f"{k}: {v}" for k, v in result.params.items()) or "(defaults)")
    for t in tables:
        rep.heading(t["name"], 3).table([{"name": k, "value": v} for k, v in t["values"].items()])
    for col in result.primary:
        vals = np.array(
            [r[col] for r in result.items if isinstance(r.get(col), (int, float))], dtype=np.float64
        )
        finite = vals[np.isfinite(vals)]
        if finite.size:
            fig, ax = plt.subplots(figsize=(5, 2.8))
            ax.hist(finite, bins=min(30, max(5, finite.size // 3)), color="#2a6f97")
            ax.set_xlabel(col)
            ax.set_ylabel("items")
            n_bad = int(vals.size - finite.size)
            rep.heading(f"Distribution of {col}", 3).figure(
                fig, f"{finite.size} finite values" + (f"; {n_bad} NaN/inf not shown" if n_bad else "")
            )
        higher = result.higher_is_better.get(col, True)
        worst = sorted(result.items, key=lambda r, c=col, h=higher: _sort_key(r.get(c), h))[:10]
        if worst:
            rep.heading(f"Worst items by {col}", 3).table(worst)
    if result.examples:
        rep.heading("Worst items (image | ground truth | prediction | errors: green TP, red FP, blue FN)", 3)
        rep.images(
            [(overlay_panel(g, p, img), key) for key, (g, p, img) in result.examples.items()], max_width=720
        )
    if len(result.items) <= 200:
        rep.heading("All items").table(result.items)
    return rep


def _colorize(labels: np.ndarray) -> np.ndarray:
    from .data.coco import PALETTE

    pal = np.array([(0, 0, 0)] + [PALETTE[i % len(PALETTE)] for i in range(255)], dtype=np.uint8)
    return pal[np.clip(labels.astype(np.int64), 0, 255)]


def overlay_panel(gt: np.ndarray, pred: np.ndarray, image: Any = None, max_side: int = 320) -> np.ndarray:
    """Side-by-side RGB panel: image (if any) | GT labels | predicted labels | TP/FP/FN error map."""
    import cv2

    h, w = gt.shape
    g, q = gt > 0, pred > 0
    err = np.zeros((h, w, 3), np.uint8)
    err[g & q] = (40, 170, 60)
    err[q & ~g] = (220, 50, 50)
    err[g & ~q] = (50, 90, 230)
    tiles = [_colorize(gt), _colorize(pred), err]
    if image is not None:
        from .io import read_image

        try:
            img = read_image(image)
            if img.shape[:2] == (h, w):
                tiles.insert(0, img)
        except DataError:
            pass
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    tiles = [cv2.resize(t, size, interpolation=cv2.INTER_NEAREST) for t in tiles]
    sep = np.full((size[1], 4, 3), 255, np.uint8)
    out = [tiles[0]]
    for t in tiles[1:]:
        out += [sep, t]
    return np.concatenate(out, axis=1)


def _sort_key(v: Any, higher_is_better: bool) -> float:
    if not isinstance(v, (int, float)):
        return math.inf
    if math.isnan(v):
        return math.inf  # undefined (e.g. both empty) after every real score
    return v if higher_is_better else -v


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
    """Per-setting score of one item, shape (len(kernels), len(thresholds)); both empty scores 1."""
    from .metrics.overlap import dice_from_counts, iou_from_counts

    score_fn = dice_from_counts if metric == "dice" else iou_from_counts
    g = np.asarray(gt) > 0
    out = np.zeros((len(kernels), len(thresholds)))
    for i, k in enumerate(kernels):
        for j, t in enumerate(thresholds):
            m = _opening(np.asarray(prob) > t, k)
            tp = np.count_nonzero(m & g)
            out[i, j] = score_fn(tp, np.count_nonzero(m) - tp, np.count_nonzero(g) - tp, empty="one")
    return out


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
