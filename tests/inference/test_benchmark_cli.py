"""``scopeseg benchmark``: one round on a tiny model names every engine and gives positive latencies."""

from __future__ import annotations

import re

import pytest
import torch

from scopeseg.cli import main
from scopeseg.models import create_model, save_pretrained
from scopeseg.models.registry import model_entry


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = create_model("unet-lite0", **model_entry("unet-lite0").tiny)
    return save_pretrained(m, tmp_path_factory.mktemp("bench") / "model")


def test_benchmark_prints_every_engine(ckpt, capsys):
    code = main(
        [
            "benchmark",
            str(ckpt),
            "engines=[torch,onnx,openvino]",
            "size=[48,64]",
            "rounds=1",
            "warmup=0",
            "threads=1",
            "precisions=[fp32]",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "load average" in out and "CPU " in out
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("torch", "onnx", "openvino") and len(parts) > 2 and parts[1] == "fp32":
            rows[parts[0]] = [float(v) for v in parts[2:7]]
    assert set(rows) == {"torch", "onnx", "openvino"}
    assert all(v > 0 for vals in rows.values() for v in vals)
    assert re.search(r"torch\s+fp32.*1\.00x", out)
