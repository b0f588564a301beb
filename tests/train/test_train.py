"""Semantic training end to end on tiny data: loss goes down, checkpoints load, resume, NaN stop, DDP."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scopeseg.cli import main
from scopeseg.config import build_config
from scopeseg.errors import ConfigError, TrainingError
from scopeseg.train import train
from scopeseg.train.semantic import SemanticTrainConfig

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
    """Semantic training under DDP: two CPU processes (gloo) launched by the CLI."""
    from tests.conftest import run_ddp_train

    run = run_ddp_train([f"data={disc_data}", *BASE, "report=false"], tmp_path / "ddp", epochs=1)
    assert (run / "best" / "model.safetensors").is_file()


def test_validation_scores_are_the_protocols_and_average_over_ranks():
    """``val_dice`` rows come from ``metrics.protocols`` (binary Dice; multi-class per-image mean Dice) and the
    epoch mean sums scores and counts over ranks (a mean of per-rank means would differ here)."""
    import math

    import numpy as np
    import torch

    from scopeseg.metrics.overlap import dice, per_class_dice
    from scopeseg.train.validation import RankMean, score_label_maps

    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 4, (20, 24)) for _ in range(3)]
    preds = [np.where(rng.random(g.shape) < 0.7, g, rng.integers(0, 4, g.shape)) for g in gts]
    rows = score_label_maps("semantic", gts, preds, num_classes=5)  # class 4 absent everywhere
    for row, g, p in zip(rows, gts, preds):
        assert row["mdice"] == pytest.approx(np.nanmean(per_class_dice(p, g, 5)[1:]), rel=1e-12)
    binary = score_label_maps("binary", [g > 1 for g in gts], [p > 1 for p in preds], surface=False)
    assert [r["dice"] for r in binary] == [dice(p > 1, g > 1) for g, p in zip(gts, preds)]
    assert "nsd" not in binary[0]

    class TwoRanks:  # the other rank scored two images: 0.0 and 1.0
        root_device = torch.device("cpu")

        def reduce(self, t, reduce_op):
            assert reduce_op == "sum"
            return t + torch.tensor([1.0, 2.0], dtype=t.dtype)

    mean = RankMean()
    mean.update([0.5, math.nan, 0.9, 0.7])  # NaN: undefined under the empty rule, left out
    assert float(mean.compute(TwoRanks())) == pytest.approx((0.5 + 0.9 + 0.7 + 1.0) / 5)
    assert mean.count == 0  # reset for the next epoch


def test_bf16_mixed_training_lowers_loss_and_keeps_fp32_weights(disc_data, tmp_path, caplog):
    """precision=bf16-mixed (CPU autocast) trains and saves fp32 weights; without native bf16 it says so."""
    import logging

    from safetensors.torch import load_file

    from scopeseg.runtime import native_bf16

    with caplog.at_level(logging.WARNING, logger="scopeseg"):
        res = train(_cfg(disc_data, tmp_path / "run", "epochs=2", "report=false", "precision=bf16-mixed"))
    losses = _epoch_losses(tmp_path / "run")
    assert len(losses) == 2 and losses[-1] < losses[0]
    weights = load_file(tmp_path / "run" / "best" / "model.safetensors")
    assert {str(t.dtype) for t in weights.values() if t.is_floating_point()} == {"torch.float32"}
    assert res["epochs_run"] == 2
    warned = any("without native bf16" in r.getMessage() for r in caplog.records)
    assert warned == (not native_bf16())


def test_semantic_encoder_options_freeze_and_scale_the_encoder():
    """freeze_encoder_at / freeze_encoder_bn / encoder_lr_factor reach a UNet: frozen parts get no gradient
    and stay in eval mode through train(); the encoder's AdamW group runs at lr x factor."""
    import torch

    from scopeseg.models.registry import create_model
    from scopeseg.train.loop import encoder_param_groups
    from scopeseg.train.semantic import SemanticModule

    model = create_model("unet-lite0", classes=["tool"], pretrained=False)
    cfg = SemanticTrainConfig(freeze_encoder_at=3, freeze_encoder_bn=True, encoder_lr_factor=0.1, lr=1e-3)
    module = SemanticModule(model, cfg).train()
    frozen = {id(p) for m in model.encoder.feature_prefix(3) for p in m.parameters()}
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen and all(not p.requires_grad for m in norms for p in m.parameters())
    assert not any(m.training for m in norms) and model.net.decoder.training
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stats = [m.running_mean.clone() for m in norms]
    groups = encoder_param_groups(model, cfg)
    assert [g.get("lr") for g in groups] == [None, pytest.approx(1e-4)]
    opt = torch.optim.SGD(groups, lr=0.1)
    module.loss_fn(model(torch.rand(2, 3, 64, 96)), torch.randint(0, 2, (2, 64, 96))).backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert all(n not in changed for n, p in model.named_parameters() if id(p) in frozen)
    assert any(n.startswith("net.encoder.") for n in changed)
    assert any(not n.startswith("net.encoder.") for n in changed)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(stats, norms))  # ImageNet statistics kept
    # the defaults train everything at one lr
    plain = create_model("unet-lite0", classes=["tool"], pretrained=False)
    SemanticModule(plain, SemanticTrainConfig()).train()
    assert all(p.requires_grad for p in plain.parameters())
    assert len(encoder_param_groups(plain, SemanticTrainConfig())) == 2
    assert encoder_param_groups(plain, SemanticTrainConfig())[1]["lr"] == SemanticTrainConfig().lr


def test_style_images_restyle_training_frames_and_bad_folders_fail_in_one_line(disc_data, tmp_path):
    """style_images: unlabeled frames (here one flat blue and one flat green image) whose colour histograms the
    training frames take on; the masks stay; a missing or empty folder is a one-line DataError naming it."""
    import numpy as np

    from scopeseg.errors import DataError
    from scopeseg.io import write_image
    from scopeseg.train.semantic import SemanticDataModule

    refs = tmp_path / "real"
    write_image(refs / "blue.png", np.tile(np.array([20, 40, 200], np.uint8), (48, 64, 1)))
    write_image(refs / "sub" / "green.jpg", np.tile(np.array([30, 180, 40], np.uint8), (48, 64, 1)))
    plain = SemanticDataModule(_cfg(disc_data, tmp_path / "o", "augment=light"))
    styled = SemanticDataModule(
        _cfg(disc_data, tmp_path / "o", "augment=light", f"style_images={refs}", "style_p=1.0")
    )
    assert len(styled.train_set) == len(plain.train_set)
    for i in range(3):
        (_, y0), (x1, y1) = plain.train_set[i], styled.train_set[i]
        flips = [y0, y0.flip(-1), y0.flip(-2), y0.flip(-1).flip(-2)]
        assert y0.sum() > 0 and any(bool((y1 == f).all()) for f in flips)  # labels kept (flips aside)
        ch = x1.reshape(3, -1).mean(1)
        assert ch[2] > ch[0] + 0.1 or ch[1] > ch[0] + 0.1  # blue or green now dominates
    for bad, msg in ((tmp_path / "nope", "not found"), (tmp_path / "o", None)):
        (tmp_path / "empty").mkdir(exist_ok=True)
        target = bad if msg else tmp_path / "empty"
        with pytest.raises(DataError, match=msg or "no images"):
            SemanticDataModule(_cfg(disc_data, tmp_path / "o", f"style_images={target}"))


def test_freeze_encoder_at_on_an_encoder_without_taps_is_one_line_and_writes_nothing(disc_data, tmp_path):
    """unet-effb0's MONAI encoder has no feature_prefix: freeze_encoder_at is refused (exit 2) before the run
    folder exists; freeze_encoder_bn alone works with any encoder."""
    from scopeseg.models.registry import create_model
    from scopeseg.train.loop import freeze_encoder

    out = tmp_path / "run"
    args = ["-q", "train", f"data={disc_data}", f"out={out}", *BASE, "epochs=1", "freeze_encoder_at=2"]
    assert main(args) == 2 and not out.exists()
    model = create_model("unet-effb0", classes=["tool"], pretrained=False)
    freeze_encoder(model, SemanticTrainConfig(freeze_encoder_bn=True))
    assert any(not p.requires_grad for p in model.encoder.parameters())
