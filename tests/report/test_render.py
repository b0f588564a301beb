"""The training report renders: a tiny run's ``report.html`` opened in headless Chromium, screenshot checked.

Skipped when Chromium is absent (CI installs Debian ``chromium``). The HTML must be self-contained: no
http(s) or protocol-relative references in ``src``/``href``/CSS ``url()``/``@import``; images inline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

WINDOW = (1280, 2000)  # width, height of the screenshot
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//)""",
    re.IGNORECASE,
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="module")
def tiny_report(disc_data, tmp_path_factory) -> Path:
    """``report.html`` of a 1-epoch unet-effb0 run on the tiny disc videos."""
    import torch

    from scopeseg.config import build_config
    from scopeseg.train import train
    from scopeseg.train.semantic import SemanticTrainConfig

    out = tmp_path_factory.mktemp("report_run")
    cfg = build_config(
        SemanticTrainConfig,
        overrides=[
            f"data={disc_data}",
            f"out={out}",
            "model=unet-effb0",
            "pretrained=false",
            "train_size=[64,96]",
            "epochs=1",
            "batch_size=4",
            "report_examples=2",
            "accelerator=cpu",
        ],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared, oversubscribed cores: 2 spinning OpenMP threads are far slower
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    report = out / "report.html"
    assert report.is_file()
    return report


def test_report_has_no_external_references(tiny_report):
    text = tiny_report.read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None, EXTERNAL.search(text).group(0)
    srcs = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", text, re.IGNORECASE)
    assert srcs, "the report should embed figures and example images"
    assert all(s.startswith("data:image/") for s in srcs), [s[:40] for s in srcs if not s.startswith("data:")]
    assert "<link" not in text.lower() and "<script src" not in text.lower()


def test_report_renders_in_headless_chromium(tiny_report, tmp_path):
    from PIL import Image

    exe = chromium()
    if exe is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    png = tmp_path / "report.png"
    cmd = [
        exe,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        tiny_report.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 0, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size == WINDOW
        pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
    # not blank: real variation, several colours, and a fair share of non-white (text, plots, images)
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 50
    assert (pixels.min(axis=2) < 200).mean() > 0.02
