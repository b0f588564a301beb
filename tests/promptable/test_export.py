"""ONNX export of the encoder + prompt decoder and the ORT engine behind the same PromptPredictor."""

from __future__ import annotations

import numpy as np
import pytest

from scopeseg.inference.engines import OrtPromptEngine, TorchPromptEngine
from scopeseg.inference.export import export
from scopeseg.inference.prompt import PromptPredictor
from scopeseg.inference.sources import released_names


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    from scopeseg.inference.calibration import default_calibration_images

    out = tmp_path_factory.mktemp("onnx") / "tiny"
    export(tiny_model, out, calibration_images=default_calibration_images(n=2, size=(48, 64)))
    return out


def test_export_records_its_check_and_leaves_the_model_as_it_was(tiny_model, exported):
    import json

    meta = json.loads((exported / "export.json").read_text())
    assert meta["kind"] == "promptable" and set(meta["files"]) == {"fp32", "int8", "int8-static"}
    check = meta["check"]
    assert check["passed"] and check["max_abs_diff"] < 1e-4
    assert check["max_abs_diff"] == max(
        v for k, v in check.items() if k.endswith("max_abs_diff") and "int8" not in k
    )
    assert check["int8_encoder_max_abs_diff"] > 0  # quantisation noise is recorded, not checked
    assert not tiny_model.training  # the legacy exporter used to leave the caller's model in train mode


def test_onnx_matches_torch_for_all_prompt_kinds(tiny_model, exported, scope_image):
    torch_p = PromptPredictor(TorchPromptEngine(tiny_model))
    ort_p = PromptPredictor(OrtPromptEngine(exported, threads=1))
    for p in (torch_p, ort_p):
        p.set_image(scope_image)
    cases = [
        {"boxes": [[10, 10, 60, 50], [30, 20, 110, 85], [0, 0, 120, 90]]},  # N=3 boxes
        {"points": [[40, 30], [100, 80], [5, 5]], "point_labels": [1, 1, 0], "multimask": True},  # P=3
        {"boxes": [20, 20, 90, 70], "points": [[50, 40]], "point_labels": [1]},
    ]
    for kw in cases:
        a, b = torch_p.predict(**kw), ort_p.predict(**kw)
        np.testing.assert_allclose(b.low_res_logits, a.low_res_logits, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
        assert (a.masks == b.masks).mean() > 0.999
    first = torch_p.predict(points=[[60, 45]], point_labels=[1])
    kw = {"points": [[60, 45], [10, 80]], "point_labels": [1, 0], "mask_input": first.low_res_logits}
    np.testing.assert_allclose(
        ort_p.predict(**kw).low_res_logits, torch_p.predict(**kw).low_res_logits, atol=1e-4, rtol=1e-4
    )


def test_int8_encoder_runs_through_the_same_predictor(tiny_model, exported, scope_image):
    fp32 = PromptPredictor(OrtPromptEngine(exported, threads=1))
    a = fp32
    a.set_image(scope_image)
    ref = a.predict(boxes=[10, 10, 100, 80]).low_res_logits.ravel()
    for precision in ("int8", "int8-static"):
        p = PromptPredictor(OrtPromptEngine(exported, precision=precision, threads=1))
        p.set_image(scope_image)
        b = p.predict(boxes=[10, 10, 100, 80]).low_res_logits.ravel()
        assert np.corrcoef(ref, b)[0, 1] > 0.9  # random tiny net: quantisation noise only, no quality claim


def test_engine_refuses_missing_files(tmp_path, exported):
    from scopeseg.errors import ModelError

    with pytest.raises(ModelError, match="not an exported"):
        OrtPromptEngine(tmp_path)
    with pytest.raises(ModelError, match="precision"):
        OrtPromptEngine(exported, precision="fp8")


def test_from_pretrained_onnx_exports_a_checkpoint_once(tiny_model, tmp_path, scope_image):
    from scopeseg.models.checkpoints import save_pretrained

    save_pretrained(tiny_model, tmp_path / "ckpt")
    p = PromptPredictor.from_pretrained(tmp_path / "ckpt", engine="onnx", threads=1)
    assert (tmp_path / "ckpt" / "onnx" / "decoder.onnx").is_file()
    p.set_image(scope_image)
    assert p.predict(boxes=[1, 1, 50, 50]).masks.shape == (1, 90, 120)


@pytest.mark.weights
@pytest.mark.parametrize("name", released_names())
def test_export_cli_released_models_match_torch(name, require_weights, tmp_path, capsys, scope_image):
    """``scopeseg export NAME OUT``: the recorded check passes and ORT predictions equal torch's."""
    import json

    from scopeseg.cli import main

    require_weights(name)
    out = tmp_path / name
    assert main(["export", name, str(out), "--format", "onnx"]) == 0
    assert "promptable model exported" in capsys.readouterr().out
    meta = json.loads((out / "export.json").read_text())
    assert meta["name"] == name and set(meta["files"]) == {"fp32", "int8"}
    check = meta["check"]
    assert check["passed"] and check["max_abs_diff"] <= 1e-3 * max(1.0, check["reference_max_abs"])
    assert check["decoder_logits_max_abs_diff"] < 1e-3 and check["encoder_max_abs_diff"] < 1e-3
    torch_p = PromptPredictor.from_pretrained(name)
    onnx_p = PromptPredictor.from_pretrained(out, engine="onnx", threads=1)
    for p in (torch_p, onnx_p):
        p.set_image(scope_image)
    kw = {"boxes": [[10, 10, 60, 50], [30, 20, 110, 85]], "points": [[40, 30]], "point_labels": [1]}
    a, b = torch_p.predict(**kw), onnx_p.predict(**kw)
    np.testing.assert_allclose(b.low_res_logits, a.low_res_logits, atol=2e-3)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    assert (a.masks == b.masks).mean() > 0.999
