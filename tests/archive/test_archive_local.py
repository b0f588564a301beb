"""Archive jobs without Ray: the job folder, resume after a killed driver, settings checks, missing extra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from archive_fixtures import tiny_model, tree, video_archive

from scopeseg.archive.predict import predict_archive, video_units
from scopeseg.archive.runner import run_job
from scopeseg.cli import main
from scopeseg.errors import ConfigError, DataError
from scopeseg.inference.semantic_files import PredictConfig


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return video_archive(tmp_path_factory.mktemp("arch") / "videos", videos=8, frames=12)


def _partial(out: Path) -> Path | None:
    found = sorted(out.parent.glob(f".{out.name}.partial-*"))
    return found[0] if found else None


def test_killed_driver_rerun_does_only_the_missing_units(model, archive, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scopeseg", "-q", "predict", str(model), str(archive), str(out), "threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done: dict = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        part = _partial(out)
        if part is not None and (part / "manifest.json").is_file():
            try:
                done = json.loads((part / "manifest.json").read_text())["units"]
            except (json.JSONDecodeError, FileNotFoundError):
                done = {}
            if len(done) >= 2:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done) < 8, proc.stderr.read().decode()[-500:]
    part = _partial(out)
    assert part is not None and not out.exists()  # the job appears whole, at its end
    done = json.loads((part / "manifest.json").read_text())["units"]  # what the driver recorded last
    stamps = {n: (part / n / "results.json").stat().st_mtime_ns for n in done}

    report = predict_archive(model, archive, out, PredictConfig(threads=1))
    assert sorted(report.done_before) == sorted(done)
    assert sorted(report.done_now) == sorted(u.name for u in video_units(archive) if u.name not in done)
    assert report.failed == {} and report.exit_code == 0
    # the units finished before the kill were not touched; every unit is there once; no leftovers
    assert {n: (out / n / "results.json").stat().st_mtime_ns for n in done} == stamps
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [u.name for u in video_units(archive)] + ["manifest.json"]
    )
    assert list(tmp_path.glob(".out.*")) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert all(v["status"] == "done" for v in manifest["units"].values()) and len(manifest["units"]) == 8

    # a finished job rerun with the same settings does nothing; other settings are refused
    again = predict_archive(model, archive, out, PredictConfig(threads=1))
    assert again.done_now == [] and len(again.done_before) == 8
    before = tree(out)
    with pytest.raises(DataError, match="a job with other settings"):
        predict_archive(model, archive, out, PredictConfig(threshold=0.9))
    assert tree(out) == before


def test_missing_ray_is_one_line_naming_the_extra(model, archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as when it is not installed
    out = tmp_path / "out"
    assert main(["predict", str(model), str(archive), str(out), "runner=ray", "workers=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'scopeseg[ray]'" in err and "runner=ray" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["evaluate", str(archive), str(archive), "runner=ray"]) == 2
    assert "pip install 'scopeseg[ray]'" in capsys.readouterr().err


def test_runner_settings_are_checked(model, archive, tmp_path):
    units = video_units(archive)[:1]
    with pytest.raises(ConfigError, match="workers > 1"):
        run_job("predict", {}, units, tmp_path / "o", runner="local", workers=2)
    with pytest.raises(ConfigError, match="unknown archive job 'nope'"):
        run_job("nope", {}, units)
    with pytest.raises(ConfigError, match="apply to archives"):
        from scopeseg.inference.semantic_files import predict_model

        predict_model(model, archive / "vid000.mp4", tmp_path / "v", PredictConfig(workers=2))
