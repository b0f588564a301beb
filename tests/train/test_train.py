"""Semantic training end to end on tiny data: loss goes down, checkpoints load, resume, NaN stop, DDP."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scopeseg.cli import main
from scopeseg.config import build_config
from scopeseg.errors import ConfigError, TrainingError
from scopeseg.train import SemanticTrainConfig, train

BASE = [
    "model=unet-effb0",
    "pretrained=false",
    "train_size=[64,96]",
    "batch_size=4",
    "lr=3e-3",
    "report_examples=2",
]


def _cfg(data, out, *extra):
    return build_config(SemanticTrainConfig, overrides=[f"data={data}", f"out={out}", *BASE, *extra])


def _epoch_losses(run: Path) -> list[float]:
    from scopeseg.report.training import csv_logs

    out = []
    for path in csv_logs(run):
        with open(path) as f:
            out += [float(r["train_loss_epoch"]) for r in csv.DictReader(f) if r.get("train_loss_epoch")]
    return out


def test_training_lowers_loss_and_writes_a_loadable_checkpoint(disc_data, tmp_path):
    from scopeseg.inference.semantic import Predictor

    res = train(_cfg(disc_data, tmp_path / "run", "epochs=3"))
    run = tmp_path / "run"
    losses = _epoch_losses(run)
    assert len(losses) == 3 and losses[-1] < losses[0]
    for name in (
        "best/model.safetensors",
        "best/config.json",
        "best/manifest.json",
        "metrics.json",
        "report.html",
        "config.yaml",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    assert any((run / "logs" / "tb").iterdir())
    p = Predictor.from_pretrained(run / "best")
    assert p.input_size == (64, 96) and p.classes == ["tool"]  # the single category names the binary class
    assert 0.0 <= res["metrics"]["dice_mean_per_image"] <= 1.0


def test_resume_continues_at_the_next_epoch(disc_data, tmp_path):
    run = tmp_path / "run"
    train(_cfg(disc_data, run, "epochs=1", "report=false"))
    assert len(_epoch_losses(run)) == 1
    res = train(_cfg(disc_data, run, "epochs=2", "report=false", f"resume={run}"))
    assert res["epochs_run"] == 2
    assert len(_epoch_losses(run)) == 2  # one more epoch logged, not two


def test_resume_refuses_foreign_checkpoints(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"\x80\x04")
    with pytest.raises(ConfigError, match="refusing to unpickle"):
        train(_cfg(tmp_path, tmp_path / "r", f"resume={tmp_path / 'x.ckpt'}"))


def test_nan_loss_stops_with_a_clear_error_and_keeps_last_good(disc_data, tmp_path, monkeypatch):
    import torch

    from scopeseg.train import semantic

    run = tmp_path / "run"
    train(_cfg(disc_data, run, "epochs=1", "report=false"))
    from safetensors.torch import load_file

    good = load_file(run / "best" / "model.safetensors")

    class NanLoss(torch.nn.Module):
        last: dict = {}

        def forward(self, logits, target):
            return logits.mean() * float("nan")

    monkeypatch.setattr(semantic, "build_loss", lambda spec, binary: NanLoss())
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 1.*last good checkpoint: .*best"):
        train(_cfg(disc_data, run, "epochs=3", f"resume={run}", "report=false"))
    # same weights (file bytes may differ: metadata order)
    kept = load_file(run / "best" / "model.safetensors")
    assert kept.keys() == good.keys() and all(torch.equal(kept[k], good[k]) for k in good)
    assert (run / "best" / "model.safetensors").is_file()


def test_cli_train_bad_override_exits_2(capsys):
    assert main(["train", "preset=unet-lite0", "epohcs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epohcs" in err[0] and "epochs" in err[0]


@pytest.mark.slow
def test_ddp_two_cpu_processes(disc_data, tmp_path):
    """Lightning relaunches the command for rank 1: run the CLI in a subprocess (ENVIRONMENT.md trap)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "scopeseg.cli",
        "-q",
        "train",
        f"data={disc_data}",
        f"out={tmp_path / 'ddp'}",
        *BASE,
        "epochs=1",
        "accelerator=cpu",
        "devices=2",
        "strategy=ddp",
        "report=false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ddp" / "best" / "model.safetensors").is_file()
    hp = tmp_path / "ddp" / "logs" / "csv" / "hparams.yaml"
    assert hp.is_file()


def test_evaluation_scores_match_the_metrics_engine():
    import numpy as np

    from scopeseg.metrics.overlap import per_class_dice, per_class_iou
    from scopeseg.train.evaluation import confusion, scores_from_confusion

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, (40, 50))
    pred = np.where(rng.random((40, 50)) < 0.7, gt, rng.integers(0, 4, (40, 50)))
    pred[pred == 3] = 0  # class 3 never predicted
    s = scores_from_confusion(confusion(pred, gt, 5))  # class 4 absent from both -> NaN
    np.testing.assert_allclose(s["dice"], per_class_dice(pred, gt, 5), equal_nan=True)
    np.testing.assert_allclose(s["iou"], per_class_iou(pred, gt, 5), equal_nan=True)
    assert np.isnan(s["dice"][4]) and s["dice"][3] == 0.0
