"""Promptable fine-tuning (task ``promptable``): a tiny model learns box-prompted masks of synthetic data."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def blob_data(tmp_path):
    from scopeseg.data.coco import CocoDataset
    from scopeseg.io import write_image

    rng = np.random.default_rng(0)
    ds = CocoDataset()
    cat = ds.add_category("polyp")
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(4):
        cy, cx, r = rng.uniform(16, 32), rng.uniform(16, 48), rng.uniform(8, 12)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = np.full((48, 64, 3), 60, np.uint8)
        img[m] = (200, 150, 120)
        write_image(tmp_path / "data" / f"{i}.png", img)
        ds.add_annotation(ds.add_image(f"{i}.png", 48, 64), cat, m)
    ds.save(tmp_path / "data" / "annotations.json")
    return tmp_path / "data"


def test_finetune_learns_and_writes_a_loadable_checkpoint(blob_data, tmp_path):
    from scopeseg.config import build_config
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.models.sam.model import TINY_ARCH
    from scopeseg.train import train

    cfg = build_config(
        preset="litemedsam-finetune",
        overrides=[
            f"data={blob_data}",
            f"val_data={blob_data}",
            f"out={tmp_path / 'run'}",
            "pretrained=false",
            "epochs=14",
            "batch_size=2",
            "lr=3e-3",
            "accelerator=cpu",
            "box_jitter=0.05",
            "schedule=none",
            "freeze_bn=false",  # a random tiny net needs its BatchNorm statistics to adapt
        ],
    )
    cfg.model_args = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_ARCH.items()}
    result = train(cfg)
    import csv
    from pathlib import Path

    rows = list(csv.DictReader((Path(result["run_dir"]) / "logs" / "csv" / "metrics.csv").open()))
    losses = [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]
    dice_losses = [float(r["train_sample_dice_loss"]) for r in rows if r.get("train_sample_dice_loss")]
    assert len(losses) == 14 and losses[-1] < 0.5 * losses[0], losses
    assert dice_losses[-1] < 0.5, dice_losses  # box-prompted masks learned (soft Dice > 0.5)
    assert "val_dice" in result["val"]
    p = PromptPredictor.from_pretrained(result["best"])
    p.set_image(read_image(blob_data / "0.png"))
    assert p.predict(boxes=[10, 5, 60, 45]).masks.shape == (1, 48, 64)


def test_frozen_encoder_is_unchanged_and_encoded_once_per_image(blob_data, tmp_path, monkeypatch):
    import torch

    from scopeseg.config import build_config
    from scopeseg.models.checkpoints import load_model
    from scopeseg.models.sam.model import TINY_ARCH, PromptableSAM
    from scopeseg.train import train

    calls = []
    encode = PromptableSAM.encode
    monkeypatch.setattr(PromptableSAM, "encode", lambda self, x: calls.append(len(x)) or encode(self, x))
    torch.manual_seed(0)
    cfg = build_config(
        preset="litemedsam-finetune",
        overrides=[
            f"data={blob_data}",
            f"val_data={blob_data}",
            f"out={tmp_path / 'run'}",
            "pretrained=false",
            "epochs=3",
            "batch_size=2",
            "accelerator=cpu",
            "freeze_encoder=true",
            "flip=false",
        ],
    )
    cfg.model_args = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_ARCH.items()}
    result = train(cfg)
    assert sum(calls) == 8  # 4 training + 4 validation images, each encoded once over 3 epochs
    tuned = load_model(result["best"])
    from scopeseg.models.registry import create_model

    torch.manual_seed(0)
    init = create_model("litemedsam", pretrained=False, **TINY_ARCH)
    enc_same = all(
        torch.equal(a, b)
        for a, b in zip(tuned.image_encoder.state_dict().values(), init.image_encoder.state_dict().values())
    )
    dec_same = all(
        torch.equal(a, b)
        for a, b in zip(tuned.mask_decoder.state_dict().values(), init.mask_decoder.state_dict().values())
    )
    assert enc_same and not dec_same


@pytest.mark.slow
def test_ddp_two_cpu_processes(blob_data, tmp_path):
    """Promptable fine-tuning under DDP: two CPU processes (gloo) launched by the CLI."""
    from tests.conftest import run_ddp_train

    from scopeseg.models.checkpoints import load_model
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    arch = [f"model_args.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_ARCH.items()]
    over = ["preset=litemedsam-finetune", f"data={blob_data}", f"val_data={blob_data}", "pretrained=false",
            "batch_size=1", "lr=3e-3", "schedule=none", *arch]  # fmt: skip
    run = run_ddp_train(over, tmp_path / "ddp", epochs=2)
    tuned = load_model(run / "best")
    init = create_model("litemedsam", pretrained=False, **TINY_ARCH)
    assert tuned.state_dict().keys() == init.state_dict().keys()


@pytest.mark.parametrize("n", [1, 3])
def test_every_trainable_parameter_gets_a_gradient(n):
    """After freezing the gradient-free parameters, a box-prompted step reaches every trainable one (DDP)."""
    import torch

    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH
    from scopeseg.train.promptable import gradient_free_parameters

    torch.manual_seed(0)
    model = create_model("litemedsam", pretrained=False, **TINY_ARCH).train()
    frozen = {id(p) for p in gradient_free_parameters(model)}
    for p in gradient_free_parameters(model):
        p.requires_grad_(False)
    corners = torch.rand(n, 2, 2) * 32 + torch.tensor([[0.0, 0.0], [32.0, 32.0]])
    low, iou = model.decode(model.encode(torch.randn(n, 3, 64, 64)), corners, torch.tensor([[2.0, 3.0]] * n))
    (low[:, 0].sigmoid().mean() + iou[:, 0].pow(2).mean()).backward()
    missing = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert len(frozen) == 10 + 3  # mask branch (5 layers x weight, bias) + 3 token->image key biases
