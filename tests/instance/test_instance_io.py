"""Instance family I/O: TAPIS mAP by hand, in-memory evaluation, train / predict CLI, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scopeseg.cli import main
from scopeseg.data import rle as rle_utils
from scopeseg.metrics.instances import voc_instance_map
from scopeseg.models.instance.postprocess import Instance, mask_box


def _seg(m: np.ndarray) -> dict:
    return rle_utils.encode(m)


def _gt(frames: dict[str, list[tuple[int, np.ndarray]]], n_cls: int = 3) -> dict:
    images, anns = [], []
    for i, (name, objs) in enumerate(frames.items(), start=1):
        images.append({"id": i, "file_name": name, "height": 8, "width": 8})
        for cid, m in objs:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cid, "segmentation": _seg(m)})
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k, "name": f"c{k}"} for k in range(1, n_cls + 1)],
    }


def _box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((8, 8), bool)
    m[y0:y1, x0:x1] = True
    return m


def _inst(m: np.ndarray, dist: list[float]) -> dict:
    return {"segment": _seg(m), "instruments_score_dist": dist}


def test_tapis_map_matches_per_class_score_order_by_hand():
    """One GT of class 1; instance a (IoU 0.6) scores class 1 at 0.3 (its max 0.7 is class 2), instance b
    (IoU 1.0) scores class 1 at 0.6. TAPIS matches class 1's replicas in class-1 score order: b (0.6) takes the
    GT, a is a false positive after it -> AP 1.0. Ordering by each instance's max score would give a the GT
    first and AP 0.5."""
    g = _box(0, 4, 0, 5)  # 20 px
    a = _box(0, 4, 0, 3)  # 12 px inside g: IoU 0.6
    gt = _gt({"f1": [(1, g)]}, n_cls=2)
    preds = {"f1": {"instances": [_inst(a, [0.3, 0.7]), _inst(g, [0.6, 0.1])]}}
    r = voc_instance_map(gt, preds)
    assert r["per_class_ap"]["c1"] == pytest.approx(1.0)
    assert math.isnan(r["per_class_ap"]["c2"])  # no GT of class 2: left out of the mean
    assert r["map"] == pytest.approx(1.0)


def test_tapis_map_several_classes_per_instance_by_hand():
    """Frame 1: GT c1 (top) and c3 (bottom); instance p1 = top with dist [0.8, 0.1, 0.3], p2 = bottom with
    [0.4, 0.2, 0.9]. Frame 2: GT c1 missed. Class 1: replicas p1 0.8 TP, p2 0.4 FP, 2 GT -> precision 1 up to
    recall 0.5 -> AP 0.5. Class 3: p2 0.9 TP, p1 0.3 FP, 1 GT -> AP 1. Class 2 has no GT -> mean (0.5 + 1) / 2."""
    top, bottom = _box(0, 3, 0, 8), _box(5, 8, 0, 8)
    gt = _gt({"f1": [(1, top), (3, bottom)], "f2": [(1, _box(2, 6, 2, 6))]})
    preds = {"f1": {"instances": [_inst(top, [0.8, 0.1, 0.3]), _inst(bottom, [0.4, 0.2, 0.9])]}}
    r = voc_instance_map(gt, preds)
    assert r["per_class_ap"]["c1"] == pytest.approx(0.5)
    assert r["per_class_ap"]["c3"] == pytest.approx(1.0)
    assert math.isnan(r["per_class_ap"]["c2"])
    assert r["map"] == pytest.approx(0.75)
    # a false positive of class 2 (no GT anywhere) changes nothing; a lower-scored duplicate of p1 does not either
    preds["f1"]["instances"].append(_inst(top, [0.05, 0.6, 0.0]))
    assert voc_instance_map(gt, preds)["map"] == pytest.approx(0.75)


class GTPredictor:
    """Returns each image's ground truth as instances (score 0.9): evaluation of a perfect model."""

    def __init__(self, ds, classes):
        self.ds, self.classes, self.batch_size = ds, classes, 2
        self._frames = iter(list(ds.images))

    def predict(self, images):
        out = []
        for _ in images:
            iid = next(self._frames)
            masks, cats, _ = self.ds.instance_masks(iid)
            k = {c: i for i, c in enumerate(sorted(self.ds.categories))}
            out.append(
                [
                    Instance(
                        m,
                        k[c],
                        0.9,
                        [0.9 if j == k[c] else 0.05 for j in range(len(self.classes))],
                        mask_box(m),
                    )
                    for m, c in zip(masks, cats)
                ]
            )
        return out


def test_evaluate_instances_scores_a_perfect_model_one(disc_data_2cls):
    from scopeseg.data.coco import load_dataset
    from scopeseg.inference.instance import evaluate_instances

    ds = load_dataset(disc_data_2cls)
    r = evaluate_instances(GTPredictor(ds, ["tool", "blob"]), ds)
    assert r["segm_AP50"] == pytest.approx(1.0) and r["segm_AP"] == pytest.approx(1.0)
    assert r["tapis_map50"] == pytest.approx(1.0)
    # names swapped between the classes, scored by what each class meant: every detection has the wrong class
    r = evaluate_instances(GTPredictor(ds, ["tool", "blob"]), ds, {"tool": "blob", "blob": "tool"})
    assert r["segm_AP50"] == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------ CLI


TINY_ARGS = [
    "pretrained=false",
    "hidden_dim=32",
    "num_queries=6",
    "dec_layers=2",
    "enc_layers=1",
    "heads=2",
    "ffn_dim=64",
    "train_size=64x96",
    "epochs=1",
    "batch_size=2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, disc_data_2cls):
    out = tmp_path_factory.mktemp("inst") / "run"
    code = main(
        [
            "train",
            "preset=mask2former-tiny",
            f"data={disc_data_2cls}",
            f"out={out}",
            "model=lemis-lite0",
            "text=additive",
            "text_encoder=random",
            "quality_head=true",
            "box_head=true",
            *TINY_ARGS,
        ]
    )
    assert code == 0
    return out


def test_train_cli_writes_an_instance_checkpoint(trained):
    cfg = json.loads((trained / "best" / "config.json").read_text())
    assert cfg["family"] == "instance" and cfg["name"] == "lemis-lite0" and cfg["classes"] == ["tool", "blob"]
    assert cfg["input_size"] == [64, 96] and cfg["text"] == "additive"
    result = json.loads((trained / "result.json").read_text())
    assert 0.0 <= result["metrics"]["val_ap50"] <= 1.0


def test_predict_cli_dataset_video_and_classes(trained, disc_data_2cls, tmp_path, capsys):
    code = main(["predict", str(trained / "best"), str(disc_data_2cls), str(tmp_path / "o1"), "min_score=0"])
    assert code == 0
    out = tmp_path / "o1"
    results = json.loads((out / "results.json").read_text())
    tapis = json.loads((out / "tapis_predictions.json").read_text())
    n_images = len(json.loads((disc_data_2cls / "annotations.json").read_text())["images"])
    assert results and {r["category_id"] for r in results} <= {1, 2} and len(tapis) == n_images
    first = next(i for f in tapis.values() for i in f["instances"])
    assert len(first["instruments_score_dist"]) == 2 and {"bbox", "segment", "score"} <= set(first)
    # the tapis file scores with the tapis-map50 protocol against the input data set
    code = main(
        ["evaluate", str(disc_data_2cls), str(out / "tapis_predictions.json"), "protocol=tapis-map50"]
    )
    assert code == 0
    # new class names: new categories (ids after the input's), score distributions over all of them
    code = main(
        [
            "predict",
            str(trained / "best"),
            str(disc_data_2cls),
            str(tmp_path / "o3"),
            "classes=disc,sun",
            "min_score=0",
        ]
    )
    assert code == 0
    pred = json.loads((tmp_path / "o3" / "predicted" / "annotations.json").read_text())
    assert [c["name"] for c in pred["categories"]] == ["disc", "sun"]
    tapis = json.loads((tmp_path / "o3" / "tapis_predictions.json").read_text())
    first = next(i for f in tapis.values() for i in f["instances"])
    assert len(first["instruments_score_dist"]) == 4 and first["category_id"] in (3, 4)
    # a video
    from scopeseg.video_io import write_video

    frames = [np.full((64, 96, 3), 120, np.uint8) for _ in range(3)]
    video = write_video(tmp_path / "clip.mp4", frames, fps=5)
    code = main(["predict", str(trained / "best"), str(video), str(tmp_path / "o2"), "max_frames=2"])
    assert code == 0
    assert len(json.loads((tmp_path / "o2" / "tapis_predictions.json").read_text())) == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    "args, words",
    [
        (["classes=a"], ["1 names", "2 classes"]),
        (["classes=a,,b"], ["classes="]),
        (["topk=0"], ["topk"]),
        (["bogus=1"], ["bogus"]),
    ],
)
def test_predict_bad_settings_one_line_exit_2(trained, disc_data_2cls, tmp_path, capsys, args, words):
    code = main(["predict", str(trained / "best"), str(disc_data_2cls), str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o").exists()


def test_classes_on_a_plain_model_is_refused(disc_data_2cls, tmp_path, capsys):
    code = main(
        ["train", "preset=mask2former-tiny", f"data={disc_data_2cls}", f"out={tmp_path / 'r'}", *TINY_ARGS]
    )
    assert code == 0
    code = main(
        ["predict", str(tmp_path / "r" / "best"), str(disc_data_2cls), str(tmp_path / "o"), "classes=a,b"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "text-conditioned" in err and len(err.splitlines()) == 1


def test_onnx_engine_predicts_like_torch(trained, disc_data_2cls):
    pytest.importorskip("onnxruntime")
    from scopeseg.data.coco import load_dataset
    from scopeseg.inference.instance import InstancePredictor

    ds = load_dataset(disc_data_2cls)
    imgs = [ds.load_image(i) for i in list(ds.images)[:2]]
    a = InstancePredictor.from_pretrained(trained / "best", min_score=0).predict(imgs)
    b = InstancePredictor.from_pretrained(trained / "best", engine="onnx", min_score=0).predict(imgs)
    for ia, ib in zip(a, b):
        assert len(ia) == len(ib) > 0
        for x, y in zip(ia, ib):
            assert x.label == y.label and x.score == pytest.approx(y.score, abs=1e-3)
            assert (x.mask != y.mask).mean() < 0.01
