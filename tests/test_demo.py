"""The demo pipeline end to end at toy scale (the real demo is ``make demo``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re

import pytest

from scopeseg.cli import main

TOY = [
    "train_videos=2",
    "test_videos=1",
    "frames=4",
    "size=64x96",
    "minutes=0.2",
    "model=unet-effb0",
    "train.pretrained=false",
    "train.train_size=[64,96]",
    "train.epochs=1",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One toy demo run: (output folder, exit code, printed text)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["-q", "demo", str(out), *TOY])
    return out, code, buf.getvalue()


def test_demo_runs_end_to_end_at_toy_scale(demo_run):
    out, code, printed = demo_run
    assert code == 0
    assert "held-out binary instrument Dice" in printed
    summary = json.loads((out / "demo.json").read_text())
    for key in (
        "train_report",
        "test_report",
        "checkpoint",
        "overlay_video",
        "predictions",
        "metrics",
        "preview",
    ):
        assert os.path.exists(summary["paths"][key]), key
    held = summary["held_out"]
    assert held["images"] == 4 and 0.0 <= held["dice_mean_per_image"] <= 1.0
    # sim-to-real: texture and thicker tools in the training videos only; the held-out videos are the default generator
    info = {
        p: json.loads((out / "data" / p / "annotations.json").read_text())["info"] for p in ("train", "test")
    }
    assert info["train"]["config"]["tissue_texture"] == 0.7 and info["train"]["config"]["tool_width"] == 0.6
    assert info["test"]["config"]["tissue_texture"] == 0.0 and info["test"]["config"]["tool_width"] == 0.0


def test_demo_dice_is_what_scopeseg_evaluate_gives_on_its_files(demo_run, tmp_path, capsys):
    """The Dice the demo prints and returns equals ``scopeseg evaluate`` on the masks it wrote (to 1e-9)."""
    out, code, printed = demo_run
    assert code == 0
    summary = json.loads((out / "demo.json").read_text())
    ev = summary["evaluate"]
    assert ev["gt"] == str(out / "data" / "test") and ev["protocol"] == "binary"
    assert ev["params"] == {"categories": ["supercategory:instrument"]}
    capsys.readouterr()
    assert (
        main(
            ["evaluate", ev["gt"], ev["pred"], str(tmp_path / "ev"), "categories=[supercategory:instrument]"]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["protocol"] == "binary" and metrics["num_items"] == 4
    want = metrics["metrics"]["mean_dice"]
    shown = float(re.search(r"held-out binary instrument Dice: ([0-9.e-]+)", printed).group(1))
    assert abs(shown - want) <= 1e-9
    assert abs(summary["held_out"]["dice_mean_per_image"] - want) <= 1e-9
    demo_metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert demo_metrics["metrics"] == metrics["metrics"]


def test_demo_reruns_into_its_own_folder_and_refuses_a_foreign_one(demo_run, tmp_path, capsys):
    """``make demo`` twice works (the demo regenerates its own subfolders, reusing its data); a folder that is
    not a demo run is refused and left as it was."""
    out, code, _ = demo_run
    frame = sorted((out / "data" / "test").rglob("*.jpg"))[0]
    before = frame.read_bytes()
    assert main(["-q", "demo", str(out), *TOY]) == 0
    assert frame.read_bytes() == before  # the synthetic data was reused, not regenerated
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["-q", "demo", str(foreign), *TOY]) == 2
    assert "not a scopeseg demo run" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
