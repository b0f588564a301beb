"""Fixtures for video tests: a square-finding segmenter (exact masks), tiny memory models, real-weights skips."""

from __future__ import annotations

import pytest
import torch
from video_testutil import BrightInBox


@pytest.fixture
def segmenter() -> BrightInBox:
    return BrightInBox()


@pytest.fixture(scope="session")
def tiny_memory_model():
    from scopeseg.models import create_model
    from scopeseg.models.registry import model_entry

    torch.manual_seed(0)
    return create_model("litemedsam-memory", **model_entry("litemedsam-memory").tiny).eval()


@pytest.fixture(scope="session")
def require_weights():
    from scopeseg.models import weights

    def check(name: str) -> None:
        if not weights.is_installed(name):
            pytest.skip(f"{name} weights not installed (scopeseg weights install {name})")

    return check
