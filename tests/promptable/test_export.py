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
    _matches_torch_for_all_prompt_kinds(
        tiny_model, PromptPredictor(OrtPromptEngine(exported, threads=1)), scope_image
    )


def _matches_torch_for_all_prompt_kinds(tiny_model, ort_p, scope_image):
    """Box, point, mixed and mask prompts through ``ort_p`` (any engine) equal the torch model's."""
    torch_p = PromptPredictor(TorchPromptEngine(tiny_model))
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
    _released_matches_torch(name, PromptPredictor.from_pretrained(out, engine="onnx", threads=1), scope_image)


def _released_matches_torch(name: str, exported_p: PromptPredictor, scope_image) -> None:
    """Boxes plus a point through an exported released model: logits, scores and masks equal torch's."""
    torch_p = PromptPredictor.from_pretrained(name)
    for p in (torch_p, exported_p):
        p.set_image(scope_image)
    kw = {"boxes": [[10, 10, 60, 50], [30, 20, 110, 85]], "points": [[40, 30]], "point_labels": [1]}
    a, b = torch_p.predict(**kw), exported_p.predict(**kw)
    np.testing.assert_allclose(b.low_res_logits, a.low_res_logits, atol=2e-3)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    assert (a.masks == b.masks).mean() > 0.999


# --- OpenVINO and TorchScript exports, the OpenVINO engine, reduced-precision Dice -----------------------

FORMAT_FILES = {
    "openvino": {
        "decoder.bin",
        "decoder.xml",
        "encoder.bin",
        "encoder.xml",
        "encoder.int8.bin",
        "encoder.int8.xml",
    },
    "torchscript": {"decoder.pt", "encoder.pt"},
}


@pytest.fixture(autouse=True)
def ov_cache(tmp_path, monkeypatch):
    """OpenVINO's compiled-model cache (normally SCOPESEG_HOME/openvino-cache) in a temporary folder."""
    from scopeseg.inference import runners

    monkeypatch.setattr(runners, "ov_cache_dir", lambda: tmp_path / "ov-cache")
    return tmp_path / "ov-cache"


@pytest.fixture(scope="module", params=sorted(FORMAT_FILES))
def exported_as(request, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "tiny"
    export(tiny_model, out, format=request.param)
    return request.param, out


def test_every_format_round_trips_through_the_engines_that_read_it(tiny_model, exported_as, scope_image):
    import json

    fmt, out = exported_as
    meta = json.loads((out / "export.json").read_text())
    assert {p.name for p in out.iterdir()} == FORMAT_FILES[fmt] | {"export.json"}
    check = meta["check"]
    assert meta["format"] == fmt and check["passed"] and check["max_abs_diff"] < 1e-4
    assert "decoder_one_box_logits_max_abs_diff" in check  # other N and P than traced: dynamic axes hold
    pre = meta["preprocessing"]
    assert pre["recipe"] == "medsam" and pre["input_size"] == [tiny_model.img_size] * 2
    assert pre["low_res_size"] == tiny_model.low_res_size and pre["mask_threshold"] == 0.0
    engine = {"openvino": "openvino", "torchscript": "torch"}[fmt]
    p = PromptPredictor.from_pretrained(out, engine=engine, threads=1)
    assert p.engine.backend == fmt and p.engine.precision == "fp32"
    _matches_torch_for_all_prompt_kinds(tiny_model, p, scope_image)


def test_openvino_runs_onnx_exports_int8_included(tiny_model, exported, exported_as, scope_image):
    ort = PromptPredictor(OrtPromptEngine(exported, threads=1))
    ov = PromptPredictor.from_pretrained(exported, engine="openvino", threads=1)  # the ONNX files, compiled
    _matches_torch_for_all_prompt_kinds(tiny_model, ov, scope_image)
    for p in (ort, ov):
        p.set_image(scope_image)
    ref = ort.predict(boxes=[10, 10, 100, 80]).low_res_logits.ravel()
    for precision in ("int8", "int8-static"):
        q = PromptPredictor.from_pretrained(exported, engine="openvino", precision=precision, threads=1)
        q.set_image(scope_image)
        b = q.predict(boxes=[10, 10, 100, 80]).low_res_logits.ravel()
        assert np.corrcoef(ref, b)[0, 1] > 0.9  # random tiny net: quantisation noise only


def test_exports_report_reduced_precision_dice(exported, exported_as):
    import json

    from scopeseg.runtime import native_bf16

    onnx_q = json.loads((exported / "export.json").read_text())["quality"]
    assert set(onnx_q) == {"int8", "int8-static"}
    for q in onnx_q.values():
        assert q["n"] == 12 and 0.5 < q["dice_min"] <= q["dice_mean"] <= 1 and q["backend"] == "onnx"
    fmt, out = exported_as
    quality = json.loads((out / "export.json").read_text())["quality"]
    if fmt == "torchscript":
        assert quality == {}  # fp32 only
        return
    assert set(quality) == {"int8", "bf16"} and quality["int8"]["backend"] == "openvino"
    assert ("skipped" in quality["bf16"]) != native_bf16()


def test_openvino_cache_and_refusals(exported, ov_cache):
    from scopeseg.errors import ModelError
    from scopeseg.runtime import native_bf16

    PromptPredictor.from_pretrained(exported, engine="openvino", threads=1)
    assert len(list(ov_cache.iterdir())) == 2  # encoder and decoder compiled once, kept for the next process
    with pytest.raises(
        ModelError, match="openvino engine precision must be one of fp32, bf16, int8, int8-static"
    ):
        PromptPredictor.from_pretrained(exported, engine="openvino", precision="fp8")
    if not native_bf16():
        with pytest.raises(ModelError, match="openvino bf16 needs a CPU with avx512_bf16 or amx_bf16"):
            PromptPredictor.from_pretrained(exported, engine="openvino", precision="bf16")


@pytest.mark.weights
@pytest.mark.parametrize("fmt", sorted(FORMAT_FILES))
def test_litemedsam_exports_match_torch(fmt, require_weights, tmp_path, capsys, scope_image):
    """Real LiteMedSAM as OpenVINO IR and TorchScript: check passes, masks equal torch's."""
    from scopeseg.cli import main

    require_weights("litemedsam")
    out = tmp_path / fmt
    assert main(["export", "litemedsam", str(out), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    assert f"exported as {fmt}" in printed and "passed" in printed
    if fmt == "openvino":
        assert "int8: Dice vs fp32 on 12 synthetic samples" in printed
    engine = {"openvino": "openvino", "torchscript": "torch"}[fmt]
    _released_matches_torch(
        "litemedsam", PromptPredictor.from_pretrained(out, engine=engine, threads=1), scope_image
    )


@pytest.mark.weights
def test_litemedsam_openvino_bf16_dice_vs_fp32(require_weights, scope_image):
    from scopeseg.metrics.overlap import dice
    from scopeseg.runtime import native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no avx512_bf16 / amx_bf16")
    require_weights("litemedsam")
    fp32 = PromptPredictor.from_pretrained("litemedsam", engine="openvino", threads=1)
    bf16 = PromptPredictor.from_pretrained("litemedsam", engine="openvino", precision="bf16", threads=1)
    boxes = [[10, 10, 60, 50], [30, 20, 110, 85], [5, 5, 115, 85]]
    for p in (fp32, bf16):
        p.set_image(scope_image)
    a, b = fp32.predict(boxes=boxes).masks, bf16.predict(boxes=boxes).masks
    assert min(dice(y, x, empty="one") for x, y in zip(a, b)) > 0.95


def test_segment_cli_runs_openvino_and_auto(tiny_model, tmp_path, scope_image):
    """``scopeseg segment CKPT IMG OUT engine=openvino``: the same masks as the torch engine; auto too."""
    from scopeseg.cli import main
    from scopeseg.io import read_image, write_image
    from scopeseg.models.checkpoints import save_pretrained

    save_pretrained(tiny_model, tmp_path / "ckpt")
    write_image(tmp_path / "frame.png", scope_image)
    masks = {}
    for engine in ("torch", "openvino", "auto"):
        out = tmp_path / engine
        argv = ["-q", "segment", str(tmp_path / "ckpt"), str(tmp_path / "frame.png"), str(out)]
        assert main([*argv, "boxes=[[10,10,60,50],[30,20,110,85]]", f"engine={engine}", "threads=1"]) == 0
        masks[engine] = read_image(out / "masks" / "frame.png", mode="unchanged")
    assert np.array_equal(masks["openvino"], masks["torch"]) and np.array_equal(masks["auto"], masks["torch"])
