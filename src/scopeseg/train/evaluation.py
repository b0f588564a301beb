"""Evaluation hook of a semantic run: the best model on the validation images at their own size.

Per image and per class Dice/IoU from confusion matrices (``np.bincount``); empty-class convention: a class
absent from both GT and prediction in an image is skipped (NaN) in per-class means, and a binary image with
both masks empty scores Dice 1 in the per-image mean. Pooled ("global") Dice sums over all pixels first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.coco import CocoDataset
from ..io import write_json
from ..progress import track


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """``num_classes``² matrix, rows = GT class, columns = predicted class."""
    idx = gt.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray, empty: str = "nan") -> dict[str, np.ndarray]:
    """Per-class Dice and IoU from a confusion matrix (``scopeseg.metrics.overlap``; ``empty`` = 0/0 rule)."""
    from ..metrics.overlap import dice_from_counts, iou_from_counts

    tp = np.diag(cm).astype(np.int64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    return {
        "dice": np.atleast_1d(dice_from_counts(tp, fp, fn, empty)),
        "iou": np.atleast_1d(iou_from_counts(tp, fp, fn, empty)),
    }


def evaluate_semantic(
    predictor, ds: CocoDataset, image_ids: Sequence[int], class_map: dict[int, int], keep: int = 0
) -> dict[str, Any]:
    """Run ``predictor`` on images and score them; keeps (image, gt, pred) of up to ``keep`` best/worst."""
    names = ["background"] + list(predictor.classes)
    k = len(names)
    total = np.zeros((k, k), dtype=np.int64)
    rows: list[dict[str, Any]] = []
    samples: dict[int, tuple] = {}
    ids = list(image_ids)
    for start in track(
        range(0, len(ids), predictor.batch_size),
        "evaluating",
        total=(len(ids) + predictor.batch_size - 1) // predictor.batch_size,
    ):
        batch_ids = ids[start : start + predictor.batch_size]
        images = [ds.load_image(i) for i in batch_ids]
        preds = predictor.predict(images)
        for iid, img, pred in zip(batch_ids, images, preds):
            gt = ds.semantic_mask(iid, class_map)
            cm = confusion(pred, gt, k)
            total += cm
            s = scores_from_confusion(cm)
            fg_dice = s["dice"][1:]
            row = {"image_id": iid, "file_name": ds.images[iid]["file_name"]}
            if predictor.binary:
                row["dice"] = 1.0 if np.isnan(fg_dice[0]) else float(fg_dice[0])
                row["iou"] = 1.0 if np.isnan(s["iou"][1]) else float(s["iou"][1])
            else:
                row["dice"] = float(np.nanmean(fg_dice)) if not np.isnan(fg_dice).all() else 1.0
                row["iou"] = float(np.nanmean(s["iou"][1:])) if not np.isnan(s["iou"][1:]).all() else 1.0
                for n, d in zip(names[1:], fg_dice):
                    row[f"dice_{n}"] = float(d)
            rows.append(row)
            if keep:
                samples[iid] = (img, gt, pred)
                if len(samples) > 4 * keep + 8:  # bounded memory: keep only current extremes
                    order = sorted(rows, key=lambda r: r["dice"])
                    wanted = {r["image_id"] for r in order[:keep] + order[-keep:]}
                    samples = {i: v for i, v in samples.items() if i in wanted}
    pooled = scores_from_confusion(total)
    per_class = [
        {
            "class": n,
            "dice": float(pooled["dice"][i]),
            "iou": float(pooled["iou"][i]),
            "gt_pixels": int(total[i].sum()),
            "pred_pixels": int(total[:, i].sum()),
        }
        for i, n in enumerate(names)
    ]
    dices = np.array([r["dice"] for r in rows])
    summary = {
        "images": len(rows),
        "dice_mean_per_image": float(dices.mean()) if len(rows) else float("nan"),
        "iou_mean_per_image": float(np.mean([r["iou"] for r in rows])) if rows else float("nan"),
        "dice_pooled_foreground": float(np.nanmean(pooled["dice"][1:])),
        "iou_pooled_foreground": float(np.nanmean(pooled["iou"][1:])),
        "conventions": {
            "dice_mean_per_image": "mean over images of foreground Dice (multi-class: mean over classes present "
            "in GT or prediction); an image with empty GT and empty prediction scores 1",
            "dice_pooled_foreground": "Dice from pixel counts summed over all images, mean over foreground classes",
        },
    }
    order = sorted(rows, key=lambda r: r["dice"])
    examples = {
        "worst": [(r, samples[r["image_id"]]) for r in order[:keep] if r["image_id"] in samples],
        "best": [(r, samples[r["image_id"]]) for r in order[::-1][:keep] if r["image_id"] in samples],
    }
    return {
        "summary": summary,
        "per_class": per_class,
        "per_image": rows,
        "confusion": total.tolist(),
        "class_names": names,
        "examples": examples,
    }


def evaluate_semantic_run(run_dir: Path, best_dir: Path, dm, cfg) -> dict[str, Any]:
    """Score the best checkpoint on the run's validation images; write ``metrics.json`` and ``report.html``."""
    from ..inference.semantic import Predictor
    from ..report.training import training_report

    predictor = Predictor.from_pretrained(best_dir, batch_size=max(1, cfg.batch_size))
    result = evaluate_semantic(predictor, dm.val_ds, dm.val_ids, dm.val_class_map, keep=cfg.report_examples)
    metrics = {k: result[k] for k in ("summary", "per_class", "confusion", "class_names")}
    write_json(Path(run_dir) / "metrics.json", metrics, indent=2)
    training_report(run_dir, cfg, result, dm.val_ds)
    return result["summary"]
