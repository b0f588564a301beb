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
    from scopeseg.inference.prompt_predictor import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.models.promptable import TINY_ARCH
    from scopeseg.train import train
    from scopeseg.train import promptable as _promptable  # noqa: F401 - registers the task

    cfg = build_config(preset="litemedsam-finetune", overrides=[
        f"data={blob_data}", f"val_data={blob_data}", f"out={tmp_path / 'run'}", "pretrained=false",
        "epochs=14", "batch_size=2", "lr=4e-3", "accelerator=cpu", "box_jitter=0.05", "freeze_bn=false",
    ])
    cfg.model_args = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_ARCH.items()}
    result = train(cfg)
    assert result["val"]["val_dice"] > 0.8, result["val"]
    p = PromptPredictor.from_pretrained(result["best"])
    p.set_image(read_image(blob_data / "0.png"))
    assert p.predict(boxes=[10, 5, 60, 45]).masks.shape == (1, 48, 64)
