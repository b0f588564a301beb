"""Semantic UNets: MONAI FlexibleUNet (EfficientNet-B0/B2) and UNets on ImageNet-pretrained encoders.

All share one wrapper: input RGB in [0, 1], normalised inside (so exports need no preprocessing), padded
to a multiple of 32 and cropped back, output logits ``(B, C, H, W)`` with C = 1 (binary) or K + 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import ScopesegModel
from .registry import register_model

#: arguments of a small random instance for tests (every UNet is already fast at 64x64)
TINY = {"pretrained": False}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DECODER_CHANNELS = (256, 128, 64, 32, 16)


class SegmentationUNet(ScopesegModel):
    """Normalise -> pad to /32 -> encoder-decoder network -> crop back to the input size."""

    family = "semantic"
    exportable = True

    def __init__(
        self,
        net: nn.Module,
        num_outputs: int,
        classes: Sequence[str],
        multiple: int = 32,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        encoder_weights: str | None = None,
    ):
        super().__init__()
        self.net = net
        self.encoder_weights = encoder_weights  # name of the ImageNet weights the encoder started from
        self.num_outputs = num_outputs
        self.classes = list(classes)
        self.multiple = multiple
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        # channels-last: PyTorch's CPU backward of 5x5 depthwise convolutions (EfficientNet) is ~100x faster
        # in NHWC than in NCHW (7.8 s vs 0.08 s per layer measured here), and the forward is no slower
        self.to(memory_format=torch.channels_last)

    @property
    def encoder(self) -> nn.Module | None:
        """The network's pretrained encoder (``feature_prefix``), when it has one: what the training options
        ``freeze_encoder_at`` / ``encoder_lr_factor`` act on."""
        return getattr(self.net, "encoder", None)

    @property
    def binary(self) -> bool:
        return self.num_outputs == 1

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """An RGB batch in [0, 1] at 64x64 (any size works: padded to /32 and cropped back)."""
        return (torch.rand(batch, 3, 64, 64),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        x = (x - self.mean) / self.std
        ph = (self.multiple - h % self.multiple) % self.multiple
        pw = (self.multiple - w % self.multiple) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0)
        y = self.net(x.contiguous(memory_format=torch.channels_last))
        return y[..., :h, :w].contiguous()


class EncoderUNet(nn.Module):
    """Our encoder (5 feature maps, strides 2..32) + MONAI's FlexibleUNet decoder and head."""

    def __init__(
        self,
        encoder: nn.Module,
        encoder_channels: Sequence[int],
        out_channels: int,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
    ):
        super().__init__()
        from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder

        self.encoder = encoder
        self.decoder = UNetDecoder(
            spatial_dims=2,
            encoder_channels=tuple(encoder_channels),
            decoder_channels=tuple(decoder_channels),
            act=("relu", {"inplace": True}),
            norm=("batch", {"eps": 1e-3, "momentum": 0.1}),
            dropout=0.0,
            bias=False,
            upsample="nontrainable",
            pre_conv="default",
            interp_mode="nearest",
            align_corners=None,
            is_pad=True,
        )
        self.segmentation_head = SegmentationHead(
            spatial_dims=2,
            in_channels=decoder_channels[-1],
            out_channels=out_channels,
            kernel_size=3,
            act=None,
        )
        self.skip_connect = len(encoder_channels) - 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        return self.segmentation_head(self.decoder(list(feats), self.skip_connect))


def _num_outputs(classes: Sequence[str] | None, num_classes: int | None) -> tuple[int, list[str]]:
    classes = list(classes) if classes else ["instrument"]
    if num_classes is not None and num_classes != len(classes):
        classes = [f"class{i + 1}" for i in range(num_classes)]
    return (1 if len(classes) == 1 else len(classes) + 1), classes


def _monai_unet(backbone: str, classes, num_classes, pretrained: bool) -> SegmentationUNet:
    from monai.networks.nets import FlexibleUNet

    if pretrained:
        from ..errors import ModelError

        raise ModelError(
            f"no ImageNet weights for {backbone} exist here; use pretrained=false or a unet-lite*/unet-mbv2 model"
        )
    out, classes = _num_outputs(classes, num_classes)
    net = FlexibleUNet(in_channels=3, out_channels=out, backbone=backbone, pretrained=False)
    # MONAI's encoder keeps the classifier-side layers it never runs; drop them (no dead weights in
    # checkpoints, and DDP needs every parameter to receive a gradient)
    for attr in ("_conv_head", "_bn1", "_fc"):
        if hasattr(net.encoder, attr):
            setattr(net.encoder, attr, nn.Identity())
    return SegmentationUNet(net, out, classes)


@register_model(
    "unet-effb0",
    family="semantic",
    tiny=TINY,
    description="UNet, EfficientNet-B0 encoder (MONAI FlexibleUNet), random init",
)
def unet_effb0(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = False
) -> nn.Module:
    return _monai_unet("efficientnet-b0", classes, num_classes, pretrained)


@register_model(
    "unet-effb2",
    family="semantic",
    tiny=TINY,
    description="UNet, EfficientNet-B2 encoder (the MONAI endoscopic tool bundle's model), random init",
)
def unet_effb2(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = False
) -> nn.Module:
    return _monai_unet("efficientnet-b2", classes, num_classes, pretrained)


def _encoder_unet(
    kind: str, variant: str | None, weight_name: str, classes, num_classes, pretrained: bool
) -> SegmentationUNet:
    from . import encoders

    out, classes = _num_outputs(classes, num_classes)
    enc = encoders.EfficientNetLiteEncoder(variant) if kind == "lite" else encoders.MobileNetV2Encoder()
    if pretrained:
        encoders.load_pretrained_encoder(enc, weight_name)
    net = EncoderUNet(enc, enc.out_channels, out)
    return SegmentationUNet(
        net,
        out,
        classes,
        mean=enc.input_mean,
        std=enc.input_std,
        encoder_weights=weight_name if pretrained else None,
    )


@register_model(
    "unet-lite0",
    family="semantic",
    tiny=TINY,
    description="UNet, EfficientNet-Lite0 encoder (ImageNet), the light real-time CPU model",
)
def unet_lite0(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = True
) -> nn.Module:
    return _encoder_unet("lite", "lite0", "efficientnet-lite0", classes, num_classes, pretrained)


@register_model(
    "unet-lite1", family="semantic", tiny=TINY, description="UNet, EfficientNet-Lite1 encoder (ImageNet)"
)
def unet_lite1(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = True
) -> nn.Module:
    return _encoder_unet("lite", "lite1", "efficientnet-lite1", classes, num_classes, pretrained)


@register_model(
    "unet-lite2", family="semantic", tiny=TINY, description="UNet, EfficientNet-Lite2 encoder (ImageNet)"
)
def unet_lite2(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = True
) -> nn.Module:
    return _encoder_unet("lite", "lite2", "efficientnet-lite2", classes, num_classes, pretrained)


@register_model("unet-mbv2", family="semantic", tiny=TINY, description="UNet, MobileNetV2 encoder (ImageNet)")
def unet_mbv2(
    classes: Sequence[str] | None = None, num_classes: int | None = None, pretrained: bool = True
) -> nn.Module:
    return _encoder_unet("mbv2", None, "mobilenetv2", classes, num_classes, pretrained)
