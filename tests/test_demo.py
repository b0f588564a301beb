"""The demo pipeline end to end at toy scale (the real demo is ``make demo``)."""

from __future__ import annotations

import json

from scopeseg.cli import main


def test_demo_runs_end_to_end_at_toy_scale(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "-q",
            "demo",
            str(out),
            "--train-videos",
            "2",
            "--test-videos",
            "1",
            "--frames",
            "4",
            "--size",
            "64x96",
            "--minutes",
            "0.2",
            "--model",
            "unet-effb0",
            "pretrained=false",
            "train_size=[64,96]",
            "epochs=1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
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
        assert (tmp_path / summary["paths"][key]).exists() or __import__("os").path.exists(
            summary["paths"][key]
        ), key
    held = summary["held_out"]
    assert held["images"] == 4 and 0.0 <= held["dice_mean_per_image"] <= 1.0
