"""HTML sections of an evaluation result: headline numbers, conventions, distributions, worst items with overlays.

Why: ``scopeseg evaluate`` and the training report render the same ``EvalResult`` (``metrics.protocols``), so a
number reads the same, with its convention, wherever it appears.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..metrics.protocols import PROTOCOLS, EvalResult
from .html import HtmlReport


def _flat_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cards, tables = {}, []
    for k, v in metrics.items():
        if isinstance(v, dict):
            tables.append({"name": k, "values": v})
        else:
            cards[k] = v
    return cards, tables


def build_report(
    result: EvalResult, gt: str | Path | None = None, pred: str | Path | None = None
) -> HtmlReport:
    """HTML report of one evaluation: its inputs, then ``add_result_sections``."""
    proto = PROTOCOLS.get(result.protocol)
    rep = HtmlReport(f"Evaluation: {result.protocol}")
    rep.paragraph(proto.description if proto else "")
    if gt or pred:
        rep.table([{"ground truth": str(gt), "predictions": str(pred), "items": len(result.items)}])
    return add_result_sections(rep, result)


def add_result_sections(rep: HtmlReport, result: EvalResult, all_items_max: int = 200) -> HtmlReport:
    """Append headline numbers, conventions, per-class tables, distributions and worst cases to ``rep``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    if len(result.items) <= all_items_max:
        rep.heading("All items").table(result.items)
    return rep


def overlay_panel(gt: np.ndarray, pred: np.ndarray, image: Any = None, max_side: int = 320) -> np.ndarray:
    """Side-by-side RGB panel: image (if any) | GT labels | predicted labels | TP/FP/FN error map."""
    import cv2

    from ..viz import colorize_labels, error_map

    h, w = gt.shape
    tiles = [colorize_labels(gt), colorize_labels(pred), error_map(gt > 0, pred > 0)]
    if image is not None:
        from ..io import read_image

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
