"""Fixtures for promptable-model tests: tiny random models, real-weights and real-data skips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).parent / "golden" / "golden.npz"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path(os.environ.get("SCOPESEG_SHARED_DATA", "/work/shared/data"))


@pytest.fixture(scope="session")
def require_weights():
    """``require_weights(name)`` skips the test when the real weights are not installed."""
    from scopeseg.models import weights

    def check(name: str) -> None:
        if not weights.is_installed(name):
            pytest.skip(f"{name} weights not installed (scopeseg weights install {name})")

    return check


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real sample images); tests using it skip when absent."""
    return DATA


@pytest.fixture(scope="session")
def golden() -> dict:
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def tiny_model():
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    torch.manual_seed(0)
    model = create_model("litemedsam", pretrained=False, **TINY_ARCH)
    with torch.no_grad():  # non-trivial BatchNorm statistics so that folding/export are really exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_sam_model():
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    torch.manual_seed(1)
    return create_model("mobilesam", pretrained=False, **TINY_ARCH).eval()


@pytest.fixture()
def scope_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    img = np.stack([120 + 60 * np.sin(xx / 9.0), 80 + 40 * np.cos(yy / 7.0), 70 + 0 * xx], axis=2)
    img[(yy - 45) ** 2 + (xx - 60) ** 2 < 400] += 60
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin contention."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
