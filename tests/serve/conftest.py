"""Fixtures of the web-app tests: a data root (images, a short video, a data set, an evaluation, a run), a
tiny random promptable model, the real LiteMedSAM when installed, the app and a client."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "serve"


def disc_frames(n: int = 4, size: tuple[int, int] = (96, 128), seed: int = 0) -> list[np.ndarray]:
    """A dark disc drifting over reddish noise (a scope frame in miniature)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for t in range(n):
        img = (rng.random((h, w, 3)) * 40 + np.array([170, 80, 70])).astype(np.uint8)
        cx, cy = 0.4 * w + 3 * t, 0.5 * h + t
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.2 * h) ** 2] = [35, 35, 40]
        frames.append(img)
    return frames


@pytest.fixture(scope="session")
def data_root(tmp_path_factory, disc_data) -> Path:
    """images/scope.png, videos/discs.mp4, data/ (a canonical data set), a secret file beside the root."""
    from scopeseg.io import write_image
    from scopeseg.video_io import write_video

    base = tmp_path_factory.mktemp("serve")
    root = base / "root"
    (root / "images").mkdir(parents=True)
    frames = disc_frames(6)
    write_image(root / "images" / "scope.png", frames[0])
    write_video(root / "videos" / "discs.mp4", frames, fps=5)
    shutil.copytree(disc_data, root / "data")
    (base / "secret.txt").write_text("outside the root")
    return root


@pytest.fixture(scope="session")
def tiny_prompt():
    """A PromptPredictor over a tiny random LiteMedSAM (fast; masks are arbitrary but deterministic)."""
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    torch.manual_seed(0)
    model = create_model("litemedsam", pretrained=False, **TINY_ARCH).eval()
    return PromptPredictor.from_pretrained(model)


@pytest.fixture(scope="session")
def real_prompt():
    """The real LiteMedSAM predictor, or None when its weights are not installed."""
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.models import weights

    if not weights.is_installed("litemedsam"):
        return None
    return PromptPredictor.from_pretrained("litemedsam")


@pytest.fixture()
def app(data_root, tiny_prompt):
    from scopeseg.serve import ServeConfig, create_app

    cfg = ServeConfig(max_upload_mb=1, max_image_pixels=2_000_000, max_frames=20)
    return create_app([data_root], cfg, models={"tiny": tiny_prompt}, discover=False)


@pytest.fixture()
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser screenshots go (ignored by git)."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def make_frames():
    """``disc_frames(n, size, seed)``: the synthetic frames the media fixtures are made of."""
    return disc_frames
