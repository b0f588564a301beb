"""Our EfficientNet-Lite / MobileNetV2 encoders: shapes, TF-SAME padding, strict loading, ImageNet goldens.

The goldens (``data/encoder_goldens.json``) are logits of the original implementations (torchvision
``mobilenet_v2``; the ``efficientnet-lite-pytorch`` package's code) made by ``make_encoder_goldens.py``
with torch 2.14.1 in a throw-away venv; here only our code and the installed weights run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scopeseg.errors import ModelError
from scopeseg.models import encoders as E
from scopeseg.models import weights as W

NAMES = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "mobilenetv2"]
CHANNELS = {
    "efficientnet-lite0": (3, 16, 24, 40, 112, 320),
    "efficientnet-lite1": (3, 16, 24, 40, 112, 320),
    "efficientnet-lite2": (3, 16, 24, 48, 120, 352),
    "mobilenetv2": (3, 16, 24, 32, 96, 1280),
}
HEAD_KEYS = {
    "efficientnet-lite0": [
        "_bn1.bias",
        "_bn1.num_batches_tracked",
        "_bn1.running_mean",
        "_bn1.running_var",
        "_bn1.weight",
        "_conv_head.weight",
        "_fc.bias",
        "_fc.weight",
    ],
    "mobilenetv2": ["classifier.1.bias", "classifier.1.weight"],
}
HEAD_KEYS["efficientnet-lite1"] = HEAD_KEYS["efficientnet-lite2"] = HEAD_KEYS["efficientnet-lite0"]
GOLDENS = Path(__file__).parent / "data" / "encoder_goldens.json"


@pytest.fixture(scope="module", params=NAMES)
def encoder(request):
    torch.manual_seed(0)
    return request.param, E.create_encoder(request.param).eval()


@pytest.mark.parametrize("hw", [(64, 64), (65, 67)])
def test_feature_shapes_and_strides(encoder, hw):
    name, enc = encoder
    assert enc.out_channels == CHANNELS[name] and enc.strides == (2, 4, 8, 16, 32)
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, *hw))
    assert len(feats) == 5
    for f, c, s in zip(feats, enc.out_channels[1:], enc.strides):
        # ceil(size / stride), as TF SAME (lite) and torch's symmetric padding (mbv2) give
        assert f.shape == (1, c, -(-hw[0] // s), -(-hw[1] // s))


def test_backward_reaches_the_stem():
    enc = E.EfficientNetLiteEncoder("lite0", drop_connect_rate=0.2).train()
    sum(f.mean() for f in enc(torch.randn(2, 3, 64, 64))).backward()
    assert enc._conv_stem.weight.grad is not None and enc._conv_stem.weight.grad.abs().sum() > 0


def test_same_padding_matches_tensorflow_convention():
    torch.manual_seed(0)
    for k, stride, size, pads in [(3, 2, 8, (0, 1)), (5, 2, 8, (1, 2)), (3, 2, 7, (1, 1)), (5, 1, 6, (2, 2))]:
        conv = E.SameConv2d(2, 3, k, stride)
        x = torch.randn(1, 2, size, size)
        ref = F.conv2d(F.pad(x, (*pads, *pads)), conv.weight, stride=stride)
        assert torch.allclose(conv(x), ref, atol=1e-6), (k, stride, size)
        assert conv(x).shape[-1] == -(-size // stride)


def test_param_counts_and_round_filters():
    assert (
        E._round_filters(320, 1.1) == 352
        and E._round_filters(16, 1.1) == 16
        and E._round_filters(40, 1.1) == 48
    )
    lite1 = E.EfficientNetLiteEncoder("lite1")
    assert len(lite1._blocks) == 1 + 3 + 3 + 4 + 4 + 5 + 1 and lite1.taps == (0, 3, 6, 14, 20)
    assert len(E.EfficientNetLiteEncoder("lite0")._blocks) == 16
    with pytest.raises(ModelError, match="unknown EfficientNet-Lite variant 'lite9'"):
        E.EfficientNetLiteEncoder("lite9")
    with pytest.raises(ModelError, match="unknown encoder"):
        E.create_encoder("resnet50")


@pytest.mark.parametrize("name", NAMES)
def test_load_strict_drops_only_the_head(name):
    enc = E.create_encoder(name)
    sd = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in E.create_encoder(name).state_dict().items()}
    head = {k: torch.zeros(1) for k in HEAD_KEYS[name]}
    dropped = E.load_pretrained_encoder(enc, state_dict={**sd, **head})
    assert dropped == HEAD_KEYS[name]
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in sd.items())
    sd.pop(next(iter(sd)))
    with pytest.raises(ModelError, match=r"do not fit .*1 missing") as e:
        E.load_pretrained_encoder(enc, state_dict=sd)
    assert "\n" not in str(e.value)


def test_wrong_variant_weights_are_refused():
    lite1 = E.create_encoder("efficientnet-lite1").state_dict()
    with pytest.raises(ModelError, match=r"do not fit EfficientNetLiteEncoder\(lite2\): .*other shapes"):
        E.load_pretrained_encoder(
            E.create_encoder("efficientnet-lite2"), "efficientnet-lite1", state_dict=lite1
        )


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="run: scopeseg weights install mobilenetv2"):
        E.create_encoder("mobilenetv2", pretrained=True)


# ------------------------------------------------------------------------------------ real weights (marked)


def _crop_input(img: np.ndarray, crop, mean, std) -> torch.Tensor:
    top, left, h, w = crop  # the same numpy code as make_encoder_goldens.py
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    x = (img[top : top + h, left : left + w].astype(np.float32) / np.float32(255.0) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


def _classify(name: str, enc: E.Encoder, head: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Our encoder + the checkpoint's own classifier head (the keys the encoder drops) = the ImageNet model."""
    f = enc(x)[-1]
    if name.startswith("efficientnet"):
        f = F.conv2d(f, head["_conv_head.weight"])
        f = F.batch_norm(
            f,
            head["_bn1.running_mean"],
            head["_bn1.running_var"],
            head["_bn1.weight"],
            head["_bn1.bias"],
            training=False,
            eps=1e-3,
        )
        f = F.relu6(f)
        return F.linear(f.mean((2, 3)), head["_fc.weight"], head["_fc.bias"])
    return F.linear(f.mean((2, 3)), head["classifier.1.weight"], head["classifier.1.bias"])


@pytest.mark.weights
@pytest.mark.parametrize("name", NAMES)
def test_real_weights_reproduce_imagenet_logits(name):
    if not W.is_installed(name):
        pytest.skip(f"{name} not installed (scopeseg weights install {name})")
    skdata = pytest.importorskip("skimage.data")
    gold = json.loads(GOLDENS.read_text())
    enc = E.create_encoder(name).eval()
    dropped = E.load_pretrained_encoder(enc, name)
    assert dropped == HEAD_KEYS[name]
    sd = W.load_state_dict(name)
    head = {k: sd[k] for k in dropped}
    g = gold["models"][name]
    assert g["norm"] == ("mbv2" if name == "mobilenetv2" else "lite")
    mean, std = gold["norm"][g["norm"]]
    assert tuple(mean) == pytest.approx(enc.input_mean) and tuple(std) == pytest.approx(enc.input_std)
    img = skdata.chelsea()
    for crop_name, crop in gold["crops"].items():
        with torch.no_grad():
            logits = _classify(name, enc, head, _crop_input(img, crop, mean, std))[0].double()
        ref = g[crop_name]
        assert logits.topk(5).indices.tolist() == ref["top5_index"], crop_name
        assert logits.topk(5).values.tolist() == pytest.approx(ref["top5_logit"], abs=2e-3)
        assert logits[::50].tolist() == pytest.approx(ref["logits_every_50"], abs=2e-3)
        # a cat photo: top-1 is a domestic cat (ImageNet 281-285), which take most of the probability
        assert 281 <= ref["top5_index"][0] <= 285 and logits.softmax(-1)[281:286].sum() > 0.75, crop_name
