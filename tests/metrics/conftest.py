"""Fixtures for metric tests: stored reference values (see golden/make_*.py for how they were produced)."""

from __future__ import annotations

import pytest
from metrics_testutil import load_golden


@pytest.fixture(scope="session")
def deepmind_golden() -> dict:
    return load_golden("deepmind_golden.json")["cases"]


@pytest.fixture(scope="session")
def medsam_golden() -> dict:
    return load_golden("medsam_golden.json")


@pytest.fixture(scope="session")
def transcribed_golden() -> dict:
    return load_golden("transcribed_golden.json")


@pytest.fixture(scope="session")
def coco_pair(tmp_path_factory):
    from metrics_testutil import make_coco_pair

    return make_coco_pair(tmp_path_factory.mktemp("coco"))
