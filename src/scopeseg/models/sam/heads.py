"""SAM prompt encoder and two-way-transformer mask decoder (parameter names of segment-anything kept).

Prompts use one sparse representation that also exports to ONNX: points ``(N, P, 2)`` in input-image
pixels with labels ``(N, P)``: 1 positive, 0 negative, 2 / 3 box corners, -1 padding (SAM's ONNX convention).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tiny_vit import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates."""

    def __init__(self, num_pos_feats: int = 64) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * np.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        grid = torch.ones((h, w), device=self.positional_encoding_gaussian_matrix.device, dtype=torch.float32)
        y_embed = (grid.cumsum(dim=0) - 0.5) / h
        x_embed = (grid.cumsum(dim=1) - 0.5) / w
        return self._pe_encoding(torch.stack([x_embed, y_embed], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        size = torch.tensor([float(image_size[1]), float(image_size[0])], device=coords_input.device)
        return self._pe_encoding(coords_input.to(torch.float) / size)


class PromptEncoder(nn.Module):
    """Embeds points/box corners (sparse) and a low-resolution mask (dense)."""

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the embedding grid, ``(1, C, h, w)``."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def embed_sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N, P, 2)`` pixel coordinates + ``(N, P)`` labels -> ``(N, P, C)`` (label -1 = padding)."""
        pe = self.pe_layer.forward_with_coords(coords + 0.5, self.input_image_size)
        labels = labels.unsqueeze(-1)
        out = torch.where(labels == -1, torch.zeros_like(pe), pe)
        out = out + (labels == -1).to(pe.dtype) * self.not_a_point_embed.weight
        for i, emb in enumerate(self.point_embeddings):
            out = out + (labels == i).to(pe.dtype) * emb.weight
        return out

    def embed_dense(self, masks: torch.Tensor | None, n: int) -> torch.Tensor:
        """Mask logits ``(N, 1, 4h, 4w)`` -> ``(N, C, h, w)``; ``None`` gives the no-mask embedding ``(1, C, h, w)``."""
        if masks is None:  # batch 1: broadcast over the prompt sets by the decoder
            h, w = self.image_embedding_size
            return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)
        return self.mask_downscaling(masks)


class MLPBlock(nn.Module):
    def __init__(self, embedding_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over a short last axis: torch's CPU kernel is ~2.5x slower than exp / sum there (ONNX
    export keeps the Softmax op, which ONNX Runtime runs fast)."""
    if torch.onnx.is_in_onnx_export():
        return torch.softmax(x, dim=-1)
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


class Attention(nn.Module):
    """Multi-head attention with an optional down-projection of the internal dimension."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        attn = (q @ k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])
        out = torch.softmax(attn, dim=-1) @ v
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def tokens_to_image(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Tokens ``(N, T, D)`` attend to image keys/values ``(B, L, D)``, ``B`` 1 (shared) or N.

        A shared image is projected once. A per-prompt image (N x L x D) is never projected: the key
        projection moves to the query side (``q Wk`` then one product with the raw keys; ``q . bk`` is
        constant along the softmax axis and drops out) and the value projection follows the weighted sum
        (rows of the softmax sum to 1, so ``bv`` adds after). Same math, 2 x H x T instead of 2 x I
        multiply-adds per image position: 2.3x fewer for a box (T = 7) on SAM's decoder.
        """
        n, t, _ = q.shape
        h = self.num_heads
        d = self.internal_dim // h
        if k.shape[0] == 1 or h * t >= self.internal_dim:
            return self.forward(q, k, v)
        qh = self._heads(self.q_proj(q))  # (N, H, T, d)
        g = (qh @ self.k_proj.weight.view(h, d, -1)).reshape(n, h * t, -1)  # (N, H*T, D)
        attn = torch.softmax((g @ k.transpose(1, 2)) / math.sqrt(d), dim=-1)  # (N, H*T, L)
        av = (attn @ v).view(n, h, t, -1)  # (N, H, T, D)
        out = av @ self.v_proj.weight.view(h, d, -1).transpose(1, 2) + self.v_proj.bias.view(h, 1, d)
        return self.out_proj(out.transpose(1, 2).reshape(n, t, h * d))

    def image_to_tokens(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Image queries ``(B, L, D)`` (B 1 or N) attend to tokens ``(N, T, D)``; output ``(N, L, D)``.

        The output projection is applied per head to the few token values first (``V_h Wo_h``), so the
        image side only needs one ``(L, H*T) x (H*T, D)`` product; a per-prompt image also skips its query
        projection (``Wq_h K_h^T`` is folded into a ``(D, H*T)`` matrix). Same math as ``forward``.
        """
        n, t, dim = k.shape
        h = self.num_heads
        d = self.internal_dim // h
        if h * t >= self.internal_dim:
            return self.forward(q, k, v)
        kh, vh = self._heads(self.k_proj(k)), self._heads(self.v_proj(v))  # (N, H, T, d)
        p = (vh @ self.out_proj.weight.view(dim, h, d).permute(1, 2, 0)).reshape(n, h * t, dim)
        length = q.shape[1]
        if q.shape[0] == 1:
            # project the shared image once; a block-diagonal (I, H*T) key matrix per prompt then gives the
            # scores of every head in (N, L, H*T) order with no permute
            eye = torch.eye(h, dtype=kh.dtype, device=kh.device)
            blocks = kh.transpose(2, 3).unsqueeze(3) * eye.view(1, h, 1, h, 1)  # (N, H, d, H, T)
            scores = (self.q_proj(q) @ blocks.reshape(n, h * d, h * t)).view(n, length, h, t)
        else:
            g = (kh @ self.q_proj.weight.view(h, d, dim)).reshape(n, h * t, dim)
            c = (kh @ self.q_proj.bias.view(h, d, 1)).reshape(n, 1, h * t)
            scores = (q @ g.transpose(1, 2) + c).view(n, length, h, t)
        attn = _softmax_last(scores / math.sqrt(d)).reshape(n, length, h * t)
        return torch.baddbmm(self.out_proj.bias, attn, p)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, MLP, image->token cross-attention."""

    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool):
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(
            queries + self.cross_attn_token_to_image.tokens_to_image(queries + query_pe, k, keys)
        )
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(
            keys + self.cross_attn_image_to_token.image_to_tokens(k, queries + query_pe, queries)
        )
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's decoder transformer: tokens and image embedding attend to each other."""

    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0))
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding, image_pe, point_embedding):
        image_embedding = image_embedding.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries, keys = point_embedding, image_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, image_pe)
        attn_out = self.final_attn_token_to_image.tokens_to_image(
            queries + point_embedding, keys + image_pe, keys
        )
        return self.norm_final_attn(queries + attn_out), keys


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < last else layer(x)
        return x


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` low-resolution masks and their IoU scores per prompt set."""

    def __init__(
        self,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ):
        super().__init__()
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings):
        """All mask tokens: ``(N, 4, 4h, 4w)`` logits and ``(N, 4)`` IoU predictions (index 0 = single mask)."""
        n = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(n, -1, -1), sparse_prompt_embeddings), dim=1)
        # one image embedding and one dense prompt (no mask) stay batch 1: the first layer's image-side
        # projections are then computed once and broadcast over the N prompt sets (same math as repeating)
        src = image_embeddings + dense_prompt_embeddings
        h, w = src.shape[-2:]
        hs, src = self.transformer(src, image_pe, tokens)
        b = hs.shape[0]
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        if src.shape[0] != b:  # a transformer without layers leaves the shared image
            src = src.expand(b, -1, -1)
        masks = self.upscale_masks(src, hyper_in, h, w)
        return masks, self.iou_prediction_head(iou_token_out)

    def upscale_masks(self, keys: torch.Tensor, hyper_in: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Image tokens ``(N, h*w, C)`` -> mask logits ``(N, K, 4h, 4w)`` (``output_upscaling``, then the
        hypernetwork product), computed channels-last.

        Both 2x2 stride-2 transposed convolutions are per-position matrix products, LayerNorm2d is a layer
        norm over the last axis there, and the hypernetwork weights are applied before the pixels are put
        in image order, so only the K mask planes are ever permuted (NCHW copies were a third of the time).
        """
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        n, length, c = keys.shape
        c1, c2, k = conv1.out_channels, conv2.out_channels, hyper_in.shape[1]
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(c, 4 * c1)  # columns (dy, dx, out)
        y = torch.addmm(conv1.bias.repeat(4), keys.reshape(n * length, c), w1).view(n * length * 4, c1)
        y = act1(F.layer_norm(y, (c1,), norm.weight, norm.bias, norm.eps))
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        # rows (i, j, dy, dx, dy2, dx2): pixel (4i + 2dy + dy2, 4j + 2dx + dx2)
        z = act2(torch.addmm(conv2.bias.repeat(4), y, w2)).view(n, length * 16, c2)
        masks = (hyper_in @ z.transpose(1, 2)).view(n * k, h, w, 2, 2, 2, 2)
        return masks.permute(0, 1, 3, 5, 2, 4, 6).reshape(n, k, 4 * h, 4 * w)
