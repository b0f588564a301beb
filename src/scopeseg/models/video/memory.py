"""SAM2-style memory on a pretrained SAM image model: memory encoder + memory attention over LiteMedSAM / MobileSAM.

Why: no SAM2 weights exist here, but LiteMedSAM and MobileSAM do; conditioning their (frozen) image embedding
on a memory of earlier frames, as SAM2 does (Ravi et al. 2024, ``sam2/modeling/memory_attention.py`` and
``memory_encoder.py``), gives a video model that starts from pretrained image features. Each object keeps its
own memory bank: the prompted frames' memories plus the most recent ``memory`` frames' (bounded). The
memory attention's output projection starts at zero, so before training the model is exactly its base
image model (prompted with the previous mask's box, ``prompt_mode="box"``), i.e. the box tracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ..base import ScopesegModel
from ..registry import create_model, register_model


class MemoryEncoder(nn.Module):
    """Mask logits + image embedding -> pooled memory tokens ``(N, (G/p)^2, D)`` (SAM2 MemoryEncoder, small)."""

    def __init__(self, embed_dim: int, mem_dim: int, low_res: int, grid: int, pool: int):
        super().__init__()
        stride = low_res // grid
        self.mask_down = nn.Sequential(
            nn.Conv2d(1, 16, stride, stride=stride), nn.GELU(), nn.Conv2d(16, embed_dim // 4, 1)
        )
        self.pix_proj = nn.Conv2d(embed_dim, embed_dim // 4, 1)
        self.fuser = nn.Sequential(
            nn.Conv2d(embed_dim // 4, embed_dim // 4, 7, padding=3, groups=embed_dim // 4),
            nn.GroupNorm(1, embed_dim // 4),
            nn.Conv2d(embed_dim // 4, embed_dim // 4, 1),
            nn.GELU(),
        )
        self.pool = pool
        self.out = nn.Linear(embed_dim // 4, mem_dim)

    def forward(self, embedding: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        m = self.mask_down(torch.sigmoid(mask_logits))
        x = self.pix_proj(embedding) + m
        x = x + self.fuser(x)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return self.out(x.flatten(2).transpose(1, 2))


class MemoryAttentionLayer(nn.Module):
    """Cross-attention of image tokens to memory tokens (+ an MLP), residual into the image embedding."""

    def __init__(self, embed_dim: int, dim: int, mem_dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.q = nn.Linear(embed_dim, dim)
        self.attn = nn.MultiheadAttention(dim, heads, kdim=mem_dim, vdim=mem_dim, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.out = nn.Linear(dim, embed_dim)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the base image model unchanged
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, mem: torch.Tensor, pad: torch.Tensor
    ) -> torch.Tensor:
        q = self.q(self.norm(x) + pos)
        a, _ = self.attn(q, mem, mem, key_padding_mask=pad, need_weights=False)
        a = a + self.mlp(self.norm2(a))
        return x + self.out(a)


@dataclass
class ObjectMemory:
    """One object's memory bank: prompted frames' tokens (kept, at most ``keep_prompted``) and recent ones."""

    prompted: list[torch.Tensor] = field(default_factory=list)
    recent: list[torch.Tensor] = field(default_factory=list)

    def add(self, tokens: torch.Tensor, prompted: bool, size: int, keep_prompted: int = 2) -> None:
        if prompted:
            self.prompted = (self.prompted + [tokens])[-keep_prompted:]
        else:
            self.recent = (self.recent + [tokens])[-size:]

    def __len__(self) -> int:
        return len(self.prompted) + len(self.recent)


class MemorySAM(ScopesegModel):
    """A promptable SAM image model (frozen encoder) + memory encoder + memory attention (video family).

    Per frame: ``encode`` (the base encoder; run through an engine at inference) -> ``condition`` the embedding
    on each object's memory -> ``decode`` with a prompt (the user's, or the box of the previous mask when
    ``prompt_mode="box"``; none when ``"none"``) -> ``memorize`` the mask into the object's bank.
    """

    family = "video"
    video = True

    def __init__(
        self,
        sam: nn.Module,
        mem_dim: int = 64,
        attn_dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        pool: int = 4,
        memory: int = 6,
        prompt_mode: str = "box",
        threshold: float = 0.5,
    ):
        super().__init__()
        if prompt_mode not in ("box", "none"):
            raise ModelError(f"prompt_mode must be box or none, got {prompt_mode!r}")
        self.sam = sam
        c = int(sam.prompt_encoder.embed_dim)
        grid = int(sam.image_encoder.out_size)
        if grid % pool:
            raise ModelError(f"memory pool {pool} must divide the embedding grid {grid}")
        self.img_size, self.low_res_size, self.preprocess = (
            int(sam.img_size),
            int(sam.low_res_size),
            sam.preprocess,
        )
        self.grid, self.pool = grid, pool
        self.memory_size, self.prompt_mode, self.threshold = memory, prompt_mode, threshold
        self.memory_encoder = MemoryEncoder(c, mem_dim, self.low_res_size, grid, pool)
        self.layers = nn.ModuleList(MemoryAttentionLayer(c, attn_dim, mem_dim, heads) for _ in range(layers))
        self.q_pos = nn.Linear(c, c, bias=False)
        n_tok = (grid // pool) ** 2
        self.mem_pos = nn.Parameter(torch.zeros(1, n_tok, mem_dim))
        # temporal slots: 0 = a prompted frame, 1..memory = recent frames by age (SAM2's maskmem_tpos_enc)
        self.tpos = nn.Parameter(torch.zeros(memory + 1, 1, mem_dim))
        self.no_memory = nn.Parameter(torch.zeros(1, 1, mem_dim))
        nn.init.trunc_normal_(self.mem_pos, std=0.02)
        nn.init.trunc_normal_(self.tpos, std=0.02)
        self.sam.image_encoder.requires_grad_(False)

    # --- the steps -------------------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised, padded ``(B, 3, S, S)`` -> image embedding (the base model's frozen encoder)."""
        return self.sam.encode(pixels)

    def condition(self, embedding: torch.Tensor, banks: list[ObjectMemory]) -> torch.Tensor:
        """``(1 or N, C, G, G)`` embedding -> ``(N, C, G, G)``, each object's copy attending to its memory."""
        n = len(banks)
        if embedding.shape[0] == 1 and n > 1:
            embedding = embedding.expand(n, -1, -1, -1)
        if not any(len(b) for b in banks):
            return embedding
        mems = []
        for b in banks:
            parts = [t + self.mem_pos + self.tpos[0] for t in b.prompted]
            k = len(b.recent)
            parts += [
                t + self.mem_pos + self.tpos[min(k - i, self.memory_size)] for i, t in enumerate(b.recent)
            ]
            parts.append(self.no_memory)  # always one token: attention may look away from the memory
            mems.append(torch.cat(parts, dim=1)[0])
        length = max(m.shape[0] for m in mems)
        mem = embedding.new_zeros(n, length, mems[0].shape[-1])
        pad = torch.ones(n, length, dtype=torch.bool, device=embedding.device)
        for i, m in enumerate(mems):
            mem[i, : m.shape[0]] = m
            pad[i, : m.shape[0]] = False
        c, g = embedding.shape[1], embedding.shape[-1]
        x = embedding.flatten(2).transpose(1, 2)
        pos = self.q_pos(self.sam.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2))
        for layer in self.layers:
            x = layer(x, pos, mem, pad)
        return x.transpose(1, 2).reshape(n, c, g, g)

    def decode(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The base model's prompt encoder + mask decoder: ``(N, 4, L, L)`` logits and ``(N, 4)`` IoU."""
        return self.sam.decode(embedding, coords, labels, mask_input)

    def memorize(self, embedding: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """``(N, C, G, G)`` (conditioned or raw) embedding + ``(N, 1, L, L)`` logits -> memory tokens per object."""
        if embedding.shape[0] == 1 and mask_logits.shape[0] > 1:
            embedding = embedding.expand(mask_logits.shape[0], -1, -1, -1)
        return self.memory_encoder(embedding, mask_logits)

    def step(
        self,
        embedding: torch.Tensor,
        banks: list[ObjectMemory],
        coords: torch.Tensor,
        labels: torch.Tensor,
        prompted: list[bool],
        mask_logits: list[torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame for N objects (training and inference share it): condition on each bank, decode, memorize.

        ``embedding (1, C, G, G)`` raw image embedding; ``coords (N, P, 2)`` / ``labels (N, P)`` SAM prompts in
        input pixels (padding label -1); ``prompted[i]``: a user/GT prompt (its memory is kept as a prompted
        frame); ``mask_logits[i]``: a given mask (``(1, L, L)`` logits) replacing the decode for that object.
        Returns the single-mask logits ``(N, 1, L, L)`` and predicted IoU ``(N,)``.
        """
        cond = self.condition(embedding, banks)
        low, iou = self.decode(cond, coords, labels)
        low, iou = low[:, :1], iou[:, 0]
        if mask_logits is not None and any(m is not None for m in mask_logits):
            low = torch.stack([m if m is not None else low[i] for i, m in enumerate(mask_logits)])
        tokens = self.memorize(embedding, low)
        for i, b in enumerate(banks):
            b.add(tokens[i : i + 1], prompted[i], self.memory_size)
        return low, iou

    def forward(self, pixels: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor):
        """One prompted frame with an empty memory, then a second decode conditioned on that frame's memory.

        ``(B, 3, S, S)`` pixels, box corners ``(B, 2, 2)`` labelled 2/3 -> ``(B, 4, L, L)`` logits and ``(B, 4)``
        IoU of the conditioned decode (the path training and inference take on every later frame).
        """
        emb = self.encode(pixels)
        low, _ = self.decode(emb, coords, labels)
        banks = [ObjectMemory() for _ in range(pixels.shape[0])]
        tokens = self.memorize(emb, low[:, :1])
        for i, b in enumerate(banks):
            b.add(tokens[i : i + 1], True, self.memory_size)
        out = []
        for i in range(pixels.shape[0]):
            cond = self.condition(emb[i : i + 1], [banks[i]])
            out.append(self.decode(cond, coords[i : i + 1], labels[i : i + 1]))
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        s = self.img_size
        corners = torch.tensor([[s * 0.2, s * 0.25], [s * 0.7, s * 0.8]]).expand(batch, 2, 2).clone()
        return torch.randn(batch, 3, s, s), corners, torch.tensor([2.0, 3.0]).expand(batch, 2).clone()


def _memory_sam(base: str, pretrained: bool, base_args: dict[str, Any] | None, **head: Any) -> MemorySAM:
    sam = create_model(base, pretrained=pretrained, **(base_args or {}))
    if getattr(sam, "family", None) != "promptable":
        raise ModelError(f"memory head base {base!r} is no promptable SAM model (litemedsam, mobilesam)")
    return MemorySAM(sam, **head)


#: a tiny random instance (tests): the tiny LiteMedSAM architecture under a small head
TINY_BASE = {
    "img_size": 64,
    "embed_dims": [8, 16, 24, 32],
    "depths": [1, 1, 2, 1],
    "num_heads": [1, 2, 3, 4],
    "window_sizes": [7, 7, 14, 7],
    "prompt_dim": 32,
    "decoder_mlp_dim": 64,
    "decoder_heads": 2,
    "mask_in_chans": 8,
    "iou_head_hidden_dim": 32,
}
TINY_HEAD = {
    "pretrained": False,
    "base_args": TINY_BASE,
    "mem_dim": 16,
    "attn_dim": 16,
    "heads": 2,
    "pool": 2,
}


@register_model(
    "litemedsam-memory",
    family="video",
    tiny=TINY_HEAD,
    description="SAM2-style memory attention + memory encoder on LiteMedSAM (frozen encoder, Apache-2.0 base)",
)
def litemedsam_memory(
    pretrained: bool = True, base_args: dict[str, Any] | None = None, **head: Any
) -> MemorySAM:
    """LiteMedSAM (256^2) with a memory head; ``pretrained`` loads the released LiteMedSAM weights."""
    return _memory_sam("litemedsam", pretrained, base_args, **head)


@register_model(
    "mobilesam-memory",
    family="video",
    tiny=TINY_HEAD,
    description="SAM2-style memory attention + memory encoder on MobileSAM (frozen encoder, Apache-2.0 base)",
)
def mobilesam_memory(
    pretrained: bool = True, base_args: dict[str, Any] | None = None, **head: Any
) -> MemorySAM:
    """MobileSAM (1024^2) with a memory head; ``pretrained`` loads the released MobileSAM weights."""
    return _memory_sam("mobilesam", pretrained, base_args, **head)


def box_from_logits(low: torch.Tensor, valid: tuple[int, int], margin: float = 0.1) -> torch.Tensor | None:
    """Corners ``(2, 2)`` in input pixels of the box around ``low > 0`` (``(L, L)`` logits; ``valid`` = the
    unpadded (h, w) in input pixels), grown by ``margin`` of its side; None when the mask is empty."""
    mask = low > 0
    ys = torch.nonzero(mask.any(dim=1)).flatten()
    if ys.numel() == 0:
        return None
    xs = torch.nonzero(mask.any(dim=0)).flatten()
    f = max(valid) / low.shape[0]  # low-res logits cover the padded S x S input
    x0, x1 = float(xs[0]) * f, float(xs[-1] + 1) * f
    y0, y1 = float(ys[0]) * f, float(ys[-1] + 1) * f
    mx, my = (x1 - x0) * margin + 1, (y1 - y0) * margin + 1
    x0, y0 = max(0.0, x0 - mx), max(0.0, y0 - my)
    x1, y1 = min(float(valid[1]), x1 + mx), min(float(valid[0]), y1 + my)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return torch.tensor([[x0, y0], [x1, y1]], dtype=torch.float32)


def grow_corners(corners: torch.Tensor, factor: float, valid: tuple[int, int]) -> torch.Tensor:
    """Box corners scaled about their centre by ``factor``, clipped to the valid input area."""
    c = corners.mean(0)
    half = (corners[1] - corners[0]) * factor / 2
    lo = torch.clamp(c - half, min=0)
    hi = torch.minimum(c + half, torch.tensor([float(valid[1]), float(valid[0])]))
    return torch.stack([lo, hi])


__all__ = ["MemorySAM", "ObjectMemory", "box_from_logits", "grow_corners"]
