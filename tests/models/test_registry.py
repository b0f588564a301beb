"""Every registered model of every family keeps the base contract: forward shapes, save/load round trip with
equal outputs, capability flags; semantic UNets also train (no dead parameters) and take any size (timm-style)."""

from __future__ import annotations

import json

import pytest
import torch

from scopeseg.errors import ModelError
from scopeseg.models import ScopesegModel, create_model, list_models, load_model, save_pretrained
from scopeseg.models.registry import model_entry
from scopeseg.models.sam.model import PromptableSAM

ALL = list_models()
SEMANTIC = list_models(family="semantic")
FLAGS = ("exportable", "promptable", "text_conditioned", "video")


def test_registry_lists_the_issue_models():
    for name in ("unet-effb0", "unet-effb2", "unet-lite0", "unet-lite1", "unet-lite2", "unet-mbv2"):
        assert name in SEMANTIC
    assert list_models("unet-lite*") == ["unet-lite0", "unet-lite1", "unet-lite2"]
    assert list_models(family="promptable") == ["litemedsam", "litemedsam-scope", "mobilesam"]
    assert {"litemedsam-memory", "mobilesam-memory", "sam2-video"} <= set(list_models(family="video"))
    assert list_models("mask2former-*", family="instance") == [
        "mask2former-lite0",
        "mask2former-lite1",
        "mask2former-lite2",
        "mask2former-mbv2",
    ]
    assert list_models("lemis-*", family="instance") == [
        "lemis-lite0",
        "lemis-lite1",
        "lemis-lite2",
        "lemis-mbv2",
    ]
    assert set(ALL) == set(SEMANTIC) | {"litemedsam", "litemedsam-scope", "mobilesam"} | set(
        list_models(family="video")
    ) | set(list_models(family="instance"))


def _json(config: dict) -> dict:
    return json.loads(json.dumps(config, default=str))


@pytest.mark.parametrize("name", ALL)
def test_every_model_keeps_the_contract(name, tmp_path):
    entry = model_entry(name)
    torch.manual_seed(0)
    model = create_model(name, **entry.tiny).eval()
    assert isinstance(model, ScopesegModel) and model.family == entry.family
    assert model.config["name"] == name and model.config["family"] == entry.family
    for flag in FLAGS:  # capabilities are class attributes, never patched onto an instance
        assert isinstance(getattr(type(model), flag), bool) and flag not in vars(model)
    assert model.promptable == (entry.family == "promptable")
    assert model.video == (entry.family == "video")
    assert model.text_conditioned == (entry.family == "instance" and name.startswith("lemis-"))
    inputs = model.example_inputs(batch=2)
    with torch.no_grad():
        ref = model(*inputs)
        if model.promptable or model.video:  # video models: a prompted frame, then one decode from its memory
            masks, iou = ref
            low = model.low_res_size
            shape = (2, 4, low, low) if model.promptable else (2, masks.shape[1], low, low)
            assert masks.shape == shape and iou.shape == shape[:2]
        if model.promptable:
            emb = model.encode(inputs[0])
            assert torch.equal(model.decode(emb, *inputs[1:])[0], masks)  # forward = encode + decode
        elif model.family == "instance":  # class logits (+ no-object), stride-4 mask logits, quality, boxes
            logits, masks, quality, boxes = ref
            q, (h, w) = logits.shape[1], inputs[0].shape[-2:]
            assert logits.shape == (2, q, len(model.classes) + 1) and masks.shape == (2, q, h // 4, w // 4)
            assert quality.shape == (2, q) and boxes.shape == (2, q, 4)
        elif not model.video:
            assert ref.shape[0] == 2 and ref.shape[-2:] == inputs[0].shape[-2:]
            assert ref.shape[1] == (1 if model.binary else len(model.classes) + 1)
    refs = ref if isinstance(ref, tuple) else (ref,)
    assert all(torch.isfinite(r).all() for r in refs)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config == _json(model.config) and config["family"] == entry.family
    for loaded in (load_model(tmp_path / "ckpt"), type(model).from_pretrained(tmp_path / "ckpt")):
        assert type(loaded) is type(model) and _json(loaded.config) == _json(model.config)
        with torch.no_grad():
            out = loaded(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        assert all(torch.equal(a, b) for a, b in zip(outs, refs, strict=True))


@pytest.mark.parametrize("name", SEMANTIC)
def test_forward_backward_and_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, classes=["a", "b"], pretrained=False)
    x = torch.rand(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 3, 64, 64)
    y.mean().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    with_grad = sum(p.numel() for p in params if p.grad is not None and p.grad.abs().sum() > 0)
    assert with_grad == sum(p.numel() for p in params)  # no dead parameters (DDP needs this)
    model.eval()
    with torch.no_grad():
        odd = model(torch.rand(1, 3, 45, 77))
        assert odd.shape == (1, 3, 45, 77)  # padded to /32 and cropped back
        ref = model(x)
    save_pretrained(model, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "manifest.json",
        "README.md",
    }
    loaded = load_model(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.equal(loaded(x), ref)


def test_binary_model_has_one_output():
    m = create_model("unet-effb0", classes=["tool"]).eval()
    assert m(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_unknown_model_and_bad_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'unet-efb0'.*unet-effb0"):
        create_model("unet-efb0")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"name": "unet-effb0"}')
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_model(tmp_path / "bad")


def test_from_pretrained_refuses_another_class(tmp_path):
    create_model("unet-effb0", pretrained=False).save_pretrained(tmp_path / "unet")
    with pytest.raises(ModelError, match="holds a SegmentationUNet, not a PromptableSAM"):
        PromptableSAM.from_pretrained(tmp_path / "unet")


def test_model_names_are_unique_per_family_and_registered_once():
    from scopeseg.models.registry import register_model

    with pytest.raises(ModelError, match="'unet-effb0' is registered twice"):
        register_model("unet-effb0", family="semantic")(lambda: None)
    assert model_entry("unet-effb0").factory.__module__ == "scopeseg.models.unet"


def test_load_predictor_follows_the_checkpoint_family(tmp_path):
    from scopeseg.inference.predictors import PREDICTORS, load_predictor
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.inference.semantic import Predictor

    assert PREDICTORS.names() == sorted({model_entry(n).family for n in ALL})  # one predictor per family
    for name, cls in (("unet-effb0", Predictor), ("litemedsam", PromptPredictor)):
        create_model(name, **model_entry(name).tiny).save_pretrained(tmp_path / name)
        assert type(load_predictor(tmp_path / name)) is cls
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"name": "unet-effb0"}')
    with pytest.raises(ModelError, match="names no model 'family'"):
        load_predictor(tmp_path / "odd")
