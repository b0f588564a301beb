"""Engines and export of dense models: ``scopeseg export`` for every semantic model, ORT == torch, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.errors import ModelError
from scopeseg.inference.engines import load_engine
from scopeseg.inference.semantic import Predictor
from scopeseg.models import create_model, list_models, save_pretrained
from scopeseg.models.registry import model_entry

SIZE = [40, 56]  # the checkpoints' input_size: small, and not a multiple of 32 (the pad path is exported)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _checkpoint(name: str, folder, seed: int = 0, classes=("tool",)):
    torch.manual_seed(seed)
    model = create_model(name, **{**model_entry(name).tiny, "classes": list(classes)}).eval()
    model.config.update(input_size=SIZE, threshold=0.5)
    return save_pretrained(model, folder)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random(shape) * 255).astype(np.uint8) for shape in ((40, 56, 3), (75, 101, 3), (33, 47, 3))]


@pytest.mark.parametrize("name", list_models(family="semantic"))
def test_export_cli_writes_onnx_that_matches_torch(name, tmp_path, capsys):
    classes = ("tool",) if name != "unet-effb0" else ("tool", "tissue")  # one multi-class model: softmax path
    ckpt = _checkpoint(name, tmp_path / "ckpt", classes=classes)
    out = tmp_path / "onnx"
    assert main(["export", str(ckpt), str(out), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "dense model exported" in printed and "passed" in printed
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx"]
    meta = json.loads((out / "export.json").read_text())
    check = meta["check"]
    assert meta["kind"] == "dense" and meta["config"]["name"] == name and meta["config"]["input_size"] == SIZE
    assert check["inputs"] == [[1, 3, 71, 103], [2, 3, *SIZE]] and check["passed"]
    assert 0 <= check["max_abs_diff"] < 1e-4
    # the exported model behind the same Predictor: probabilities equal torch's at several image sizes
    torch_p = Predictor.from_pretrained(ckpt, batch_size=2)
    onnx_p = Predictor.from_pretrained(out, engine="onnx", threads=1, batch_size=2)
    assert onnx_p.classes == torch_p.classes == list(classes) and onnx_p.input_size == tuple(SIZE)
    for a, b in zip(torch_p.probabilities(_images()), onnx_p.probabilities(_images())):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-5)
    # dynamic height and width: the raw engine at a size other than the traced and checked ones
    batch = np.random.default_rng(1).random((3, 3, 45, 77)).astype(np.float32)
    np.testing.assert_allclose(onnx_p.engine.forward(batch), torch_p.engine.forward(batch), atol=1e-4)


def test_onnx_predictor_from_a_checkpoint_exports_once_announced(tmp_path, caplog):
    ckpt = _checkpoint("unet-lite0", tmp_path / "ckpt")
    with caplog.at_level("WARNING", logger="scopeseg.inference.export"):
        first = Predictor.from_pretrained(ckpt, engine="onnx", threads=1)
    assert any(str(ckpt / "onnx") in r.getMessage() for r in caplog.records)  # announced, with the folder
    assert (ckpt / "onnx" / "model.onnx").is_file()
    caplog.clear()
    with caplog.at_level("WARNING", logger="scopeseg.inference.export"):
        Predictor.from_pretrained(ckpt, engine="onnx", threads=1)
    assert not caplog.records  # reused
    # new weights in the same folder: the stale export is redone (announced again), not served
    _checkpoint("unet-lite0", ckpt, seed=1)
    with caplog.at_level("WARNING", logger="scopeseg.inference.export"):
        again = Predictor.from_pretrained(ckpt, engine="onnx", threads=1)
    assert caplog.records
    img = _images()[:1]
    fresh = Predictor.from_pretrained(ckpt).probabilities(img)[0]
    np.testing.assert_allclose(again.probabilities(img)[0], fresh, atol=1e-5)
    assert np.abs(first.probabilities(img)[0] - fresh).max() > 1e-4


def test_engine_and_precision_are_refused_in_one_line_before_anything_loads(tmp_path):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    cases = [
        ({"engine": "tensorrt"}, "unknown engine 'tensorrt' for dense models; use onnx or torch"),
        (
            {"engine": "torch", "precision": "int8"},
            "torch engine precision must be one of fp32, bf16, got 'int8'",
        ),
        ({"engine": "onnx", "precision": "int8"}, "onnx engine precision must be one of fp32, got 'int8'"),
    ]
    for kw, message in cases:
        with pytest.raises(ModelError) as err:
            load_engine(ckpt, "dense", **kw)
        assert str(err.value) == message
    assert not (ckpt / "onnx").exists()  # nothing was exported for a refused request


def test_bf16_torch_engine_runs_the_same_model(tmp_path):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    fp32 = Predictor.from_pretrained(ckpt)
    bf16 = Predictor.from_pretrained(ckpt, precision="bf16")
    a, b = fp32.probabilities(_images()[:1])[0], bf16.probabilities(_images()[:1])[0]
    assert np.abs(a - b).max() < 0.05 and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_export_refusals(tmp_path, capsys):
    ckpt = _checkpoint("unet-effb0", tmp_path / "ckpt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier output")
    # a check that cannot pass fails the export and leaves the earlier output as it was
    assert main(["export", str(ckpt), str(out), "--tolerance", "1e-12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: onnx export of unet-effb0 differs from torch by") and "\n" not in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # a registered name without released trained weights, an unknown name, an unknown format
    assert main(["export", "unet-lite0", str(tmp_path / "x")]) == 2
    assert main(["export", "nosuchmodel", str(tmp_path / "x")]) == 2
    assert main(["export", str(ckpt), str(tmp_path / "x"), "--format", "tflite"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "'unet-lite0' has no released trained weights" in lines[0] and "litemedsam" in lines[0]
    assert "unknown model 'nosuchmodel'" in lines[1]
    assert "cannot export dense models as 'tflite'; formats: onnx" in lines[2]
    assert not (tmp_path / "x").exists()
    # a promptable checkpoint is not a dense model
    from scopeseg.models.sam.model import TINY_ARCH

    save_pretrained(create_model("litemedsam", pretrained=False, **TINY_ARCH), tmp_path / "sam")
    with pytest.raises(ModelError, match="is a promptable model, not dense; run it with PromptPredictor"):
        Predictor.from_pretrained(tmp_path / "sam")
