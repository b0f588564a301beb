"""Named weighted losses against hand computations and MONAI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scopeseg.errors import ConfigError
from scopeseg.losses import build_loss, parse_loss_spec


def test_parse_spec():
    assert parse_loss_spec("dice:1,focal:20") == [("dice", 1.0), ("focal", 20.0)]
    assert parse_loss_spec("ce") == [("ce", 1.0)]
    with pytest.raises(ConfigError, match="unknown loss 'dise'.*dice"):
        parse_loss_spec("dise:1")
    with pytest.raises(ConfigError, match="not a number"):
        parse_loss_spec("dice:x")


def test_binary_dice_and_bce_values():
    logits = torch.tensor([[[[10.0, -10.0], [10.0, -10.0]]]])
    target = torch.tensor([[[1, 0], [0, 0]]])
    p = torch.sigmoid(logits)[:, 0]
    inter = (p * target).sum()
    expected_dice = 1 - (2 * inter + 1e-5) / (p.sum() + target.sum() + 1e-5)
    loss = build_loss("dice:2,bce:0.5", binary=True)
    v = loss(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    assert loss.last["dice"] == pytest.approx(float(expected_dice), rel=1e-5)
    assert loss.last["bce"] == pytest.approx(float(bce), rel=1e-6)
    assert float(v) == pytest.approx(2 * float(expected_dice) + 0.5 * float(bce), rel=1e-5)


def test_sample_dice_weighs_a_tiny_object_like_a_big_one():
    """Two prompted objects: a big one predicted exactly and a 2-pixel one missed. The pooled ``dice`` barely
    notices the miss; ``sample_dice`` is the mean of the items' Dice losses (0 and ~1)."""
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[0, 2:14, 2:14] = 1  # 144 px
    target[1, 5, 5:7] = 1  # 2 px
    logits = torch.full((2, 1, 16, 16), -20.0)
    logits[0, 0][target[0] > 0] = 20.0
    p = torch.sigmoid(logits)[:, 0]
    per_item = 1 - (2 * (p * target).sum((1, 2)) + 1e-5) / (p.sum((1, 2)) + target.sum((1, 2)) + 1e-5)
    pooled = 1 - (2 * (p * target).sum() + 1e-5) / (p.sum() + target.sum() + 1e-5)
    assert float(build_loss("sample_dice", binary=True)(logits, target)) == pytest.approx(
        float(per_item.mean()), rel=1e-5
    )
    assert float(build_loss("dice", binary=True)(logits, target)) == pytest.approx(float(pooled), rel=1e-5)
    assert float(per_item.mean()) > 0.49 and float(pooled) < 0.01


def test_multiclass_ce_and_perfect_dice():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40 - 20
    assert float(build_loss("dice", binary=False)(perfect, target)) < 1e-4
    logits = torch.randn(2, 3, 8, 8)
    assert float(build_loss("ce", binary=False)(logits, target)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-6
    )
    assert float(build_loss("focal:1,dice_ce:1", binary=False)(logits, target)) > 0
