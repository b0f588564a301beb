"""Instance models through ``scopeseg export`` (ONNX, OpenVINO) and the instance keys in ``predict --help``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.models import create_model
from scopeseg.models.instance.mask2former import TINY

CLASSES = ["grasper", "hook", "scissors"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model(
        "lemis-lite0",
        **{**TINY, "text": "cross_attention", "text_encoder": "random", "classes": CLASSES},
        quality_head=True,
        refine=True,
        box_head=True,
        mask_pool=True,
        pool_max=True,
    ).eval()
    torch.nn.init.normal_(model.pool_proj.layers[-1].weight)  # zero at init: make the pooled path count
    model.config["input_size"] = [64, 96]
    folder = tmp_path_factory.mktemp("inst_export") / "ckpt"
    model.save_pretrained(folder)
    return folder, model


def _run_graph(fmt: str, path, x: np.ndarray) -> list[np.ndarray]:
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"pixels": x})
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    res = compiled([x])
    return [res[o] for o in compiled.outputs]


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export_cli_writes_a_checked_instance_graph(checkpoint, tmp_path, capsys, fmt):
    pytest.importorskip("onnxruntime" if fmt == "onnx" else "openvino")
    folder, model = checkpoint
    out = tmp_path / "exp"
    assert main(["export", str(folder), str(out), "--format", fmt]) == 0
    assert "instance model exported" in capsys.readouterr().out
    meta = json.loads((out / "export.json").read_text())
    assert meta["kind"] == "instance" and meta["check"]["passed"]
    assert meta["check"]["inputs"] == [[1, 3, 64, 96], [2, 3, 64, 96]]
    assert meta["signature"]["masks"] == ["batch", TINY["num_queries"], 16, 24]
    pre = meta["preprocessing"]
    assert pre["recipe"] == "instance" and pre["classes"] == CLASSES and pre["input_size"] == [64, 96]
    # the written graph, run by its own backend on a new batch of 3, gives torch's four outputs
    x = torch.rand(3, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
    got = _run_graph(fmt, out / meta["files"]["fp32"], x.numpy())
    assert len(got) == 4
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b.numpy(), atol=5e-4, rtol=1e-3)


def test_export_refuses_int8_for_instance_models(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder, _ = checkpoint
    code = main(["export", str(folder), str(tmp_path / "exp"), "--int8-static"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "fp32 only" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "exp").exists()


def test_predict_help_lists_the_instance_keys(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    instance = text.split("InstancePredictConfig keys", 1)[1]  # the instance list follows the semantic one
    for key in ("classes=", "topk=", "min_score=", "engine="):
        assert f"  {key}" in instance, key
