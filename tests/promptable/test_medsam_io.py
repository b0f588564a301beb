"""MedSAM challenge npz I/O, 2D/3D inference (tiny random model) and the CLI commands."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scopeseg.errors import DataError
from scopeseg.inference.engines import TorchPromptEngine
from scopeseg.inference.medsam_io import infer_folder, read_case, segment_2d, segment_3d
from scopeseg.inference.prompt import PromptPredictor


@pytest.fixture()
def predictor(tiny_model):
    return PromptPredictor(TorchPromptEngine(tiny_model))


@pytest.fixture()
def cases(tmp_path, scope_image):
    d = tmp_path / "imgs"
    d.mkdir()
    np.savez_compressed(
        d / "2DBox_endo_0001.npz", imgs=scope_image, boxes=np.array([[10, 10, 60, 50], [50, 30, 110, 85]])
    )
    vol = np.repeat(scope_image[None, :, :, 0], 7, axis=0)
    np.savez_compressed(
        d / "3DBox_CT_0001.npz",
        imgs=vol,
        boxes=np.array([[20, 15, 1, 90, 70, 6]]),
        spacing=np.array([1.0, 1.0, 1.0]),
    )
    return d


def test_2d_label_map_is_masks_in_box_order(predictor, scope_image):
    boxes = np.array([[10, 10, 60, 50], [30, 20, 110, 85]])
    segs = segment_2d(predictor, scope_image, boxes)
    masks = predictor.predict(boxes=boxes).masks
    expected = np.zeros(scope_image.shape[:2], np.uint8)
    expected[masks[0]] = 1
    expected[masks[1]] = 2  # later boxes overwrite earlier ones, as the baseline does
    np.testing.assert_array_equal(segs, expected)


def test_3d_propagation_skips_end_slices_like_the_baseline(predictor, scope_image, monkeypatch):
    vol = np.repeat(scope_image[None], 9, axis=0)[..., 0]
    seen = []
    set_image = predictor.set_image
    monkeypatch.setattr(predictor, "set_image", lambda im: seen.append(1) or set_image(im))
    segs = segment_3d(predictor, vol, np.array([[20, 15, 2, 90, 70, 7]]))
    # z_mid = 4; forward 4..6, backward 3..3 (z_max=7 and z_min=2 excluded): 4 slices encoded once each
    assert len(seen) == 4
    assert not segs[[0, 1, 2, 7, 8]].any()


def test_read_case_errors_name_file_and_problem(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros((4, 4)), bbox=np.zeros((1, 4)))
    with pytest.raises(DataError, match=r"bad\.npz: missing key\(s\) imgs, boxes; found image, bbox"):
        read_case(bad)
    np.savez(bad, imgs=np.zeros((4, 4, 3)), boxes=np.zeros((1, 5)))
    with pytest.raises(DataError, match="boxes"):
        read_case(bad)
    np.savez(bad, imgs=np.zeros((4, 4, 3)), boxes=np.array([[0, 0, 3, 1, 2, 2]]))
    with pytest.raises(DataError, match="z_min"):
        read_case(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        read_case(tmp_path / "junk.npz")


def test_infer_folder_writes_segs_and_runtime_csv(predictor, cases, tmp_path):
    out = tmp_path / "segs"
    times = infer_folder(predictor, cases, out, progress=False)
    assert [n for n, _ in times] == ["2DBox_endo_0001.npz", "3DBox_CT_0001.npz"]
    with np.load(out / "2DBox_endo_0001.npz") as z:
        assert z.files == ["segs"] and z["segs"].shape == (90, 120) and z["segs"].dtype == np.uint8
    with np.load(out / "3DBox_CT_0001.npz") as z:
        assert z["segs"].shape == (7, 90, 120)
    rows = list(csv.DictReader((out / "efficiency.csv").open()))
    assert [r["case"] for r in rows] == ["2DBox_endo_0001.npz", "3DBox_CT_0001.npz"]
    assert all(float(r["time"]) > 0 for r in rows)
    assert infer_folder(predictor, cases, out, resume=True, progress=False) == []


def test_cli_segment_and_medsam_infer(tiny_model, cases, scope_image, tmp_path, capsys):
    import json

    from scopeseg.cli import main
    from scopeseg.data.coco import CocoDataset
    from scopeseg.io import read_image, write_image
    from scopeseg.models.checkpoints import save_pretrained

    ckpt = tmp_path / "ckpt"
    save_pretrained(tiny_model, ckpt)
    write_image(tmp_path / "frame.png", scope_image)
    out = tmp_path / "seg"
    assert (
        main(
            [
                "segment",
                str(ckpt),
                str(tmp_path / "frame.png"),
                str(out),
                "boxes=[[10,10,60,50],[30,20,110,85]]",
                "points=40,30,1",
            ]
        )
        == 0
    )
    labels = read_image(out / "masks" / "frame.png", mode="unchanged")
    assert labels.shape == (90, 120) and set(np.unique(labels)) <= {0, 1, 2}
    preds = list(CocoDataset.load(out / "predicted").annotations.values())
    assert [p["prompt_index"] for p in preds] == [0, 1] and (out / "overlays" / "frame.jpg").is_file()

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"file_name": "frame.png", "points": [[60, 45, 1], [5, 5, 0]]}]))
    assert (
        main(
            [
                "segment",
                str(ckpt),
                str(tmp_path),
                str(tmp_path / "seg2"),
                f"prompts={prompts}",
                "multimask=true",
                "overlays=false",
            ]
        )
        == 0
    )

    capsys.readouterr()
    assert main(["segment", str(ckpt), str(tmp_path / "frame.png"), str(out), "boxes=10,10,160,50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "frame.png" in err and "outside" in err
    assert main(["segment", str(ckpt), str(tmp_path / "frame.png"), str(tmp_path / "o"), "boxes=1,2,3"]) == 2
    capsys.readouterr()  # boxes= on a folder: one line saying what to give instead, nothing written
    assert main(["segment", str(ckpt), str(tmp_path), str(tmp_path / "o2"), "boxes=10,10,60,50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err and "prompts=JSON" in err, err
    assert not (tmp_path / "o2").exists()

    assert main(["medsam-infer", str(ckpt), str(cases), str(tmp_path / "segs")]) == 0
    assert (tmp_path / "segs" / "efficiency.csv").is_file()
    np.savez(cases / "zz_bad.npz", img=np.zeros((4, 4)))
    capsys.readouterr()
    assert main(["medsam-infer", str(ckpt), str(cases), str(tmp_path / "segs")]) == 2
    assert "zz_bad.npz: missing key(s) imgs, boxes" in capsys.readouterr().err


def test_cli_segment_boxes_from_coco_ground_truth(tiny_model, scope_image, tmp_path):
    import json

    from scopeseg.cli import main
    from scopeseg.data.coco import CocoDataset
    from scopeseg.io import write_image
    from scopeseg.models.checkpoints import save_pretrained

    ckpt = tmp_path / "ckpt"
    save_pretrained(tiny_model, ckpt)
    data = tmp_path / "data"
    write_image(data / "a.png", scope_image)
    ds = CocoDataset()
    cat = ds.add_category("polyp")
    img = ds.add_image("a.png", 90, 120)
    m = np.zeros((90, 120), bool)
    m[20:60, 30:80] = True
    ds.add_annotation(img, cat, m)
    ds.save(data / "annotations.json")
    assert main(["segment", str(ckpt), str(data), str(tmp_path / "o"), "from_gt=true", "jitter=0.1"]) == 0
    preds = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(preds) == 1 and preds[0]["image_id"] == img and preds[0]["category_id"] == cat
