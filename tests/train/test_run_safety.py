"""Training never loses a run: every check comes before the run folder is touched, an earlier run is refused
unless overwrite=true, resume= loads only our own checkpoint (weights-only), and kill -9 at any point leaves
the folder absent, resumable or clearly incomplete (no complete-looking best/), with other runs untouched."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from scopeseg.cli import main
from scopeseg.config import build_config
from scopeseg.errors import ConfigError
from scopeseg.train import train
from scopeseg.train.loop import plan_run, read_resume_checkpoint
from scopeseg.train.semantic import SemanticTrainConfig

TINY = ["model=unet-effb0", "pretrained=false", "train_size=[64,96]", "batch_size=4", "report=false"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _cfg(data: Path, out: Path, *extra: str) -> SemanticTrainConfig:
    return build_config(SemanticTrainConfig, overrides=[f"data={data}", f"out={out}", *TINY, *extra])


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too): file -> sha256, folder -> 'dir'."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def logged_epochs(run: Path) -> list[int]:
    """Epoch indices with a validation row over all CSV logs of the run (fresh + resumed), sorted.

    Validation rows are flushed before each checkpoint; the epoch-mean training loss is logged by Lightning
    after it, so a kill between the two loses that one row (the training itself is unaffected)."""
    from scopeseg.report.training import csv_logs

    epochs = set()
    for path in csv_logs(run):
        with open(path) as f:
            epochs |= {int(r["epoch"]) for r in csv.DictReader(f) if r.get("val_dice")}
    return sorted(epochs)


@pytest.fixture(scope="module")
def earlier_run(disc_data, tmp_path_factory) -> Path:
    """A finished one-epoch run (never modified: tests copy it)."""
    run = tmp_path_factory.mktemp("earlier") / "run"
    train(_cfg(disc_data, run, "epochs=1"))
    return run


@pytest.fixture
def target(earlier_run, tmp_path) -> Path:
    """A copy of the earlier run that a command is pointed at."""
    run = tmp_path / "target"
    shutil.copytree(earlier_run, run, symlinks=True)
    return run


def _refused(capsys, argv: list[str], folder: Path, expect: str) -> None:
    """``scopeseg train ...`` exits 2 with one line containing ``expect`` and leaves ``folder`` (and the
    folder above it) byte-identical."""
    before, around = snapshot(folder), sorted(p.name for p in folder.parent.iterdir())
    capsys.readouterr()
    code = main(["train", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expect in err[0], (code, err)
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == around


# ---------------------------------------------------------------- refusals change nothing


@pytest.mark.parametrize(
    "extra, expect",
    [
        (
            ["data={missing}"],
            "holds an earlier run",
        ),  # the data-loss bug: best/ checkpoints/ logs/ were deleted
        (["data={missing}", "overwrite=true"], "data set not found"),
        (["data={broken}", "overwrite=true"], "malformed JSON"),
        (["data={data}"], "overwrite=true"),  # a valid fresh run into an earlier one
        (["data={data}", "overwrite=true", "strategy=nope"], "trainer settings refused"),
        (["data={data}", "overwrite=true", "model=no-such-model"], "no-such-model"),
        (["data={data}", "resume={target}", "model=unet-lite0"], "weights do not fit"),
    ],
)
def test_refused_training_leaves_the_earlier_run_untouched(
    capsys, disc_data, target, tmp_path, extra, expect
):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "annotations.json").write_text('{"images": [')
    values = {"missing": tmp_path / "nope", "broken": broken, "data": disc_data, "target": target}
    argv = [f"out={target}", *TINY, "epochs=1", *(a.format(**values) for a in extra)]
    _refused(capsys, argv, target, expect)


def _pickle_bomb(path: Path, marker: Path) -> None:
    class Bomb:  # unpickling it would create ``marker``
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"epoch": 0, "state_dict": {"w": Bomb()}}, path)


@pytest.mark.parametrize(
    "make, expect",
    [
        ("bomb", "refusing to unpickle"),
        ("truncated", "not a torch checkpoint"),
        ("text", "not a torch checkpoint"),
        ("empty", "not a torch checkpoint"),
        ("not_lightning", "not a Lightning checkpoint"),
        ("other_model", "weights do not fit"),
    ],
)
def test_resume_from_a_bad_last_ckpt_is_one_line_before_anything_is_written(
    capsys, disc_data, target, tmp_path, make, expect
):
    last = target / "checkpoints" / "last.ckpt"
    marker = tmp_path / "pickle-ran"
    if make == "bomb":
        _pickle_bomb(last, marker)
    elif make == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif make == "text":
        last.write_text("not a checkpoint\n")
    elif make == "empty":
        last.write_bytes(b"")
    elif make == "not_lightning":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, last)
    else:  # a real Lightning checkpoint of another scopeseg run's model
        other = tmp_path / "other"
        train(_cfg(disc_data, other, "epochs=1", "model=unet-lite0"))
        shutil.copy(other / "checkpoints" / "last.ckpt", last)
    argv = [f"data={disc_data}", f"out={target}", f"resume={target}", *TINY, "epochs=2"]
    _refused(capsys, argv, target, expect)
    assert not marker.exists()  # weights-only: the pickle never ran


def test_refusals_of_promptable_training_leave_the_run_untouched(capsys, disc_data, target, tmp_path):
    from scopeseg.models.sam.model import TINY_ARCH

    arch = [f"model_args.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_ARCH.items()]
    base = ["preset=litemedsam-finetune", f"out={target}", "pretrained=false", "epochs=1", *arch]
    _refused(capsys, [*base, f"data={tmp_path / 'nope'}"], target, "holds an earlier run")
    _refused(capsys, [*base, f"data={tmp_path / 'nope'}", "overwrite=true"], target, "data set not found")
    _refused(capsys, [*base, f"data={disc_data}", f"resume={target}"], target, "weights do not fit")


def test_out_that_is_a_file_is_refused(capsys, disc_data, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("mine")
    _refused(capsys, [f"data={disc_data}", f"out={out}", *TINY], tmp_path, "is a file")


def test_overwrite_replaces_the_earlier_run_only_when_training_starts(disc_data, target):
    (target / "logs" / "mine.txt").write_text("old log")
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = target / f".best.partial-{dead.pid}-x1y2"  # of an atomic write that kill -9 stopped
    leftover.mkdir()
    created = (target / "run.json").read_text()
    res = train(_cfg(disc_data, target, "epochs=2", "overwrite=true"))
    assert res["epochs_run"] == 2 and logged_epochs(target) == [0, 1]
    assert not (target / "logs" / "mine.txt").exists() and not leftover.exists()
    assert (target / "run.json").read_text() != created
    assert "overwrite: true" in (target / "config.yaml").read_text()


def test_other_ranks_never_refuse_or_write(target, disc_data, monkeypatch):
    """A DDP worker (LOCAL_RANK=1) re-runs the command after rank 0 wrote the folder: it must go on."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    plan = plan_run(_cfg(disc_data, target, "epochs=1"), "semantic")
    assert not plan.writer


# ---------------------------------------------------------------- kill -9


def _spawn(out: Path, data: Path, *extra: str, code: str | None = None) -> subprocess.Popen:
    args = ["train", f"data={data}", f"out={out}", *TINY, "accelerator=cpu", *extra]
    cmd = [sys.executable, "-m", "scopeseg", "-q", *args]
    if code is not None:  # run the CLI inside a script that arranges the kill itself
        cmd = [sys.executable, "-c", code, "-q", *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every 5 ms); fails if it ended first."""
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"ended before the kill point: {proc.stderr.read().decode()[-1500:]}"
        assert time.time() - t0 < timeout
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def state_of(run: Path) -> str:
    """absent | complete | resumable | incomplete, checking that each looks like what it is."""
    from scopeseg.models.checkpoints import load_model

    if not run.exists():
        return "absent"
    if (run / "best").exists():
        load_model(run / "best")  # a best/ that exists is a whole checkpoint
        return "complete"
    last = run / "checkpoints" / "last.ckpt"
    if last.exists():
        read_resume_checkpoint(str(run))  # readable, ours, weights only
        return "resumable"
    return "incomplete"


def _steps(run: Path) -> int:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def _resume_finishes(data: Path, run: Path, epochs: int, steps_per_epoch: int) -> None:
    """Resume ends as an uninterrupted run: same epochs, same optimizer steps, a valid best/, no leftovers."""
    res = train(_cfg(data, run, f"epochs={epochs}", f"resume={run}"))
    assert res["epochs_run"] == epochs and logged_epochs(run) == list(range(epochs))
    assert _steps(run) == epochs * steps_per_epoch
    assert state_of(run) == "complete"
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # killed temp files swept
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


KILL_IN_BEST = """
import os, signal, sys
import safetensors.torch as st
real = st.save_file
def save_then_die(*a, **k):
    real(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of writing best/
st.save_file = save_then_die
from scopeseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_at_every_stage_loses_nothing(disc_data, earlier_run, tmp_path):
    """startup / first epoch / after a checkpoint / inside best/: absent, incomplete or resumable; resume ends
    with the epochs of an uninterrupted run; the earlier run in another folder stays byte-identical."""
    before = snapshot(earlier_run)
    steps_per_epoch = _steps(earlier_run)  # the earlier run is one uninterrupted epoch on the same data

    out = tmp_path / "startup"
    proc = _spawn(out, disc_data, "epochs=2")
    _kill_when(proc, lambda: True)  # still importing
    assert state_of(out) == "absent"

    out = tmp_path / "first-epoch"
    proc = _spawn(out, disc_data, "epochs=2")
    _kill_when(proc, lambda: (out / "run.json").exists())  # folder written, fitting, no checkpoint yet
    assert state_of(out) == "incomplete"
    with pytest.raises(ConfigError, match="resume checkpoint not found"):
        train(_cfg(disc_data, out, "epochs=2", f"resume={out}"))

    out = tmp_path / "after-ckpt"
    proc = _spawn(out, disc_data, "epochs=3")
    _kill_when(proc, lambda: (out / "checkpoints" / "last.ckpt").exists())
    assert state_of(out) == "resumable"
    _resume_finishes(disc_data, out, 3, steps_per_epoch)

    out = tmp_path / "in-best"
    proc = _spawn(out, disc_data, "epochs=2", code=KILL_IN_BEST)
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert state_of(out) == "resumable" and [p.name.startswith(".best.") for p in out.iterdir()].count(True)
    _resume_finishes(
        disc_data, out, 2, steps_per_epoch
    )  # nothing left to train: releases best/ from the checkpoint

    assert snapshot(earlier_run) == before
