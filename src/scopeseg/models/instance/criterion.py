"""Mask2Former's set loss (Hungarian matching; class CE, mask BCE + Dice) with the SiMaskFormer terms.

``shared_matching``: one query-to-object assignment (from the last layer) for every decoder layer (simultaneous
mask linking) instead of matching each layer on its own; ``quality``: BCE of the matching-quality logit against
each matched query's measured quality (class probability x mask IoU x box IoU), 0 for the others; ``boxes``:
L1 + GIoU on matched boxes (cx, cy, w, h in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


@dataclass
class Target:
    """One image's objects: class indices (0-based) ``(G,)``, masks ``(G, H, W)`` float, boxes ``(G, 4)`` cxcywh."""

    labels: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and generalised IoU of xyxy boxes ``(N, 4)`` x ``(M, 4)``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    iou = inter / union.clamp(min=1e-7)
    lt2 = torch.min(a[:, None, :2], b[None, :, :2])
    rb2 = torch.max(a[:, None, 2:], b[None, :, 2:])
    hull = (rb2 - lt2).clamp(min=0).prod(-1)
    return iou, iou - (hull - union) / hull.clamp(min=1e-7)


def resize_targets(targets: list[Target], size: tuple[int, int]) -> list[torch.Tensor]:
    """GT masks at the mask-logit grid (area interpolation of the full-size masks)."""
    out = []
    for t in targets:
        if t.masks.shape[0] == 0:
            out.append(t.masks.new_zeros((0, *size)))
        else:
            out.append(
                F.adaptive_avg_pool2d(t.masks[None].float(), size)[0]
                if t.masks.shape[-2:] != size
                else t.masks.float()
            )
    return out


class SetCriterion(torch.nn.Module):
    def __init__(
        self,
        num_classes: int,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        box_weight: float = 5.0,
        giou_weight: float = 2.0,
        quality_weight: float = 2.0,
        no_object_weight: float = 0.1,
        shared_matching: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.w = {
            "class": class_weight,
            "mask": mask_weight,
            "dice": dice_weight,
            "box": box_weight,
            "giou": giou_weight,
            "quality": quality_weight,
        }
        self.shared_matching = shared_matching
        weight = torch.ones(num_classes + 1)
        weight[-1] = no_object_weight
        self.register_buffer("ce_weight", weight)
        self.last: dict[str, float] = {}

    @torch.no_grad()
    def match(self, pred: dict, gt_masks: list[torch.Tensor], targets: list[Target]) -> list[tuple]:
        """Hungarian assignment per image: cost = class + BCE + Dice (+ box L1 + GIoU when boxes are predicted)."""
        out = []
        prob = pred["logits"].softmax(-1)
        for b, (t, gm) in enumerate(zip(targets, gt_masks)):
            if t.labels.numel() == 0:
                out.append((np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
                continue
            pm = pred["masks"][b].flatten(1).float()
            g = gm.flatten(1)
            cost = -prob[b][:, t.labels] * self.w["class"]
            pos = F.binary_cross_entropy_with_logits(pm, torch.ones_like(pm), reduction="none")
            neg = F.binary_cross_entropy_with_logits(pm, torch.zeros_like(pm), reduction="none")
            bce = (pos @ g.T + neg @ (1 - g).T) / pm.shape[1]
            s = pm.sigmoid()
            dice = 1 - (2 * s @ g.T + 1) / (s.sum(-1)[:, None] + g.sum(-1)[None] + 1)
            cost = cost + self.w["mask"] * bce + self.w["dice"] * dice
            if "boxes" in pred:
                pb = pred["boxes"][b]
                cost = cost + self.w["box"] * torch.cdist(pb, t.boxes, p=1)
                _, giou = box_iou_giou(box_cxcywh_to_xyxy(pb), box_cxcywh_to_xyxy(t.boxes))
                cost = cost - self.w["giou"] * giou
            qi, gi = linear_sum_assignment(cost.cpu().numpy())
            out.append((qi.astype(np.int64), gi.astype(np.int64)))
        return out

    def layer_loss(
        self, pred: dict, gt_masks: list[torch.Tensor], targets: list[Target], idx: list[tuple]
    ) -> dict:
        b, q, _ = pred["logits"].shape
        labels = torch.full((b, q), self.num_classes, dtype=torch.long, device=pred["logits"].device)
        for i, (qi, gi) in enumerate(idx):
            labels[i, qi] = targets[i].labels[gi]
        losses = {"class": F.cross_entropy(pred["logits"].transpose(1, 2), labels, self.ce_weight)}
        pm = torch.cat([pred["masks"][i, qi] for i, (qi, _) in enumerate(idx)]).flatten(1)
        gm = torch.cat([gt_masks[i][gi] for i, (_, gi) in enumerate(idx)]).flatten(1)
        n = max(1, pm.shape[0])
        if pm.shape[0]:
            losses["mask"] = F.binary_cross_entropy_with_logits(pm, gm, reduction="none").mean(1).sum() / n
            s = pm.sigmoid()
            losses["dice"] = (1 - (2 * (s * gm).sum(1) + 1) / (s.sum(1) + gm.sum(1) + 1)).sum() / n
        else:
            zero = pred["masks"].sum() * 0
            losses["mask"] = losses["dice"] = zero
        if "boxes" in pred:
            pb = torch.cat([pred["boxes"][i, qi] for i, (qi, _) in enumerate(idx)])
            gb = torch.cat([targets[i].boxes[gi] for i, (_, gi) in enumerate(idx)])
            if pb.shape[0]:
                losses["box"] = F.l1_loss(pb, gb, reduction="sum") / n
                _, giou = box_iou_giou(box_cxcywh_to_xyxy(pb), box_cxcywh_to_xyxy(gb))
                losses["giou"] = (1 - giou.diagonal()).sum() / n
            else:
                losses["box"] = losses["giou"] = pred["boxes"].sum() * 0
        if "quality" in pred:
            with torch.no_grad():
                target = torch.zeros(b, q, device=pred["logits"].device)
                prob = pred["logits"].softmax(-1)
                for i, (qi, gi) in enumerate(idx):
                    if len(qi) == 0:
                        continue
                    pmi = (pred["masks"][i, qi].sigmoid() > 0.5).float().flatten(1)
                    gmi = (gt_masks[i][gi] > 0.5).float().flatten(1)
                    inter = (pmi * gmi).sum(1)
                    iou = inter / (pmi.sum(1) + gmi.sum(1) - inter).clamp(min=1)
                    quality = prob[i, qi, targets[i].labels[gi]] * iou
                    if "boxes" in pred:
                        bi, _ = box_iou_giou(
                            box_cxcywh_to_xyxy(pred["boxes"][i, qi]), box_cxcywh_to_xyxy(targets[i].boxes[gi])
                        )
                        quality = quality * bi.diagonal()
                    target[i, qi] = quality.clamp(0, 1) ** (1 / (3 if "boxes" in pred else 2))
            losses["quality"] = F.binary_cross_entropy_with_logits(pred["quality"], target)
        return losses

    def forward(self, result: dict, targets: list[Target]) -> torch.Tensor:
        out, aux = result["out"], result["aux"]
        size = tuple(out["masks"].shape[-2:])
        gt_masks = resize_targets(targets, size)
        idx_last = self.match(out, gt_masks, targets)
        total = out["logits"].new_zeros(())
        parts: dict[str, float] = {}
        layers = [*aux, out]
        if "coarse_masks" in out:
            layers.append({**out, "masks": out["coarse_masks"]})
        for k, pred in enumerate(layers):
            idx = (
                idx_last
                if (self.shared_matching or pred is out or k >= len(aux))
                else self.match(pred, gt_masks, targets)
            )
            for name, v in self.layer_loss(pred, gt_masks, targets, idx).items():
                total = total + self.w[name] * v
                parts[name] = parts.get(name, 0.0) + float(v.detach())
        self.last = {k: v / len(layers) for k, v in parts.items()}
        return total
