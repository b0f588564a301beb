"""Engines and export of dense models: ``scopeseg export`` for every semantic model, ORT == torch, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.errors import ModelError
from scopeseg.inference.engines import load_engine, pick_engine, rank_engines
from scopeseg.inference.semantic import Predictor
from scopeseg.models import create_model, list_models, save_pretrained
from scopeseg.models.registry import model_entry
from scopeseg.runtime import cpu_class, cpu_info, native_bf16, ov_compile

SIZE = [40, 56]  # the checkpoints' input_size: small, and not a multiple of 32 (the pad path is exported)
#: export format -> the engines that read its exports (onnx exports: onnx and openvino)
READERS = {"openvino": ("openvino",), "torchscript": ("torch",)}
needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no avx512_bf16 / amx_bf16")


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """Each test compiles into its own SCOPESEG_HOME (the OpenVINO cache lives there)."""
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path / "home"))


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
        (
            {"engine": "tensorrt"},
            "unknown engine 'tensorrt' for dense models; use onnx, openvino, torch or auto",
        ),
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
    assert main(["export", str(ckpt), str(out), "--overwrite", "--tolerance", "1e-12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: onnx export of unet-effb0 differs from torch by") and "\n" not in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # without --overwrite an existing output is refused before anything runs
    assert main(["export", str(ckpt), str(out)]) == 2
    assert "output already exists" in capsys.readouterr().err
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


# --- OpenVINO and TorchScript: every format, every engine that reads it, auto, CPU features ---------------


@pytest.mark.parametrize("fmt", sorted(READERS))
@pytest.mark.parametrize("name", list_models(family="semantic"))
def test_export_formats_round_trip_every_semantic_model(name, fmt, tmp_path, capsys):
    classes = ("tool",) if name != "unet-lite1" else ("tool", "tissue")  # one multi-class model per format
    ckpt = _checkpoint(name, tmp_path / "ckpt", classes=classes)
    out = tmp_path / fmt
    assert main(["export", str(ckpt), str(out), "--format", fmt]) == 0
    assert f"exported as {fmt}" in capsys.readouterr().out
    meta = json.loads((out / "export.json").read_text())
    graph = {"openvino": ["model.bin", "model.xml"], "torchscript": ["model.pt"]}[fmt]
    assert sorted(p.name for p in out.iterdir()) == sorted(["export.json", *graph])
    assert meta["format"] == fmt and meta["check"]["passed"] and meta["check"]["max_abs_diff"] < 1e-4
    assert meta["check"]["inputs"] == [[1, 3, 71, 103], [2, 3, *SIZE]]
    pre = meta["preprocessing"]  # everything a deployment needs without our Python config
    assert pre["classes"] == list(classes) and pre["input_size"] == SIZE and pre["threshold"] == 0.5
    assert pre["mean"] == [0.0, 0.0, 0.0] and pre["std"] == [255.0] * 3
    assert meta["signature"]["logits"] == ["batch", len(classes), "height", "width"]
    torch_p = Predictor.from_pretrained(ckpt, batch_size=2)
    batch = np.random.default_rng(1).random((3, 3, 45, 77)).astype(np.float32)  # a size never traced
    for engine in READERS[fmt]:
        p = Predictor.from_pretrained(out, engine=engine, threads=1, batch_size=2)
        assert p.classes == list(classes) and p.input_size == tuple(SIZE)
        for a, b in zip(torch_p.probabilities(_images()), p.probabilities(_images())):
            np.testing.assert_allclose(b, a, atol=1e-5)
            assert np.array_equal(torch_p.labels(a), p.labels(b))
        np.testing.assert_allclose(p.engine.forward(batch), torch_p.engine.forward(batch), atol=1e-4)


def test_openvino_compiles_onnx_exports_and_checkpoints(tmp_path):
    ckpt = _checkpoint("unet-effb0", tmp_path / "ckpt", classes=("tool", "tissue"))
    ref = Predictor.from_pretrained(ckpt).probabilities(_images())
    onnx = Predictor.from_pretrained(ckpt, engine="onnx", threads=1)  # exports into CKPT/onnx
    for source in (ckpt, ckpt / "onnx"):  # the checkpoint (cached export) and the ONNX export folder
        p = Predictor.from_pretrained(source, engine="openvino", threads=1)
        assert p.engine.name == "openvino" and p.engine.precision == "fp32" and p.engine.chosen_by == ""
        for a, b, c in zip(ref, p.probabilities(_images()), onnx.probabilities(_images())):
            np.testing.assert_allclose(b, a, atol=1e-5)
            np.testing.assert_allclose(b, c, atol=1e-5)
    cache = tmp_path / "home" / "openvino-cache"
    assert cache.is_dir() and any(cache.iterdir())  # compiled blobs kept under SCOPESEG_HOME


def test_openvino_settings_are_explicit(tmp_path):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    Predictor.from_pretrained(ckpt, engine="onnx", threads=1)
    compiled = ov_compile(ckpt / "onnx" / "model.onnx", "fp32", threads=1)
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_openvino_bf16_is_refused_in_one_line_without_native_bf16(tmp_path):
    if native_bf16():
        pytest.skip("this CPU has native bf16")
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    with pytest.raises(ModelError) as err:
        load_engine(ckpt, "dense", "openvino", "bf16")
    assert str(err.value) == (
        "openvino bf16 needs a CPU with avx512_bf16 or amx_bf16 (this one has neither); use precision=fp32"
    )
    assert not (ckpt / "onnx").exists()  # refused before anything was exported
    from scopeseg.io import write_image

    write_image(tmp_path / "x.png", _images()[0])
    argv = ["predict", str(ckpt), str(tmp_path / "x.png"), str(tmp_path / "o"), "engine=openvino"]
    assert main([*argv, "precision=bf16"]) == 2 and not (tmp_path / "o").exists()
    assert main(["-q", *argv]) == 0 and (tmp_path / "o" / "results.json").is_file()


@needs_bf16
def test_openvino_bf16_masks_stay_those_of_fp32(tmp_path):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    fp32 = Predictor.from_pretrained(ckpt, engine="openvino", threads=1)
    bf16 = Predictor.from_pretrained(ckpt, engine="openvino", precision="bf16", threads=1)
    a, b = fp32.probabilities(_images())[0], bf16.probabilities(_images())[0]
    assert np.abs(a - b).max() < 0.05 and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    out = tmp_path / "ov"
    assert main(["export", str(ckpt), str(out), "--format", "openvino"]) == 0
    quality = json.loads((out / "export.json").read_text())["quality"]["bf16"]
    assert 0.9 <= quality["dice_mean"] <= 1 and quality["n"] == 4


def test_engines_refuse_exports_they_cannot_read(tmp_path):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    export_cli = ["export", str(ckpt)]
    assert main([*export_cli, str(tmp_path / "ts"), "--format", "torchscript"]) == 0
    assert main([*export_cli, str(tmp_path / "ov"), "--format", "openvino"]) == 0
    cases = [
        ("ts", "openvino", "export format torchscript: engine openvino reads onnx and openvino exports"),
        ("ov", "onnx", "export format openvino: engine onnx reads onnx exports (use engine=openvino)"),
        ("ov", "torch", "engine torch reads torchscript exports and checkpoints (use engine=openvino)"),
    ]
    for folder, engine, message in cases:
        with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_engine(tmp_path / folder, "dense", engine)
    with pytest.raises(ModelError, match="torchscript export runs fp32 only, not bf16"):
        load_engine(tmp_path / "ts", "dense", "torch", "bf16")


def test_auto_picks_by_cpu_class_never_lowers_precision_and_says_so(tmp_path, caplog):
    ckpt = _checkpoint("unet-mbv2", tmp_path / "ckpt")
    with caplog.at_level("INFO", logger="scopeseg.inference.engines"):
        p = Predictor.from_pretrained(ckpt, engine="auto", threads=1)
    first = rank_engines("dense", "fp32")[0][0]
    assert p.engine.name == first and p.engine.precision == "fp32"
    assert p.engine.chosen_by.startswith(f"auto: {first} fp32 (CPU class {cpu_class()}")
    assert any(r.getMessage() == p.engine.chosen_by for r in caplog.records)
    ref = Predictor.from_pretrained(ckpt).probabilities(_images()[:1])[0]
    np.testing.assert_allclose(p.probabilities(_images()[:1])[0], ref, atol=1e-5)
    # the table: on an AMX host OpenVINO leads for promptable fp32 and bf16; classes without rows fall back
    assert [n for n, _ in rank_engines("promptable", "fp32", "amx")] == ["openvino", "onnx", "torch"]
    assert rank_engines("promptable", "bf16", "amx")[0] == ("openvino", 3.6)
    assert rank_engines("dense", "fp32", "avx512") == rank_engines("dense", "fp32", "avx2")
    # an export folder limits the choice to the engines that read it; bf16 never picks an engine refusing it
    main(["export", str(ckpt), str(tmp_path / "ts"), "--format", "torchscript"])
    assert pick_engine(tmp_path / "ts", "dense")[0] == "torch"
    if not native_bf16():
        assert pick_engine(ckpt, "dense", "bf16")[0] == "torch"


def test_cpu_features_from_cpuinfo(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n")
    info = cpu_info(str(fake))
    assert info["model"] == "Test CPU" and "avx512_bf16" in info["flags"]
    assert cpu_class(info["flags"]) == "avx512_bf16" and native_bf16(info["flags"])
    amx = info["flags"] | {"amx_bf16", "amx_tile"}
    assert cpu_class(amx) == "amx" and cpu_class(frozenset({"avx2", "fma"})) == "avx2"
    assert cpu_class(frozenset()) == "baseline" and not native_bf16(frozenset({"avx2"}))
    here = cpu_info()["flags"]
    assert native_bf16() == ("avx512_bf16" in here or "amx_bf16" in here)


def test_torchscript_refuses_what_does_not_trace_in_one_line(tmp_path):
    from scopeseg.inference.export import _save_graph

    class Untraceable(torch.nn.Module):
        def forward(self, x):
            return {"not": "a tensor"}

    with pytest.raises(ModelError) as err:
        _save_graph("torchscript", Untraceable(), (torch.zeros(1),), tmp_path / "m", 17)
    assert str(err.value).startswith("Untraceable does not trace to TorchScript: ") and "\n" not in str(
        err.value
    )
