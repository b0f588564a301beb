"""HTML report of a training run: curves, the best checkpoint's scores (``metrics.protocols``), worst overlays, config."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from ..metrics.protocols import EvalResult
from .html import HtmlReport


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


#: the per-image Dice mean of each protocol a training report uses (the headline number of every mode)
DICE_MEAN = {"binary": "mean_dice", "semantic": "mean_image_mdice"}


def training_summary(result: EvalResult) -> dict[str, Any]:
    """Headline numbers of a scored model: item count, mean per-image Dice, and every scalar of its protocol."""
    scalars = {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}
    return {
        "protocol": result.protocol,
        "images": len(result.items),
        "dice_mean_per_image": result.metrics[DICE_MEAN[result.protocol]],
        **scalars,
    }


def training_report(
    run_dir: Path, cfg, result: EvalResult, path: Path | None = None, title: str | None = None
) -> Path:
    """Write a self-contained report (default ``run_dir/report.html``): run, curves, the scored result, config.

    Why: the result sections are those of ``scopeseg evaluate``'s report (``report.evaluation``), so the
    training report's numbers carry the same conventions.
    """
    from .evaluation import add_result_sections

    rep = HtmlReport(title or f"scopeseg training report: {cfg.model}")
    res_path = Path(run_dir) / "result.json"
    if res_path.is_file():
        import json

        r = json.loads(res_path.read_text())
        rep.paragraph(f"Trained {r.get('epochs_run')} epochs in {r.get('train_seconds', 0):.0f} s.")
    rep.paragraph(
        f"Run folder: {run_dir}. Best checkpoint (highest validation Dice): {Path(run_dir) / 'best'}. "
        f"Scored on {len(result.items)} images at their own size under protocol {result.protocol!r}."
    )
    curves = read_curves(run_dir)
    if curves:
        rep.heading("Training curves")
        rep.figure(_curves_figure(curves), "loss, validation Dice and learning rate")
    add_result_sections(rep, result)
    rep.heading("Config")
    rep.code(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return rep.save(Path(path) if path is not None else Path(run_dir) / "report.html")
