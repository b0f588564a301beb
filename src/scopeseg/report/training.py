"""HTML report of a training run: curves, per-class table, confusion, best/worst overlays, config."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .html import HtmlReport

GT_COLOR = (0, 200, 255)


def read_curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(step or epoch, value)] from Lightning's CSV logs (the run's and its resumes', in order)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for path in csv_logs(run_dir):
        _read_csv(path, curves)
    return curves


def csv_logs(run_dir: Path) -> list[Path]:
    """``logs/csv/metrics.csv`` then ``logs/csv-resume1/metrics.csv``, ... (those that exist)."""
    logs = Path(run_dir) / "logs"
    parts = [logs / "csv"] + sorted(
        logs.glob("csv-resume*"), key=lambda p: int(p.name.rsplit("resume", 1)[1])
    )
    return [p / "metrics.csv" for p in parts if (p / "metrics.csv").is_file()]


def _read_csv(path: Path, curves: dict[str, list[tuple[float, float]]]) -> None:
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, val in row.items():
                if key in ("epoch", "step") or val in ("", None):
                    continue
                x = (
                    float(row["epoch"])
                    if key.endswith("_epoch") or key.startswith("val_")
                    else float(row["step"])
                )
                curves.setdefault(key, []).append((x, float(val)))
    return curves


def _curves_figure(curves: dict[str, list[tuple[float, float]]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.2))
    for key in ("train_loss_step", "train_loss_epoch", "val_loss"):
        if key in curves:
            xs, ys = zip(*curves[key])
            axes[0].plot(
                xs, ys, label=key, lw=1 if key.endswith("step") else 2, marker="o" if len(xs) < 3 else None
            )
    axes[0].set_title("loss")
    axes[0].set_xlabel("step (train_loss_step) / epoch")
    axes[0].legend(fontsize=7)
    if "val_dice" in curves:
        xs, ys = zip(*curves["val_dice"])
        axes[1].plot(xs, ys, "o-", color="tab:green")
    axes[1].set_title("validation Dice (training size)")
    axes[1].set_xlabel("epoch")
    lr_key = next((k for k in curves if k.startswith("lr")), None)
    if lr_key:
        xs, ys = zip(*curves[lr_key])
        axes[2].plot(xs, ys, color="tab:orange", marker="o" if len(xs) < 3 else None)
    else:
        axes[2].text(
            0.5, 0.5, "not logged (run shorter than log_every steps)", ha="center", va="center", fontsize=8
        )
    axes[2].set_title("learning rate")
    axes[2].set_xlabel("step")
    fig.tight_layout()
    return fig


def _confusion_figure(cm: np.ndarray, names: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(names), 1.0 + 0.6 * len(names)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.tight_layout()
    return fig


def example_panel(img: np.ndarray, gt: np.ndarray, pred: np.ndarray, colors: dict[int, tuple]) -> np.ndarray:
    """Side by side: ground truth overlay | prediction overlay."""
    from ..viz import overlay

    return np.concatenate([overlay(img, gt, colors), overlay(img, pred, colors)], axis=1)


def training_report(
    run_dir: Path, cfg, result: dict[str, Any], ds, path: Path | None = None, title: str | None = None
) -> Path:
    """Write a self-contained report (default ``run_dir/report.html``) from an evaluation result."""
    from ..data.coco import PALETTE

    names = result["class_names"]
    colors = {i: PALETTE[(i - 1) % len(PALETTE)] for i in range(1, len(names))}
    rep = HtmlReport(title or f"scopeseg training report: {cfg.model}")
    s = result["summary"]
    res_path = Path(run_dir) / "result.json"
    if res_path.is_file():
        import json

        r = json.loads(res_path.read_text())
        rep.paragraph(f"Trained {r.get('epochs_run')} epochs in {r.get('train_seconds', 0):.0f} s.")
    rep.paragraph(
        f"Run folder: {run_dir}. Best checkpoint (highest validation Dice): {Path(run_dir) / 'best'}. "
        f"Evaluated on {s['images']} images at their own size."
    )
    rep.metrics(
        {
            "Dice (mean per image)": s["dice_mean_per_image"],
            "IoU (mean per image)": s["iou_mean_per_image"],
            "Dice (pooled)": s["dice_pooled_foreground"],
            "IoU (pooled)": s["iou_pooled_foreground"],
        }
    )
    rep.paragraph("Conventions: " + "; ".join(f"{k}: {v}" for k, v in s["conventions"].items()) + ".")
    curves = read_curves(run_dir)
    if curves:
        rep.heading("Training curves")
        rep.figure(_curves_figure(curves), "loss, validation Dice and learning rate")
    rep.heading("Per class (pooled over validation pixels)")
    rep.table(result["per_class"], columns=["class", "dice", "iou", "gt_pixels", "pred_pixels"])
    rep.heading("Confusion of classes")
    rep.figure(_confusion_figure(np.asarray(result["confusion"]), names), "row-normalised pixel confusion")
    for which in ("worst", "best"):
        ex = result["examples"].get(which) or []
        if ex:
            rep.heading(f"{which.capitalize()} examples (left: ground truth, right: prediction)")
            rep.images(
                [
                    (example_panel(img, gt, pred, colors), f"{r['file_name']}: Dice {r['dice']:.3f}")
                    for r, (img, gt, pred) in ex
                ]
            )
    rep.heading("Per image")
    rep.table(
        sorted(result["per_image"], key=lambda r: r["dice"]), columns=["image_id", "file_name", "dice", "iou"]
    )
    rep.heading("Config")
    rep.code(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return rep.save(Path(path) if path is not None else Path(run_dir) / "report.html")
