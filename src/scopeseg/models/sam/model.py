"""Promptable (box / point / mask) SAM-family segmenters: TinyViT encoder + SAM prompt encoder + mask decoder.

Registered as ``litemedsam`` (256^2 input, 1x1 patch embed, medical fine-tune) and ``mobilesam`` (1024^2,
3x3 stride-2 patch embed); both load the real checkpoints strictly (key names of the original code).
"""

from __future__ import annotations

import abc
import logging
from typing import Any

import torch
from torch import nn

from ...errors import ModelError
from ..base import ScopesegModel
from ..registry import register_model
from .heads import MaskDecoder, PromptEncoder, TwoWayTransformer
from .tiny_vit import TinyViT

log = logging.getLogger(__name__)

#: architecture of both released checkpoints (TinyViT-5M + SAM heads); ``patch_kernel``/``img_size`` differ
TINYVIT_5M: dict[str, Any] = {
    "embed_dims": (64, 128, 160, 320),
    "depths": (2, 2, 6, 2),
    "num_heads": (2, 4, 5, 10),
    "window_sizes": (7, 7, 14, 7),
    "prompt_dim": 256,
    "decoder_mlp_dim": 2048,
    "decoder_heads": 8,
    "mask_in_chans": 16,
    "iou_head_hidden_dim": 256,
}
#: a tiny random architecture for tests and smoke runs (same code path, ~0.1 M parameters)
TINY_ARCH: dict[str, Any] = {
    "img_size": 64,
    "embed_dims": (8, 16, 24, 32),
    "depths": (1, 1, 2, 1),
    "num_heads": (1, 2, 3, 4),
    "window_sizes": (7, 7, 14, 7),
    "prompt_dim": 32,
    "decoder_mlp_dim": 64,
    "decoder_heads": 2,
    "mask_in_chans": 8,
    "iou_head_hidden_dim": 32,
}
#: keys in a checkpoint that the SAM model never uses (MobileSAM's classification head)
UNUSED_KEYS = ("image_encoder.head.", "image_encoder.norm_head.")


class PromptableModel(ScopesegModel, metaclass=abc.ABCMeta):
    """The promptable family's contract: ``encode(pixels)``, ``decode(embedding, coords, labels, mask)``.

    Prompts follow SAM's ONNX convention (box = 2 corners labelled 2 and 3); ``img_size``, ``low_res_size``
    and ``preprocess`` (the image recipe name, ``scopeseg.models.sam.recipes``) describe the input and output.
    """

    family = "promptable"
    promptable = True
    img_size: int
    low_res_size: int
    preprocess: str

    @abc.abstractmethod
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised, padded ``(B, 3, S, S)`` image -> embedding."""

    @abc.abstractmethod
    def decode(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> all 4 low-res mask logits ``(N, 4, L, L)`` and IoU predictions ``(N, 4)``."""

    def forward(self, pixels, coords, labels, mask_input=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one image per prompt set and decode (training path; ``pixels`` batch = prompt batch)."""
        return self.decode(self.encode(pixels), coords, labels, mask_input)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Random normalised images at ``img_size`` and one box per image (corners labelled 2 and 3)."""
        s = self.img_size
        corners = torch.tensor([[s * 0.2, s * 0.25], [s * 0.7, s * 0.8]]).expand(batch, 2, 2).clone()
        return torch.randn(batch, 3, s, s), corners, torch.tensor([2.0, 3.0]).expand(batch, 2).clone()


class PromptableSAM(PromptableModel):
    """SAM-style model: ``encode(pixels) -> embedding``, ``decode(embedding, coords, labels, mask) -> logits, iou``.

    ``preprocess`` names the image recipe the weights were trained with (``medsam``: min-max, INTER_AREA;
    ``sam``: mean/std, PIL bilinear); see ``scopeseg.models.sam.recipes``.
    """

    exportable = True

    def __init__(
        self,
        img_size: int = 256,
        patch_kernel: int = 1,
        embed_dims=TINYVIT_5M["embed_dims"],
        depths=TINYVIT_5M["depths"],
        num_heads=TINYVIT_5M["num_heads"],
        window_sizes=TINYVIT_5M["window_sizes"],
        prompt_dim: int = 256,
        decoder_mlp_dim: int = 2048,
        decoder_heads: int = 8,
        mask_in_chans: int = 16,
        iou_head_hidden_dim: int = 256,
        preprocess: str = "medsam",
    ):
        super().__init__()
        self.image_encoder = TinyViT(
            img_size=img_size,
            embed_dims=tuple(embed_dims),
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_sizes=tuple(window_sizes),
            patch_kernel=patch_kernel,
            out_chans=prompt_dim,
        )
        grid = self.image_encoder.out_size
        self.prompt_encoder = PromptEncoder(prompt_dim, (grid, grid), (img_size, img_size), mask_in_chans)
        self.mask_decoder = MaskDecoder(
            prompt_dim,
            TwoWayTransformer(2, prompt_dim, decoder_heads, decoder_mlp_dim),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=iou_head_hidden_dim,
        )
        self.img_size = img_size
        self.preprocess = preprocess

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's mask logits (4x the embedding grid; 256 for both released models)."""
        return 4 * self.image_encoder.out_size

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised, padded ``(B, 3, S, S)`` image -> embedding ``(B, C, S/16, S/16)``."""
        return self.image_encoder(pixels)

    def decode(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in input pixels -> all 4 mask logits ``(N, 4, L, L)`` and IoU predictions ``(N, 4)``.

        ``coords (N, P, 2)``/``labels (N, P)`` follow SAM's ONNX convention (2/3 box corners, -1 padding);
        index 0 is the single-mask output, 1..3 the multimask outputs.
        """
        n = coords.shape[0]
        sparse = self.prompt_encoder.embed_sparse(coords, labels)
        dense = self.prompt_encoder.embed_dense(mask_input, n)
        return self.mask_decoder(embedding, self.prompt_encoder.get_dense_pe(), sparse, dense)


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the keys the SAM model never uses (MobileSAM's classifier head) and non-tensors."""
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_KEYS) and isinstance(v, torch.Tensor)}


def load_released_weights(model: nn.Module, weight_name: str) -> None:
    """Load a checkpoint installed by ``scopeseg weights install NAME`` with ``strict=True``."""
    try:
        from .. import weights
    except ImportError as e:  # pragma: no cover - the weights module ships with the package
        raise ModelError(
            f"cannot load pretrained {weight_name!r}: weights module unavailable ({e})"
        ) from None
    state = clean_state_dict(weights.load_state_dict(weight_name))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(
            f"weights {weight_name!r} do not match the model: {str(e).splitlines()[0]}"
        ) from None


def _build(
    defaults: dict[str, Any], weight_name: str, pretrained: bool, arch: dict[str, Any]
) -> PromptableSAM:
    cfg = {**TINYVIT_5M, **defaults, **arch}
    try:
        model = PromptableSAM(**cfg)
    except TypeError as e:
        raise ModelError(f"bad promptable model config: {e}") from None
    if pretrained:
        norm = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
        if any(norm.get(k, v) != v for k, v in {**TINYVIT_5M, **defaults}.items() if k != "preprocess"):
            raise ModelError(
                f"pretrained {weight_name!r} weights need the default architecture; pass pretrained=False"
            )
        load_released_weights(model, weight_name)
    return model.eval()


@register_model(
    "litemedsam",
    family="promptable",
    tiny={**TINY_ARCH, "pretrained": False},
    description="LiteMedSAM (TinyViT + SAM decoder, 256^2, medical box-prompted; Apache-2.0 weights)",
)
def litemedsam(pretrained: bool = True, **arch: Any) -> PromptableSAM:
    """LiteMedSAM: 1x1 stride-1 patch embed at 256^2, min-max image normalisation (MedSAM recipe)."""
    return _build(
        {"img_size": 256, "patch_kernel": 1, "preprocess": "medsam"}, "litemedsam", pretrained, arch
    )


@register_model(
    "mobilesam",
    family="promptable",
    tiny={**TINY_ARCH, "pretrained": False},
    description="MobileSAM (TinyViT-5M + SAM decoder, 1024^2, general images; Apache-2.0 weights)",
)
def mobilesam(pretrained: bool = True, **arch: Any) -> PromptableSAM:
    """MobileSAM: 3x3 stride-2 patch embed at 1024^2, ImageNet mean/std normalisation (SAM recipe)."""
    return _build({"img_size": 1024, "patch_kernel": 3, "preprocess": "sam"}, "mobilesam", pretrained, arch)


@register_model(
    "litemedsam-scope",
    family="promptable",
    tiny={**TINY_ARCH, "pretrained": False},
    description="LiteMedSAM with its decoder fine-tuned on real surgical + polyp frames (box prompts; "
    "weights: base Apache-2.0 + shipped delta, see `scopeseg weights` model card)",
)
def litemedsam_scope(pretrained: bool = True, **arch: Any) -> PromptableSAM:
    """LiteMedSAM's encoder and recipe; prompt encoder + mask decoder fine-tuned (``litemedsam-scope`` weights)."""
    return _build(
        {"img_size": 256, "patch_kernel": 1, "preprocess": "medsam"}, "litemedsam-scope", pretrained, arch
    )
