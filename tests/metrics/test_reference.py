"""Every ``reference.REGISTRY`` id against its reference, on the edge cases of ``golden/cases.py``.

DeepMind ids vs stored outputs of google-deepmind ``surface-distance`` (golden/make_deepmind_golden.py);
MONAI ids vs MONAI live; MedSAM vs golden/make_medsam_golden.py; EndoVis, mmseg, DAVIS, TAPIS mAP vs
golden/make_transcribed_golden.py; COCO vs pycocotools live.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from cases import PERCENTS, TOLERANCES, endovis_cases, medsam_cases, semantic_cases, surface_cases
from metrics_testutil import same, same_list

from scopeseg.metrics.reference import REGISTRY

CASES = surface_cases()
IDS = [c[0] for c in CASES]
NON_EUCLIDEAN_CASES = {"pred_empty", "thin_diagonal", "disks_aniso", "border_touching", "sphere3d_aniso"}


def test_registry_ids_complete():
    expected = {
        "dice_deepmind", "dice_monai", "iou_monai", "nsd_deepmind", "overlap_gt_deepmind", "overlap_pred_deepmind",
        "hd_deepmind", "asd_gt_to_pred_deepmind", "asd_pred_to_gt_deepmind", "nsd_monai", "hd_monai", "asd_monai",
        "dice_medsam", "nsd_medsam2d", "medsam_cvpr24", "medsam_cvpr25", "endovis_tapis", "endovis_matis",
        "semantic_miou", "tapis_map50_segm", "coco_eval",
    }  # fmt: skip
    assert set(REGISTRY) == expected


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_deepmind_ids(case, deepmind_golden):
    name, pred, gt, spacing = case
    ref = deepmind_golden[name]
    assert same(REGISTRY["dice_deepmind"](pred, gt), ref["dice"])
    assert same(REGISTRY["dice_medsam"](pred, gt), ref["dice"])
    for t, nsd, (og, op) in zip(TOLERANCES, ref["nsd"], ref["overlap"]):
        assert same(REGISTRY["nsd_deepmind"](pred, gt, spacing=spacing, tolerance=t), nsd), (t, nsd)
        assert same(REGISTRY["overlap_gt_deepmind"](pred, gt, spacing=spacing, tolerance=t), og)
        assert same(REGISTRY["overlap_pred_deepmind"](pred, gt, spacing=spacing, tolerance=t), op)
    for p, hd in zip(PERCENTS, ref["hd"]):
        assert same(REGISTRY["hd_deepmind"](pred, gt, spacing=spacing, percent=p), hd), (p, hd)
    assert same(REGISTRY["asd_gt_to_pred_deepmind"](pred, gt, spacing=spacing), ref["asd"][0])
    assert same(REGISTRY["asd_pred_to_gt_deepmind"](pred, gt, spacing=spacing), ref["asd"][1])


def _t(a):
    import torch

    return torch.as_tensor(np.asarray(a))[None, None].float()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_monai_ids(case):
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_iou,
        compute_surface_dice,
    )

    name, pred, gt, sp = case
    p, g = _t(pred), _t(gt)
    warnings.simplefilter("ignore")
    for ie in (True, False):
        ref = float(compute_dice(p, g, include_background=True, ignore_empty=ie)[0, 0])
        assert same(REGISTRY["dice_monai"](pred, gt, ignore_empty=ie), ref, 1e-5)
        ref = float(compute_iou(p, g, include_background=True, ignore_empty=ie)[0, 0])
        assert same(REGISTRY["iou_monai"](pred, gt, ignore_empty=ie), ref, 1e-5)
    metrics = ("euclidean", "chessboard", "taxicab") if name in NON_EUCLIDEAN_CASES else ("euclidean",)
    for dm in metrics:
        for perc, directed in ((None, False), (95, False), (None, True), (50, True)):
            ref = compute_hausdorff_distance(
                p,
                g,
                include_background=True,
                distance_metric=dm,
                percentile=perc,
                directed=directed,
                spacing=sp,
            )
            ours = REGISTRY["hd_monai"](
                pred, gt, spacing=sp, percentile=perc, directed=directed, distance_metric=dm
            )
            assert same(ours, float(ref[0, 0]), 1e-5), (dm, perc, directed)
        for sym in (False, True):
            ref = compute_average_surface_distance(
                p, g, include_background=True, symmetric=sym, distance_metric=dm, spacing=sp
            )
            ours = REGISTRY["asd_monai"](pred, gt, spacing=sp, symmetric=sym, distance_metric=dm)
            assert same(ours, float(ref[0, 0]), 1e-5), (dm, sym)
        for sub in (False, True):
            for tol in (0.0, 1.0, 2.0):
                ref = compute_surface_dice(
                    p, g, [tol], include_background=True, distance_metric=dm, spacing=sp, use_subvoxels=sub
                )
                ours = REGISTRY["nsd_monai"](
                    pred, gt, spacing=sp, tolerance=tol, distance_metric=dm, use_subvoxels=sub
                )
                assert same(ours, float(ref[0, 0]), 1e-5), (dm, sub, tol)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[1].ndim == 2], ids=[c[0] for c in CASES if c[1].ndim == 2]
)
def test_nsd_medsam2d_is_slab_nsd(case, deepmind_golden):
    """2D NSD scored as an (H, W, 1) slab: equals DeepMind NSD of the expanded volume (not the 2D NSD)."""
    from scopeseg.metrics.surface import surface_distances

    name, pred, gt, _ = case
    want = surface_distances(pred[..., None], gt[..., None], (1.0, 1.0, 1.0)).nsd(2.0)
    assert same(REGISTRY["nsd_medsam2d"](pred, gt, tolerance=2.0), want)


@pytest.mark.parametrize("case", medsam_cases(), ids=[c[0] for c in medsam_cases()])
def test_medsam_challenge(case, medsam_golden):
    name, seg, gt, spacing = case
    for variant in ("cvpr24", "cvpr25"):
        got = REGISTRY[f"medsam_{variant}"](seg, gt, spacing)
        ref = medsam_golden[name][variant]
        assert same(got["dsc"], ref["dsc"]) and same(got["nsd"], ref["nsd"]), (variant, got, ref)


def test_medsam_nsd2d_matches_golden_2d_case(medsam_golden):
    """The pairwise 2D id agrees with the challenge scorer on a binary case above the DSC gate."""
    name, seg, gt, _ = medsam_cases()[0]
    ref = medsam_golden[name]["cvpr24"]
    nsds = [REGISTRY["nsd_medsam2d"](seg == c, gt == c) for c in range(1, int(gt.max()) + 1)]
    assert same(np.mean(nsds), ref["nsd"])


@pytest.mark.parametrize("case", endovis_cases(), ids=[c[0] for c in endovis_cases()])
def test_endovis(case, transcribed_golden):
    name, preds, gts, n = case
    for variant in ("tapis", "matis"):
        got = REGISTRY[f"endovis_{variant}"](preds, gts, n)
        ref = transcribed_golden["endovis"][name][variant]
        for k in ("challenge_iou", "iou", "mciou"):
            assert same(got[k], ref[k]), (variant, k)
        assert same_list(got["per_class_iou"], ref["per_class_iou"])
    if name == "class_absent_everywhere":
        assert (
            REGISTRY["endovis_matis"](preds, gts, n)["mciou"]
            < REGISTRY["endovis_tapis"](preds, gts, n)["mciou"]
        )


@pytest.mark.parametrize("case", semantic_cases(), ids=[c[0] for c in semantic_cases()])
def test_semantic_miou(case, transcribed_golden):
    name, preds, gts, n, ign = case
    got = REGISTRY["semantic_miou"](preds, gts, n, ign)
    ref = transcribed_golden["semantic"][name]
    assert same(got["miou"], ref["miou"]) and same_list(got["per_class_iou"], ref["per_class_iou"])


def test_tapis_map50(transcribed_golden):
    from cases import tapis_map_case

    gt, preds = tapis_map_case()
    assert same(REGISTRY["tapis_map50_segm"](gt, preds), transcribed_golden["tapis_map"]["map"])


def test_coco_eval_equals_pycocotools(tmp_path, coco_pair):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, dt_path = coco_pair
    for iou_type in ("segm", "bbox"):
        with contextlib.redirect_stdout(io.StringIO()):
            cg = COCO(str(gt_path))
            cd = cg.loadRes(str(dt_path))
            ev = COCOeval(cg, cd, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        got = REGISTRY["coco_eval"](str(gt_path), str(dt_path), iou_type)
        assert len(got) == 12
        assert np.allclose(got, ev.stats, rtol=0, atol=1e-12), (iou_type, got, ev.stats.tolist())


def test_coco_eval_unknown_category(tmp_path, coco_pair):
    from scopeseg.errors import DataError

    gt_path, dt_path = coco_pair
    dts = json.loads(dt_path.read_text())
    dts[0]["category_id"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dts))
    with pytest.raises(DataError, match="category ids \\[99\\]"):
        REGISTRY["coco_eval"](str(gt_path), str(bad), "segm")
