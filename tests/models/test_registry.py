"""Every registered semantic model: forward/backward at 64x64 and any size, save/load round trip (timm-style)."""

from __future__ import annotations

import pytest
import torch

from scopeseg.errors import ModelError
from scopeseg.models import create_model, list_models, load_model, save_pretrained

SEMANTIC = list_models(family="semantic")


def test_registry_lists_the_issue_models():
    for name in ("unet-effb0", "unet-effb2", "unet-lite0", "unet-lite1", "unet-lite2", "unet-mbv2"):
        assert name in SEMANTIC
    assert list_models("unet-lite*") == ["unet-lite0", "unet-lite1", "unet-lite2"]


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
