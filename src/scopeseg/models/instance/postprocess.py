"""Outputs of an instance model -> instances at the image's own size (mask, class, score, score_dist, box).

Mask2Former's instance inference: per-query class probabilities (no-object dropped); the top-k (query, class)
pairs by score; score = class probability x mean mask probability inside the mask. With a matching-quality
head the ranking uses the predicted quality instead of the class confidence (SiMaskFormer). ``score_dist`` is
each kept query's probability over the classes (TAPIS/LEMIS per-frame format).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Instance:
    mask: np.ndarray  # bool (H, W)
    label: int  # 0-based class index
    score: float
    score_dist: list[float]
    box: list[float]  # COCO [x, y, w, h] in pixels
    query: int = -1  # the decoder query it came from (one query may give instances of several classes)


def mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def instances_from_outputs(
    logits: torch.Tensor,
    masks: torch.Tensor,
    quality: torch.Tensor | None,
    boxes: torch.Tensor | None,
    input_size: tuple[int, int],
    image_size: tuple[int, int],
    topk: int = 20,
    min_score: float = 0.0,
) -> list[Instance]:
    """One image's instances: ``logits`` (Q, K+1), ``masks`` (Q, h, w) on the input's stride-4 grid.

    ``input_size``: the model input (H, W) the masks cover (cropped to ``ceil(H/4) x ceil(W/4)``);
    ``image_size``: the original image (H, W) masks and boxes are returned at.
    """
    prob = logits.float().softmax(-1)[:, :-1]  # (Q, K)
    q, k = prob.shape
    if quality is not None:
        rank = torch.sigmoid(quality.float())[:, None] * (
            prob / prob.max(-1, keepdim=True).values.clamp(min=1e-9)
        )
    else:
        rank = prob
    n = min(topk, q * k)
    top, flat = rank.flatten().topk(n)
    qi, ci = flat // k, flat % k
    h, w = input_size
    up = F.interpolate(
        masks[qi].float()[None],
        size=(4 * masks.shape[-2], 4 * masks.shape[-1]),
        mode="bilinear",
        align_corners=False,
    )
    up = up[..., :h, :w]
    up = F.interpolate(up, size=image_size, mode="bilinear", align_corners=False)[0].sigmoid()
    out = []
    for j in range(n):
        m = up[j] > 0.5
        area = int(m.sum())
        if area == 0:
            continue
        mask_score = float((up[j] * m).sum() / area)
        score = float(top[j]) * mask_score
        if score < min_score:
            continue
        dist = prob[qi[j]] if quality is None else rank[qi[j]]
        dist = (dist * mask_score).tolist()
        mnp = m.cpu().numpy()
        if boxes is not None:
            cx, cy, bw, bh = boxes[qi[j]].float().tolist()
            ih, iw = image_size
            box = [(cx - bw / 2) * iw, (cy - bh / 2) * ih, bw * iw, bh * ih]
        else:
            box = mask_box(mnp)
        out.append(Instance(mnp, int(ci[j]), score, dist, box, int(qi[j])))
    out.sort(key=lambda x: -x.score)  # best first
    return out
