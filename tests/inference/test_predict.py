"""Semantic prediction: Predictor numerics, and every input kind of ``scopeseg predict`` with its outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.data.coco import CocoDataset
from scopeseg.inference.semantic import Predictor
from scopeseg.io import read_image, write_image
from scopeseg.models import create_model, save_pretrained
from scopeseg.video_io import video_info, write_video


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = create_model("unet-effb0", classes=["tool"]).eval()
    m.config.update(input_size=[64, 96], threshold=0.5)
    return save_pretrained(m, tmp_path_factory.mktemp("ck") / "model")


def test_probabilities_match_the_model(ckpt):
    p = Predictor.from_pretrained(ckpt)
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        ref = torch.sigmoid(p.engine.model(torch.from_numpy(img.transpose(2, 0, 1)[None] / 255.0).float()))[
            0
        ].numpy()
    got = p.probabilities([img])[0]
    assert got.shape == (1, 64, 96)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.array_equal(p.predict([img])[0], (ref[0] > 0.5).astype(np.uint8))


def test_other_sizes_are_resized_and_mapped_back(ckpt):
    p = Predictor.from_pretrained(ckpt, batch_size=3)
    imgs = [
        np.zeros((120, 200, 3), np.uint8),
        np.full((37, 41, 3), 200, np.uint8),
        np.zeros((64, 96, 3), np.uint8),
    ]
    outs = p.predict(imgs)
    assert [o.shape for o in outs] == [(120, 200), (37, 41), (64, 96)]
    with pytest.raises(Exception, match="HxWx3 uint8"):
        p.predict([np.zeros((10, 10), np.uint8)])


def test_predict_coco_folder_image_and_video(ckpt, disc_data, tmp_path, capsys):
    # COCO data set input: masks, overlays, canonical predictions and COCO results keyed to the GT ids
    assert main(["-q", "predict", str(ckpt), str(disc_data), str(tmp_path / "coco")]) == 0
    gt = CocoDataset.load(disc_data)
    pred = CocoDataset.load(tmp_path / "coco" / "predicted")
    assert len(pred.images) == len(gt.images)
    results = json.loads((tmp_path / "coco" / "results.json").read_text())
    assert {r["image_id"] for r in results} <= set(gt.images)
    assert len(list((tmp_path / "coco" / "masks").rglob("*.png"))) == len(gt.images)
    assert len(list((tmp_path / "coco" / "overlays").rglob("*.jpg"))) == len(gt.images)
    # the PNG mask of the first image equals the predictor's labels (0/255 for binary)
    p = Predictor.from_pretrained(ckpt)
    first = next(iter(gt.images))
    expect = p.predict([gt.load_image(first)])[0] * 255
    name = gt.images[first]["file_name"].rsplit(".", 1)[0]
    got = read_image(tmp_path / "coco" / "masks" / f"{name}.png", mode="unchanged")
    assert np.array_equal(got, expect)
    # RLE in the predicted data set decodes to the same mask
    pid = next(iter(pred.images))
    m = np.zeros(expect.shape, bool)
    for a in pred.image_anns(pid):
        m |= pred.mask(a)
    assert np.array_equal(m, expect > 0)

    # single image and folder
    img_path = gt.image_path(first)
    assert main(["-q", "predict", str(ckpt), str(img_path), str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "predicted" / "annotations.json").is_file()
    assert main(["-q", "predict", str(ckpt), str(disc_data / "frames"), str(tmp_path / "folder")]) == 0
    assert len(CocoDataset.load(tmp_path / "folder" / "predicted").images) == len(gt.images)

    # video: overlay mp4 with as many frames + COCO-video JSON in frame order
    frames = [gt.load_image(i) for i in gt.video_frames(next(iter(gt.videos)))]
    write_video(tmp_path / "clip.mp4", frames, fps=5)
    assert main(["-q", "predict", str(ckpt), str(tmp_path / "clip.mp4"), str(tmp_path / "vid")]) == 0
    assert video_info(tmp_path / "vid" / "clip_overlay.mp4")["frames"] == len(frames)
    vds = CocoDataset.load(tmp_path / "vid" / "predicted")
    assert [vds.images[i]["frame_index"] for i in vds.video_frames(1)] == list(range(len(frames)))


def test_predict_bad_inputs_exit_2(ckpt, tmp_path, capsys):
    assert main(["predict", str(ckpt), str(tmp_path / "missing.png"), str(tmp_path / "o")]) == 2
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(["predict", str(ckpt), str(tmp_path / "bad.png"), str(tmp_path / "o2")]) == 2
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    assert main(["predict", str(ckpt), str(tmp_path / "bad.mp4"), str(tmp_path / "o3")]) == 2
    assert main(["predict", str(tmp_path / "nomodel"), str(tmp_path / "bad.png"), str(tmp_path / "o4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert "missing.png" in err[0] and "bad.png" in err[1] and "bad.mp4" in err[2] and "nomodel" in err[3]
    assert not (tmp_path / "o3" / "bad_overlay.mp4").exists()
    write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))


def test_predicted_data_set_is_a_data_set_evaluate_reads_like_the_results(ckpt, disc_data, tmp_path, capsys):
    """predict writes one prediction twice (data set folder, COCO results): evaluate gives the same numbers on
    both, the data commands read the folder, and a category whose name disagrees with the GT id is refused."""
    from scopeseg.errors import DataError
    from scopeseg.evaluate import evaluate

    out = tmp_path / "p"
    assert main(["-q", "predict", str(ckpt), str(disc_data), str(out), "batch_size=2", "overlays=false"]) == 0
    assert not (out / "overlays").exists()
    a = evaluate(disc_data, out / "predicted", "binary")
    b = evaluate(disc_data, out / "results.json", "binary")
    assert a.metrics == b.metrics and len(a.items) == len(CocoDataset.load(disc_data).images)
    assert main(["validate", str(out / "predicted")]) == 0
    capsys.readouterr()
    assert main(["info", str(out / "predicted"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == len(a.items)
    raw = json.loads((out / "predicted" / "annotations.json").read_text())
    raw["categories"][0]["name"] = "not-a-tool"
    (out / "predicted" / "annotations.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match="is 'not-a-tool' but ground-truth category"):
        evaluate(disc_data, out / "predicted", "binary")
