"""Mask2Former instance segmentation on our ImageNet encoders, with LEMIS text and SiMaskFormer switches.

Pixel decoder (multi-scale deformable attention) and masked-attention decoder layers are transformers'
pure-PyTorch Mask2Former modules (no compiled ops); the decoder loop is ours so that text fusion, the
matching-quality head, the box head and mask refinement fit in. Input RGB in [0, 1] (normalised inside, padded
to /32); outputs of the last layer: class logits ``(B, Q, K+1)`` (last = no object), mask logits
``(B, Q, H/4, W/4)`` of the padded input, matching quality logits ``(B, Q)``, boxes ``(B, Q, 4)`` (cx, cy, w, h
in [0, 1] of the unpadded input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ..base import ScopesegModel
from ..registry import register_model
from .text import TEXT_DIM, text_encoder

TextMode = Literal["none", "additive", "cross_attention"]
#: names of the four outputs of ``forward`` (the export signature; ONNX output names)
OUTPUT_NAMES = ("logits", "masks", "quality", "boxes")


def _hf_config(hidden: int, heads: int, enc_layers: int, ffn: int, mask_dim: int):
    from transformers import Mask2FormerConfig

    return Mask2FormerConfig(
        feature_size=hidden,
        mask_feature_size=mask_dim,
        hidden_dim=hidden,
        encoder_feedforward_dim=ffn,
        dim_feedforward=ffn,
        encoder_layers=enc_layers,
        decoder_layers=1,
        num_attention_heads=heads,
        dropout=0.0,
        pre_norm=False,
        feature_strides=[4, 8, 16, 32],
        common_stride=4,
        use_timm_backbone=False,
        backbone_config=None,
    )


class MLP(nn.Module):
    """Linear-ReLU stack (Mask2Former's prediction heads)."""

    def __init__(self, cin: int, hidden: int, cout: int, layers: int = 3):
        super().__init__()
        dims = [cin] + [hidden] * (layers - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class TextFusion(nn.Module):
    """Class-name embeddings into the object queries before the decoder: ``additive`` or ``cross_attention``."""

    def __init__(self, mode: str, dim: int, heads: int):
        super().__init__()
        self.mode = mode
        if mode == "additive":
            self.mix = MLP(dim, dim, dim, 2)
        else:
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``queries`` (B, Q, D), ``text`` (K, D) projected class embeddings -> (B, Q, D)."""
        if self.mode == "additive":
            return queries + self.mix(text.mean(0)).view(1, 1, -1)
        t = text.unsqueeze(0).expand(queries.shape[0], -1, -1)
        return self.norm(queries + self.attn(queries, t, t, need_weights=False)[0])


class MaskRefiner(nn.Module):
    """Adaptive mask refinement (SiMaskFormer): a residual on each query's logits near its own boundary.

    The boundary-aware positional encoding is the soft boundary band (morphological gradient of the mask
    probability) and its sines/cosines; the residual is gated by the band so the interior stays as predicted.
    """

    def __init__(self, mask_dim: int, width: int = 16, freqs: Sequence[float] = (1.0, 2.0, 4.0)):
        super().__init__()
        self.freqs = tuple(float(f) for f in freqs)
        self.context = nn.Conv2d(mask_dim, 8, 1)
        cin = 2 + 2 * len(self.freqs) + 8
        self.net = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, logits: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        b, q, h, w = logits.shape
        p = torch.sigmoid(logits).reshape(b * q, 1, h, w)
        band = F.max_pool2d(p, 3, 1, 1) + F.max_pool2d(-p, 3, 1, 1)  # dilate - erode: 1 on the boundary
        enc = [torch.sin(math.pi * f * band) for f in self.freqs] + [
            torch.cos(math.pi * f * band) for f in self.freqs
        ]
        ctx = self.context(mask_features)
        ctx = ctx.unsqueeze(1).expand(-1, q, -1, -1, -1).reshape(b * q, -1, h, w)
        x = torch.cat([logits.reshape(b * q, 1, h, w), band, *enc, ctx], 1)
        delta = self.net(x) * band
        return logits + delta.reshape(b, q, h, w)


class Mask2FormerInstance(ScopesegModel):
    """Encoder -> deformable pixel decoder -> masked-attention decoder -> class / mask / quality / box heads."""

    family = "instance"
    exportable = True

    def __init__(
        self,
        encoder: nn.Module,
        classes: Sequence[str],
        hidden_dim: int = 64,
        num_queries: int = 20,
        dec_layers: int = 6,
        enc_layers: int = 2,
        heads: int = 4,
        ffn_dim: int = 256,
        mask_dim: int | None = None,
        text: TextMode = "none",
        text_dim: int = TEXT_DIM,
        quality_head: bool = False,
        shared_matching: bool = False,
        refine: bool = False,
        box_head: bool = False,
        mask_pool: bool = False,
        pool_max: bool = False,
        encoder_weights: str | None = None,
    ):
        super().__init__()
        from transformers.models.mask2former.modeling_mask2former import (
            Mask2FormerMaskedAttentionDecoderLayer,
            Mask2FormerPixelDecoder,
            Mask2FormerSinePositionEmbedding,
        )

        if hidden_dim % 32:
            raise ModelError(
                f"hidden_dim {hidden_dim} must be a multiple of 32 (GroupNorm of the pixel decoder)"
            )
        if text not in ("none", "additive", "cross_attention"):
            raise ModelError(f"text={text!r}: expected none, additive or cross_attention")
        self.classes = list(classes)
        if not self.classes:
            raise ModelError("an instance model needs at least one class")
        mask_dim = mask_dim or hidden_dim
        self.encoder = encoder
        self.encoder_weights = encoder_weights
        self.num_queries, self.dec_layers, self.heads = num_queries, dec_layers, heads
        self.text_mode, self.quality_head, self.shared_matching = text, quality_head, shared_matching
        self.refine, self.box_head, self.mask_pool = refine, box_head, mask_pool
        if pool_max and not mask_pool:
            raise ModelError("pool_max needs mask_pool=true (it adds the max to the mask-pooled mean)")
        self.pool_max = pool_max
        cfg = _hf_config(hidden_dim, heads, enc_layers, ffn_dim, mask_dim)
        self.pixel_decoder = Mask2FormerPixelDecoder(cfg, feature_channels=list(encoder.out_channels[-4:]))
        nn.init.normal_(self.pixel_decoder.level_embed)
        self.position = Mask2FormerSinePositionEmbedding(
            num_position_features=hidden_dim // 2, normalize=True
        )
        self.level_embed = nn.Embedding(3, hidden_dim)
        self.layers = nn.ModuleList(Mask2FormerMaskedAttentionDecoderLayer(cfg) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_pos = nn.Embedding(num_queries, hidden_dim)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim)
        k = len(self.classes)
        if text == "none":
            self.class_head = nn.Linear(hidden_dim, k + 1)
        else:
            # LEMIS: classes are the text table; logits = scaled cosine(query, class text) + a no-object logit
            self.register_buffer("text_table", torch.zeros(k, text_dim))
            self.text_proj = MLP(text_dim, hidden_dim, hidden_dim, 2)
            self.query_proj = nn.Linear(hidden_dim, hidden_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            self.class_bias = nn.Parameter(torch.zeros(()))
            self.no_object = nn.Linear(hidden_dim, 1)
            self.fusion = TextFusion(text, hidden_dim, heads)
        self.text_noise = 0.0  # a training setting (InstanceTrainConfig.text_noise), not part of the model
        if mask_pool:
            # the stride-4 pixel features under each query's mask, added to the query before the class head:
            # the decoder attends at strides 32/16/8 only, where an instrument's jaws are a pixel or two
            # pool_max: the channel-wise max under the mask beside the mean, so a small distinctive part (a
            # coloured head on a long black shaft) is not averaged away
            self.pool_proj = MLP(mask_dim * (2 if pool_max else 1), hidden_dim, hidden_dim, 2)
            nn.init.zeros_(self.pool_proj.layers[-1].weight)  # starts as the plain class head
            nn.init.zeros_(self.pool_proj.layers[-1].bias)
        if quality_head:
            self.quality = MLP(hidden_dim + 2, hidden_dim, 1, 2)  # query + (max class prob, mask confidence)
        if box_head:
            self.box = MLP(hidden_dim, hidden_dim, 4)
        if refine:
            self.refiner = MaskRefiner(mask_dim)
        self.register_buffer("mean", torch.tensor(encoder.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(encoder.input_std).view(1, 3, 1, 1), persistent=False)
        # channels-last encoder: PyTorch's CPU backward of depthwise convolutions is far faster in NHWC (unet.py)
        self.encoder.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------ text
    def set_class_embeddings(self, names: Sequence[str], table: torch.Tensor) -> None:
        """Replace the class names and their text table (``classes=`` at inference); same number of classes."""
        if self.text_mode == "none":
            raise ModelError("this model has no text conditioning (text=none): class names cannot change")
        if table.shape != self.text_table.shape:
            raise ModelError(
                f"{len(names)} class names given, the model has {self.text_table.shape[0]} classes of "
                f"{self.text_table.shape[1]}-d text"
            )
        self.text_table.copy_(table.to(self.text_table))
        self.classes = list(names)

    def _text(self) -> torch.Tensor:
        t = self.text_table
        if self.training and self.text_noise > 0:
            # training only: each class embedding jittered by isotropic noise of text_noise x its norm, so the
            # learned projection cannot key on directions a synonym would not share (names change at inference)
            scale = self.text_noise * t.norm(dim=-1, keepdim=True) / math.sqrt(t.shape[-1])
            t = t + torch.randn_like(t) * scale
        return self.text_proj(t)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch, 3, 64, 96),)

    # ------------------------------------------------------------------------------------------ heads
    def _heads(self, q: torch.Tensor, mask_features: torch.Tensor, text: torch.Tensor | None) -> dict:
        h = self.decoder_norm(q)  # (B, Q, D)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(h), mask_features)
        c = h + self.pool_proj(_mask_pool(masks, mask_features, self.pool_max)) if self.mask_pool else h
        if text is None:
            logits = self.class_head(c)
        else:
            a = F.normalize(self.query_proj(c), dim=-1)
            t = F.normalize(text, dim=-1)
            sim = torch.einsum("bqd,kd->bqk", a, t) * self.logit_scale.exp() + self.class_bias
            logits = torch.cat([sim, self.no_object(c)], -1)
        out = {"logits": logits, "masks": masks}
        if self.quality_head:
            prob = logits.softmax(-1)[..., :-1].max(-1).values.detach()
            mp = torch.sigmoid(masks.detach())
            conf = (mp * (mp > 0.5)).flatten(2).sum(-1) / ((mp > 0.5).flatten(2).sum(-1) + 1e-6)
            out["quality"] = self.quality(torch.cat([c, prob.unsqueeze(-1), conf.unsqueeze(-1)], -1)).squeeze(
                -1
            )
        if self.box_head:
            out["boxes"] = torch.sigmoid(self.box(h))
        return out

    def _attn_mask(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        m = F.interpolate(masks.detach(), size=size, mode="bilinear", align_corners=False)
        m = m.sigmoid().flatten(2) < 0.5  # True = not attended
        m = m & ~m.all(-1, keepdim=True)  # a query with an empty mask attends everywhere
        return m.unsqueeze(1).expand(-1, self.heads, -1, -1).flatten(0, 1)

    def forward_all(self, x: torch.Tensor) -> dict[str, Any]:
        """Every decoder layer's predictions (``aux``: all but the last) and the last layer's (``out``)."""
        h, w = x.shape[-2:]
        x = (x - self.mean) / self.std
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        feats = self.encoder(x.contiguous(memory_format=torch.channels_last))
        feats = [f.contiguous() for f in feats[1:]]
        pd = self.pixel_decoder(feats, return_dict=True)
        mask_features = pd.mask_features
        levels = list(pd.multi_scale_features)  # strides 32, 16, 8
        sizes = [tuple(f.shape[-2:]) for f in levels]
        srcs, poss = [], []
        for i, f in enumerate(levels):
            pos = self.position(f.shape, f.device, f.dtype).flatten(2).permute(2, 0, 1)
            srcs.append(f.flatten(2).permute(2, 0, 1) + self.level_embed.weight[i].view(1, 1, -1))
            poss.append(pos)
        b = x.shape[0]
        q = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        qpos = self.query_pos.weight.unsqueeze(1).expand(-1, b, -1)
        text = None
        if self.text_mode != "none":
            text = self._text()
            q = self.fusion(q, text)
        preds = [self._heads(q, mask_features, text)]
        for i, layer in enumerate(self.layers):
            lvl = i % 3
            attn = self._attn_mask(preds[-1]["masks"], sizes[lvl])
            q = layer(
                q.transpose(0, 1),
                lvl,
                None,
                poss,
                qpos,
                srcs,
                encoder_attention_mask=attn,
            )[0].transpose(0, 1)
            preds.append(self._heads(q, mask_features, text))
        out = preds[-1]
        if self.refine:
            out = {**out, "coarse_masks": out["masks"], "masks": self.refiner(out["masks"], mask_features)}
        # boxes are predicted on the padded input; rescale to the input's own size
        if self.box_head and (ph or pw):
            sx, sy = (w + pw) / w, (h + ph) / h
            for p in preds[:-1] + [out]:
                p["boxes"] = p["boxes"] * torch.tensor([sx, sy, sx, sy], device=x.device)
        return {"out": out, "aux": preds[:-1], "input_size": (h, w), "padded_size": (h + ph, w + pw)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Export signature: (class logits, mask logits cropped to the input's stride-4 grid, quality, boxes)."""
        r = self.forward_all(x)
        o = r["out"]
        h, w = r["input_size"]
        masks = o["masks"][..., : (h + 3) // 4, : (w + 3) // 4]
        b, q = o["logits"].shape[:2]
        quality = o["quality"] if self.quality_head else torch.zeros(b, q, device=x.device)
        boxes = o["boxes"] if self.box_head else torch.zeros(b, q, 4, device=x.device)
        return o["logits"], masks, quality, boxes


def _mask_pool(masks: torch.Tensor, features: torch.Tensor, with_max: bool = False) -> torch.Tensor:
    """Mean of ``features (B, C, H, W)`` weighted by each query's mask probability ``(B, Q, H, W)`` -> (B, Q, C);
    ``with_max``: concatenated with the max of the features over each mask's pixels (p > 0.5; 0 for an empty
    mask) -> (B, Q, 2C).

    The weights are detached so the class loss shapes the features, not the masks (as masked attention does).
    """
    w = torch.sigmoid(masks.detach())
    mean = torch.einsum("bqhw,bchw->bqc", w, features) / (w.sum((-2, -1)).unsqueeze(-1) + 1.0)
    if not with_max:
        return mean
    inside = (w > 0.5).flatten(2).unsqueeze(2)  # (B, Q, 1, HW)
    f = features.flatten(2).unsqueeze(1)  # (B, 1, C, HW)
    low = torch.finfo(f.dtype).min
    peak = torch.where(inside, f, torch.full_like(f, low)).amax(-1)  # (B, Q, C)
    peak = torch.where(inside.any(-1), peak, torch.zeros_like(peak))
    return torch.cat([mean, peak], -1)


class TextMask2Former(Mask2FormerInstance):
    """LEMIS-style Mask2Former: classes are class-name embeddings (MiniLM), fused into the queries."""

    text_conditioned = True


# ---------------------------------------------------------------------------------------------- factories

#: a small random instance of every code path (tests)
TINY: dict[str, Any] = {
    "pretrained": False,
    "hidden_dim": 32,
    "num_queries": 6,
    "dec_layers": 3,
    "enc_layers": 1,
    "heads": 2,
    "ffn_dim": 64,
}


def build_instance_model(
    encoder: str,
    classes: Sequence[str] | None,
    pretrained: bool,
    text: TextMode = "none",
    text_encoder_name: str = "minilm",
    **kw: Any,
) -> Mask2FormerInstance:
    """Encoder by weights name + Mask2Former; with text, the class names are embedded (``pretrained``) or the
    table is left for the checkpoint to fill (loading a checkpoint needs no text weights)."""
    from ..encoders import create_encoder

    classes = list(classes) if classes else ["instrument"]
    enc = create_encoder(encoder, pretrained=pretrained)
    if text == "none":
        return Mask2FormerInstance(enc, classes, encoder_weights=encoder if pretrained else None, **kw)
    dim = TEXT_DIM if text_encoder_name == "minilm" else 32
    model = TextMask2Former(
        enc, classes, text=text, text_dim=dim, encoder_weights=encoder if pretrained else None, **kw
    )
    if pretrained or text_encoder_name != "minilm":
        model.set_class_embeddings(classes, text_encoder(text_encoder_name).embed(classes))
    return model


def _factory(encoder: str):
    def make(
        classes: Sequence[str] | None = None,
        pretrained: bool = True,
        hidden_dim: int = 64,
        num_queries: int = 20,
        dec_layers: int = 6,
        enc_layers: int = 2,
        heads: int = 4,
        ffn_dim: int = 256,
        text: TextMode = "none",
        text_encoder: str = "minilm",
        quality_head: bool = False,
        shared_matching: bool = False,
        refine: bool = False,
        box_head: bool = False,
        mask_pool: bool = False,
        pool_max: bool = False,
    ) -> nn.Module:
        return build_instance_model(
            encoder,
            classes,
            pretrained,
            text,
            text_encoder,
            hidden_dim=hidden_dim,
            num_queries=num_queries,
            dec_layers=dec_layers,
            enc_layers=enc_layers,
            heads=heads,
            ffn_dim=ffn_dim,
            quality_head=quality_head,
            shared_matching=shared_matching,
            refine=refine,
            box_head=box_head,
            mask_pool=mask_pool,
            pool_max=pool_max,
        )

    return make


for _name, _enc, _desc in (
    ("mask2former-lite0", "efficientnet-lite0", "EfficientNet-Lite0 (ImageNet)"),
    ("mask2former-lite1", "efficientnet-lite1", "EfficientNet-Lite1 (ImageNet)"),
    ("mask2former-lite2", "efficientnet-lite2", "EfficientNet-Lite2 (ImageNet)"),
    ("mask2former-mbv2", "mobilenetv2", "MobileNetV2 (ImageNet)"),
):
    register_model(
        _name, family="instance", tiny=TINY, description=f"Mask2Former instance segmentation, {_desc} encoder"
    )(_factory(_enc))
    register_model(
        f"lemis-{_name.split('-')[1]}",
        family="instance",
        tiny={**TINY, "text": "additive", "text_encoder": "random"},
        description=f"text-conditioned Mask2Former (LEMIS, MiniLM class names), {_desc} encoder",
        text="cross_attention",
    )(_factory(_enc))
