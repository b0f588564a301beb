"""Golden values from close transcriptions of reference scorers that cannot be installed here.

- EndoVis IoUs: BCV-Uniandes GraSP ``TAPIS/tapis/evaluate/semantic_segmentation_eval.py`` (TAPIS) and
  ``MATIS/matis/evaluate/compute_all_iou.py`` (MATIS) per-frame loops, fed label maps instead of RLE files.
- mmsegmentation ``IoUMetric``: ``intersect_and_union`` (torch.histc) + ``total_area_to_metrics``.
- DAVIS 2017: ``davis2017/metrics.py`` (db_eval_iou, f_measure with cv2.dilate and skimage disk, seg2bmap),
  ``utils.db_statistics`` and the semi-supervised loop of ``evaluation.py`` (first and last frame dropped).
- TAPIS ``mAP@0.5IoU_segm``: ``instance_segmentation_eval.py`` + TF-object-detection (AVA) ``PerImageEvaluation``
  / ``ObjectDetectionEvaluation`` / ``metrics.py`` logic (no NMS, masks compared by IoU >= 0.5).
Run: ``.venv/bin/python tests/metrics/golden/make_transcribed_golden.py`` -> ``transcribed_golden.json``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as m
from skimage.morphology import disk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import davis_cases, endovis_cases, semantic_cases, tapis_map_case  # noqa: E402


# ---------------------------------------------------------------- EndoVis (TAPIS / MATIS loops)
def endovis_reference(preds, gts, num_classes, variant):
    cats = set(range(1, num_classes + 1))
    ious, gt_ious = [], []
    pcls_ious = {c: [] for c in cats}
    for sem_im, gt_img in zip(preds, gts):
        gt_classes = set(np.unique(gt_img))
        gt_classes.discard(0)
        pred_classes = set(np.unique(sem_im))
        pred_classes.discard(0)
        iou, gt_iou = [], []
        for label in cats:
            if label in gt_classes or label in pred_classes:
                pred_mask = (sem_im == label).astype("uint8")
                gt_mask = (gt_img == label).astype("uint8")
                intersection = np.sum(pred_mask * gt_mask)
                union = np.sum(pred_mask) + np.sum(gt_mask) - intersection
                im_iou = intersection / union if union != 0 else 0
                iou.append(im_iou)
                pcls_ious[label].append(im_iou)
                if label in gt_classes:
                    gt_iou.append(im_iou)
        if iou:
            ious.append(float(np.mean(iou)))
        if gt_iou:
            gt_ious.append(float(np.mean(gt_iou)))
    total_iou = float(np.mean(ious)) if ious else math.nan
    total_gt_iou = float(np.mean(gt_ious)) if gt_ious else math.nan
    per_class = [float(np.mean(pcls_ious[c])) if pcls_ious[c] else math.nan for c in sorted(cats)]
    if variant == "tapis":  # nanmean over classes
        mciou = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else math.nan
    else:  # MATIS: absent class counts 0
        mciou = float(np.mean([0 if math.isnan(v) else v for v in per_class]))
    return {"challenge_iou": total_gt_iou, "iou": total_iou, "mciou": mciou, "per_class_iou": per_class}


# ---------------------------------------------------------------- mmseg IoUMetric
def mmseg_reference(preds, gts, num_classes, ignore_index):
    tot = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]
    for pred, label in zip(preds, gts):
        pred = torch.from_numpy(np.asarray(pred).astype(np.int64))
        label = torch.from_numpy(np.asarray(label).astype(np.int64))
        if ignore_index is not None:
            mask = label != ignore_index
            pred, label = pred[mask], label[mask]
        intersect = pred[pred == label]
        a_i = torch.histc(intersect.float(), bins=num_classes, min=0, max=num_classes - 1)
        a_p = torch.histc(pred.float(), bins=num_classes, min=0, max=num_classes - 1)
        a_l = torch.histc(label.float(), bins=num_classes, min=0, max=num_classes - 1)
        a_u = a_p + a_l - a_i
        for t, v in zip(tot, (a_i, a_u, a_p, a_l)):
            t += v.double()
    iou = (tot[0] / tot[1]).numpy()
    return {"per_class_iou": [float(v) for v in iou], "miou": float(np.nanmean(iou))}


# ---------------------------------------------------------------- DAVIS 2017
def db_eval_iou(annotation, segmentation, void_pixels=None):
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    void_pixels = np.zeros_like(segmentation) if void_pixels is None else void_pixels.astype(bool)
    inters = np.sum((segmentation & annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    j = inters / union
    if j.ndim == 0:
        j = 1 if np.isclose(union, 0) else j
    else:
        j[np.isclose(union, 0)] = 1
    return j


def _seg2bmap(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=0.008):
    void_pixels = (
        np.zeros_like(foreground_mask).astype(bool) if void_pixels is None else void_pixels.astype(bool)
    )
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = _seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = _seg2bmap(gt_mask * np.logical_not(void_pixels))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def db_statistics(per_frame_values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        M = np.nanmean(per_frame_values)  # noqa: N806
        O = np.nanmean(per_frame_values > 0.5)  # noqa: E741
    ids = np.round(np.linspace(1, len(per_frame_values), 5) + 1e-10) - 1
    ids = ids.astype(np.uint8)
    D_bins = [per_frame_values[ids[i] : ids[i + 1] + 1] for i in range(0, 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        D = np.nanmean(D_bins[0]) - np.nanmean(D_bins[3])
    return M, O, D  # noqa: E741


def davis_reference(pred, gt):
    n_obj = int(gt.max())
    gt_m = np.stack([gt == i for i in range(1, n_obj + 1)])[:, 1:-1]
    res_m = np.stack([pred == i for i in range(1, n_obj + 1)])[:, 1:-1]
    res = {"J": [], "F": []}
    for ii in range(n_obj):
        void = gt_m[ii] == 255
        j = db_eval_iou(gt_m[ii], res_m[ii], void)
        f = np.array([f_measure(res_m[ii][t], gt_m[ii][t], void[t]) for t in range(gt_m.shape[1])])
        res["J"].append([float(v) for v in db_statistics(j)])
        res["F"].append([float(v) for v in db_statistics(f)])
    jm = float(np.mean([r[0] for r in res["J"]]))
    fm = float(np.mean([r[0] for r in res["F"]]))
    return {"J&F": (jm + fm) / 2, "J_mean": jm, "F_mean": fm, "per_object": res}


# ---------------------------------------------------------------- TAPIS VOC-style mAP (TF-OD logic)
def tapis_map_reference(coco_anns, preds, task="instruments"):
    categories = coco_anns["categories"]
    num_classes = len(categories)
    num_class = max(c["id"] for c in categories)
    img_ann_dict = {im["file_name"]: [] for im in coco_anns["images"]}
    id2name = {im["id"]: im["file_name"] for im in coco_anns["images"]}
    for idx, a in enumerate(coco_anns["annotations"]):
        img_ann_dict[id2name[a["image_id"]]].append(idx)
    sizes, gt_segments, gt_labels = {}, {}, {}
    for img_name, idxs in img_ann_dict.items():
        img = [i for i in coco_anns["images"] if i["file_name"] == img_name][0]
        sizes[img_name] = [img["width"], img["height"]]
        if not idxs:
            continue
        gt_segments[img_name] = [coco_anns["annotations"][i]["segmentation"] for i in idxs]
        gt_labels[img_name] = [coco_anns["annotations"][i]["category_id"] for i in idxs]
    num_gt = np.zeros(num_class, dtype=int)
    for labels in gt_labels.values():
        for c in range(num_class):
            num_gt[c] += int(np.sum(np.array(labels) - 1 == c))
    scores_per_class = [[] for _ in range(num_class)]
    tp_per_class = [[] for _ in range(num_class)]
    for img_name in sizes:
        if img_name not in preds:
            continue
        pred_image = sorted(
            preds[img_name]["instances"], key=lambda x: max(x[f"{task}_score_dist"]), reverse=True
        )
        if not pred_image:
            continue
        det_labels, det_scores, det_segs = [], [], []
        for inst in pred_image:
            det_segs.extend([inst["segment"]] * num_classes)
            det_scores.extend(inst[f"{task}_score_dist"])
            det_labels.extend(range(num_classes))
        det_labels, det_scores = np.array(det_labels), np.array(det_scores, dtype=float)
        if img_name in gt_segments:
            g_masks = np.array([m.decode(s) for s in gt_segments[img_name]])
            g_labels = np.array(gt_labels[img_name]) - 1
        else:
            g_masks, g_labels = np.zeros((0, 1, 1)), np.array([], dtype=int)
        for c in range(num_class):
            sel = det_labels == c
            if not sel.any():
                continue
            scores = det_scores[sel]
            tp = np.zeros(int(sel.sum()), dtype=bool)
            gsel = g_labels == c
            if gsel.any():
                d_masks = np.array([m.decode(det_segs[i]) for i in np.flatnonzero(sel)]).astype(np.float32)
                gm = g_masks[gsel].astype(np.float32)
                inter = np.einsum("dhw,ghw->dg", d_masks, gm)
                union = d_masks.sum((1, 2))[:, None] + gm.sum((1, 2))[None] - inter
                iou = inter / np.maximum(union, 1e-7)
                best = np.argmax(iou, axis=1)
                detected = np.zeros(gm.shape[0], dtype=bool)
                for i in range(len(tp)):
                    g = best[i]
                    if iou[i, g] >= 0.5 and not detected[g]:
                        tp[i] = True
                        detected[g] = True
            scores_per_class[c].append(scores)
            tp_per_class[c].append(tp)
    ap = np.full(num_class, np.nan)
    for c in range(num_class):
        if num_gt[c] == 0:
            continue
        scores = np.concatenate(scores_per_class[c]) if scores_per_class[c] else np.array([], float)
        labels = np.concatenate(tp_per_class[c]) if tp_per_class[c] else np.array([], bool)
        if not scores.size:
            ap[c] = 0.0
            continue
        order = np.argsort(scores)[::-1]
        tpl = labels.astype(int)[order]
        ctp, cfp = np.cumsum(tpl), np.cumsum(1 - tpl)
        precision = ctp.astype(float) / (ctp + cfp)
        recall = ctp.astype(float) / num_gt[c]
        recall = np.concatenate([[0], recall, [1]])
        precision = np.concatenate([[0], precision, [0]])
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = np.maximum(precision[i], precision[i + 1])
        idx = np.where(recall[1:] != recall[:-1])[0] + 1
        ap[c] = np.sum((recall[idx] - recall[idx - 1]) * precision[idx])
    return {"map": float(np.nanmean(ap)), "per_class_ap": [float(v) for v in ap]}


def main() -> None:
    out = {"endovis": {}, "semantic": {}, "davis": {}}
    for name, preds, gts, n in endovis_cases():
        out["endovis"][name] = {v: endovis_reference(preds, gts, n, v) for v in ("tapis", "matis")}
    for name, preds, gts, n, ign in semantic_cases():
        out["semantic"][name] = mmseg_reference(preds, gts, n, ign)
    for name, pred, gt in davis_cases():
        out["davis"][name] = davis_reference(pred, gt)
    gt, preds = tapis_map_case()
    out["tapis_map"] = tapis_map_reference(gt, preds)
    (HERE / "transcribed_golden.json").write_text(json.dumps(out))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
