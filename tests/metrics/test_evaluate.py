"""``scopeseg.evaluate`` / ``scopeseg evaluate`` on tiny synthetic inputs: every protocol and input layout."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from metrics_testutil import same

from scopeseg.cli import main
from scopeseg.data import rle as rle_mod
from scopeseg.data.coco import CocoDataset
from scopeseg.errors import ConfigError, DataError
from scopeseg.evaluate import evaluate, save_results, tune_threshold
from scopeseg.metrics.endovis import endovis_scores
from scopeseg.metrics.medsam import medsam_case
from scopeseg.metrics.surface import surface_distances


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """COCO GT (2 classes, 2 videos x 3 frames) + COCO results + the same predictions as mask folders."""
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(3)
    ds = CocoDataset()
    c1, c2 = ds.add_category("grasper", id=1), ds.add_category("hook", id=4)
    gt_dir, pred_dir, gt_masks = root / "gt", root / "pred_masks", root / "gt_masks"
    dts = []
    for v in range(2):
        vid = ds.add_video(f"vid{v}")
        for f in range(3):
            h, w = 40, 48
            name = f"vid{v}/frame{f:03d}.png"
            iid = ds.add_image(name, h, w, video_id=vid, frame_index=f)
            g1 = _disk(h, w, 12 + f, 14 + 2 * v, 7)
            g2 = _disk(h, w, 28, 32 - f, 6)
            ds.add_annotation(iid, c1, g1)
            if not (v == 1 and f == 2):
                ds.add_annotation(iid, c2, g2)
            p1 = _disk(h, w, 12 + f + int(rng.integers(-2, 3)), 14 + 2 * v, 7)
            p2 = _disk(h, w, 28, 32 - f + int(rng.integers(-3, 4)), 5)
            lab = np.zeros((h, w), np.uint8)
            for cid, m, s in ((c1, p1, 0.9), (c2, p2, 0.8)):
                dts.append({"image_id": iid, "category_id": cid, "segmentation": rle_mod.encode(m),
                            "bbox": rle_mod.bbox(rle_mod.encode(m)), "score": s})  # fmt: skip
                lab[m] = ds.class_map()[cid]
            (pred_dir / f"vid{v}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(pred_dir / f"vid{v}" / f"frame{f:03d}.png"), lab)
            (gt_masks / f"vid{v}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(gt_masks / f"vid{v}" / f"frame{f:03d}.png"), ds.semantic_mask(iid))
    gt_dir.mkdir()
    ds.save(gt_dir / "annotations.json")
    (root / "results.json").write_text(json.dumps(dts))
    return {"root": root, "gt": gt_dir, "results": root / "results.json", "pred_masks": pred_dir,
            "gt_masks": gt_masks, "ds": ds}  # fmt: skip


def _pairs(data):
    ds = data["ds"]
    out = []
    for iid, im in ds.images.items():
        stem = im["file_name"][:-4]
        p = cv2.imread(str(data["pred_masks"] / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        out.append((ds.semantic_mask(iid), p))
    return out


def test_binary_protocol_matches_library(data):
    r = evaluate(data["gt"], data["results"], "binary", tolerance="1.5")
    assert len(r.items) == 6
    for row, (g, p) in zip(r.items, _pairs(data)):
        sd = surface_distances(p > 0, g > 0)
        assert same(row["nsd"], sd.nsd(1.5)) and same(row["hd95"], sd.hausdorff(95))
    r2 = evaluate(data["gt"], data["pred_masks"], "binary", tolerance="1.5")
    assert [x["dice"] for x in r2.items] == pytest.approx([x["dice"] for x in r.items])
    r3 = evaluate(data["gt_masks"], data["pred_masks"], "binary", tolerance="1.5")
    assert [x["nsd"] for x in r3.items] == pytest.approx([x["nsd"] for x in r.items])
    assert "tolerance 1.5" in r.conventions["nsd"]


def test_endovis_semantic_video_protocols(data):
    pairs = _pairs(data)
    e = evaluate(data["gt"], data["results"], "endovis")
    ref = endovis_scores([p for _, p in pairs], [g for g, _ in pairs], 2, "tapis")
    assert same(e.metrics["challenge_iou"], ref["challenge_iou"]) and same(
        e.metrics["mciou_tapis"], ref["mciou"]
    )
    s = evaluate(data["gt"], data["pred_masks"], "semantic")
    assert set(s.metrics["per_class_iou"]) == {"background", "grasper", "hook"}
    v = evaluate(data["gt"], data["results"], "video")
    assert [row["item"] for row in v.items] == ["vid0", "vid1"] and 0 < v.metrics["J&F"] <= 1
    vm = evaluate(data["gt_masks"], data["pred_masks"], "video")
    assert same(vm.metrics["J&F"], v.metrics["J&F"])


def test_coco_protocol_and_category_mismatch(data, tmp_path):
    r = evaluate(data["gt"], data["results"], "coco", iou_type="both")
    assert 0 < r.metrics["segm_AP50"] <= 1 and "bbox_AP" in r.metrics
    assert {row["item"] for row in r.items} == {"grasper", "hook"}
    bad = json.loads(data["results"].read_text())
    bad[0]["category_id"] = 2
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="category ids \\[2\\]"):
        evaluate(data["gt"], tmp_path / "bad.json", "coco")
    with pytest.raises(DataError, match="category ids"):
        evaluate(data["gt"], tmp_path / "bad.json", "binary")


def test_medsam_protocol_npz(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "gts").mkdir()
    (tmp_path / "segs").mkdir()
    cases = {}
    for i in range(3):
        g = np.zeros((30, 30), np.uint8)
        g[5:15, 5:15] = 1
        g[18:27, 10:25] = 2
        p = np.roll(g, int(rng.integers(-2, 3)), axis=1)
        np.savez(tmp_path / "gts" / f"2D_case{i}.npz", gts=g)
        np.savez(tmp_path / "segs" / f"2D_case{i}.npz", segs=p)
        cases[f"2D_case{i}.npz"] = (p, g)
    r = evaluate(tmp_path / "gts", tmp_path / "segs", "medsam-laptop")
    for row in r.items:
        ref = medsam_case(*cases[row["item"]])
        assert same(row["dsc"], ref["dsc"]) and same(row["nsd"], ref["nsd"])


def test_save_results_and_report(data, tmp_path):
    r = evaluate(data["gt"], data["results"], "binary")
    paths = save_results(r, tmp_path / "out", data["gt"], data["results"])
    m = json.loads(paths["metrics.json"].read_text())
    assert m["protocol"] == "binary" and "nsd" in m["conventions"] and m["num_items"] == 6
    rows = list(csv.DictReader(paths["per_item.csv"].open()))
    assert len(rows) == 6 and "hd95" in rows[0]
    html = paths["report.html"].read_text()
    assert "tolerance 2" in html and "Worst items by dice" in html and "data:image/png;base64" in html


def test_cli_evaluate_and_errors(data, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["evaluate", str(data["gt"]), str(data["results"]), "protocol=endovis", str(out)]) == 0
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()
    bad = json.loads(data["results"].read_text())
    bad[1]["category_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    capsys.readouterr()
    assert main(["evaluate", str(data["gt"]), str(tmp_path / "bad.json"), "protocol=coco"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "99" in err[0]
    assert main(["evaluate", str(data["gt"]), str(data["results"]), "protocol=nope"]) == 2
    assert main(["evaluate", str(data["gt"]), str(data["results"]), "tolerance=abc"]) == 2
    assert main(["evaluate", str(data["gt"]), str(data["results"]), "bogus=1"]) == 2


def test_tune_threshold_finds_the_generating_threshold(tmp_path, capsys):
    rng = np.random.default_rng(1)
    probs, gts = {}, {}
    for i in range(4):
        g = _disk(32, 32, 16, 16, 6 + i)
        noise = rng.uniform(0, 0.3, g.shape)
        p = np.where(g, 0.6 + noise, 0.55 * rng.uniform(0, 1, g.shape) ** 4).astype(np.float32)
        probs[f"m{i}"], gts[f"m{i}"] = p, g
        np.save(tmp_path / f"m{i}.npy", p)
        cv2.imwrite(str(tmp_path / f"m{i}.png"), g.astype(np.uint8) * 255)
    r = tune_threshold(probs, gts, thresholds=[0.3, 0.5, 0.58, 0.7], kernels=[0, 3])
    assert r["best"]["threshold"] == 0.58 and r["best"]["score"] == 1.0
    assert len(r["grid"]) == 8
    with pytest.raises(ConfigError):
        tune_threshold(probs, gts, metric="auc")
    (tmp_path / "p").mkdir()
    for i in range(4):
        np.save(tmp_path / "p" / f"m{i}.npy", probs[f"m{i}"])
    (tmp_path / "g").mkdir()
    for i in range(4):
        cv2.imwrite(str(tmp_path / "g" / f"m{i}.png"), gts[f"m{i}"].astype(np.uint8) * 255)
    assert main(["tune-threshold", str(tmp_path / "p"), str(tmp_path / "g"), "thresholds=0.3,0.58"]) == 0
    assert "threshold 0.58" in capsys.readouterr().out


def test_empty_rules_and_nan_in_reports(tmp_path):
    from scopeseg.metrics.overlap import dice, iou, per_class_dice, precision, recall

    z = np.zeros((4, 4), bool)
    a = z.copy()
    a[1, 1] = True
    assert math.isnan(dice(z, z, "nan")) and dice(z, z, "one") == 1 and dice(z, z, "zero") == 0
    assert math.isnan(dice(a, z, "skip")) and dice(a, z, "one") == 0 and iou(a, a) == 1
    assert precision(z, a, "zero") == 0 and recall(a, a) == 1
    lab_p = np.array([[0, 1], [2, 2]])
    lab_g = np.array([[0, 1], [1, 255]])
    d = per_class_dice(lab_p, lab_g, 3, empty="nan", ignore_index=255)
    assert d[0] == 1 and same(d[1], 2 / 3) and d[2] == 0
    with pytest.raises(ConfigError):
        dice(a, a, "maybe")


def test_tapis_map50_protocol_list_and_dict_predictions(tmp_path, transcribed_golden):
    from cases import tapis_map_case

    gt, preds = tapis_map_case()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "list.json").write_text(json.dumps([{k: v} for k, v in preds.items()]))
    (tmp_path / "dict.json").write_text(json.dumps(preds))
    want = transcribed_golden["tapis_map"]["map"]
    for f in ("list.json", "dict.json"):
        r = evaluate(tmp_path / "gt.json", tmp_path / f, "tapis-map50")
        assert same(r.metrics["map"], want)
    (tmp_path / "bad.json").write_text(json.dumps({"nope.jpg": {"instances": []}}))
    with pytest.raises(DataError, match="no prediction frame name"):
        evaluate(tmp_path / "gt.json", tmp_path / "bad.json", "tapis-map50")


def test_protocol_params_are_typed():
    from scopeseg.metrics.protocols import protocol_params

    p = protocol_params("binary", {"tolerance": "3", "spacing": "0.5,0.5", "convention": "monai"})
    assert p["tolerance"] == 3.0 and p["spacing"] == (0.5, 0.5) and p["convention"] == "monai"
    assert protocol_params("video", {"skip_first_last": "false"})["skip_first_last"] is False
    with pytest.raises(ConfigError, match="no parameter"):
        protocol_params("coco", {"tolerance": "2"})


def test_tune_threshold_on_a_saved_model(tmp_path, monkeypatch):
    """The model path streams Predictor probabilities over a COCO data set; the engine is a stand-in (creating a
    real network costs ~20 s here), so the check is that it equals the probability-map path on the same maps."""
    from scopeseg.evaluate import tune_threshold_model
    from scopeseg.inference import semantic as predictor_mod

    def engine(batch: np.ndarray) -> np.ndarray:  # NCHW image -> N1HW logits: brighter red = more "tool"
        return (batch[:, :1] - 0.5) * 8.0

    fake = predictor_mod.Predictor(engine, {"classes": ["tool"]})
    monkeypatch.setattr(predictor_mod.Predictor, "from_pretrained", classmethod(lambda cls, path, **kw: fake))
    ds = CocoDataset()
    cid = ds.add_category("tool", id=1)
    images = []
    for i in range(3):
        m = _disk(32, 32, 16, 16, 5 + 2 * i)
        img = np.zeros((32, 32, 3), np.uint8)
        img[..., 0] = np.where(m, 200 - 20 * i, 60 + 15 * i)
        cv2.imwrite(str(tmp_path / f"im{i}.png"), img[..., ::-1])
        iid = ds.add_image(f"im{i}.png", 32, 32)
        ds.add_annotation(iid, cid, m)
        images.append(img)
    ds.save(tmp_path / "annotations.json")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    r = tune_threshold_model(tmp_path / "model", tmp_path, thresholds=[0.3, 0.5, 0.9], kernels=[0, 3])
    probs = [p[0] for p in fake.probabilities(images)]
    want = tune_threshold(probs, [ds.semantic_mask(i) for i in ds.images], [0.3, 0.5, 0.9], [0, 3])
    assert [g["score"] for g in r["grid"]] == pytest.approx([g["score"] for g in want["grid"]])
    assert r["best"]["score"] == 1.0
    assert main(["tune-threshold", str(tmp_path / "model"), str(tmp_path), "thresholds=0.5"]) == 0


REAL = Path("/work/shared/data")


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL / "kvasir_seg_256" / "masks").is_dir(), reason="../shared/data absent")
def test_real_polyp_masks_against_monai(tmp_path):
    """Real polyp boundaries (Kvasir-SEG, CC BY 4.0): the binary protocol on a perturbed prediction folder
    agrees with MONAI's NSD (subvoxels) / HD95 on every image; empty negatives follow the empty rules."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    from scopeseg.metrics.surface import monai_hausdorff, monai_nsd

    src = REAL / "kvasir_seg_256" / "masks"
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    files = sorted(src.glob("*.png"))[:6]
    for f in files:
        g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        p = cv2.erode(np.roll(g, 3, axis=1), np.ones((5, 5), np.uint8))
        cv2.imwrite(str(tmp_path / "gt" / f.name), g)
        cv2.imwrite(str(tmp_path / "pred" / f.name), p)
    r = evaluate(tmp_path / "gt", tmp_path / "pred", "binary")
    assert len(r.items) == len(files)
    for f in files:
        g = cv2.imread(str(tmp_path / "gt" / f.name), cv2.IMREAD_GRAYSCALE) > 0
        p = cv2.imread(str(tmp_path / "pred" / f.name), cv2.IMREAD_GRAYSCALE) > 0
        tp, tg = torch.as_tensor(p)[None, None], torch.as_tensor(g)[None, None]
        ref_nsd = float(
            compute_surface_dice(tp, tg, [2.0], include_background=True, use_subvoxels=True)[0, 0]
        )
        ref_hd = float(compute_hausdorff_distance(tp, tg, include_background=True, percentile=95)[0, 0])
        assert same(monai_nsd(p, g, 2.0, use_subvoxels=True), ref_nsd, 1e-5)
        assert same(monai_hausdorff(p, g, None, 95), ref_hd, 1e-5)
        row = next(x for x in r.items if x["item"] == f.stem)
        assert same(row["nsd"], ref_nsd, 1e-5)  # DeepMind NSD == MONAI use_subvoxels NSD


def test_score_pairs_is_the_file_path_of_every_pixel_protocol(data):
    """``score_pairs`` on the label maps ``load_pairs`` reads gives exactly ``run_protocol``'s numbers."""
    from scopeseg.metrics.inputs import load_pairs
    from scopeseg.metrics.protocols import PROTOCOLS, run_protocol, score_pairs

    pairs, info = load_pairs(data["gt"], data["results"])
    for name in ("binary", "endovis", "semantic", "video"):
        files = run_protocol(name, data["gt"], data["results"])
        memory = score_pairs(name, pairs, info["classes"])
        assert json.dumps(memory.metrics, sort_keys=True) == json.dumps(files.metrics, sort_keys=True), name
        assert memory.items == files.items and memory.conventions == files.conventions
    fast = score_pairs("binary", pairs, surface=False)
    assert [r["dice"] for r in fast.items] == [
        r["dice"] for r in run_protocol("binary", data["gt"], data["results"]).items
    ]
    assert "nsd" not in fast.items[0] and "mean_nsd" not in fast.metrics and fast.primary == ["dice"]
    for name in ("coco", "tapis-map50"):
        assert PROTOCOLS[name].score is None
        with pytest.raises(ConfigError, match="scores files"):
            score_pairs(name, pairs)
    with pytest.raises(ConfigError, match="in-memory pairs are scored as given"):
        score_pairs("binary", pairs, categories="hook")
    with pytest.raises(DataError, match="no label-map pairs"):
        score_pairs("binary", [])


def test_binary_categories_keep_only_the_selected_ground_truth(data, capsys):
    """``categories=`` scores a one-category model against that category only (others become background)."""
    from scopeseg.metrics.inputs import Pair
    from scopeseg.metrics.protocols import score_pairs

    ds = data["ds"]
    hook = ds.class_map()[4]
    r = evaluate(data["gt"], data["pred_masks"], "binary", categories="[hook]")
    want = [Pair(row["item"], np.where(g == hook, g, 0), p) for row, (g, p) in zip(r.items, _pairs(data))]
    assert [x["dice"] for x in r.items] == [x["dice"] for x in score_pairs("binary", want).items]
    # vid1/frame002 has no hook in the ground truth: its predicted hook is all false positive
    last = r.items[-1]
    assert last["item"] == "vid1/frame002" and math.isnan(last["recall"]) and last["dice"] == 0.0
    assert "of categories hook" in r.conventions["dice/iou/precision/recall"]
    as_list = evaluate(data["gt"], data["pred_masks"], "binary", categories=["hook"])
    assert json.dumps(as_list.items) == json.dumps(r.items)
    with pytest.raises(DataError, match="nope"):
        evaluate(data["gt"], data["pred_masks"], "binary", categories="nope")
    with pytest.raises(ConfigError, match="needs a COCO ground truth"):
        evaluate(data["gt_masks"], data["pred_masks"], "binary", categories="hook")
    assert (
        main(["evaluate", str(data["gt"]), str(data["pred_masks"]), "categories=[hook]", "surface=false"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"mean_dice: {r.metrics['mean_dice']:.4f}" in out and "mean_nsd" not in out
