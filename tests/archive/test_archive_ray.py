"""Archive jobs on a local Ray cluster (shared by the module): same bytes as runner=local, a killed worker,
a corrupt video, and evaluation combined into exactly the single-process numbers."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from archive_fixtures import tiny_model, tree, video_archive

pytest.importorskip("ray", reason="ray is not installed (pip install 'scopeseg[ray]')")

from scopeseg.archive.predict import predict_archive  # noqa: E402
from scopeseg.archive.runner import connect  # noqa: E402
from scopeseg.cli import main  # noqa: E402
from scopeseg.data import rle  # noqa: E402
from scopeseg.data.coco import CocoDataset  # noqa: E402
from scopeseg.evaluate import evaluate  # noqa: E402
from scopeseg.inference.semantic_files import PredictConfig, predict_model  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """One local 2-CPU cluster for the module (Ray starts in seconds, not per test); its files go at the end."""
    c = connect(None, 2)
    assert c.started
    yield c
    c.close()
    assert not Path(c.temp_dir).exists()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def predicted(cluster, model, tmp_path_factory):
    """20 synthetic videos and a corrupt one predicted by runner=local and by 2 Ray workers (CLI)."""
    root = tmp_path_factory.mktemp("predicted")
    archive = video_archive(root / "videos", videos=20, frames=2, corrupt=True)
    a, b = root / "local", root / "ray"
    codes = [main(["-q", "predict", str(model), str(archive), str(a), "threads=1"])]
    args = ["runner=ray", "workers=2", "threads=1"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        codes.append(main(["-q", "predict", str(model), str(archive), str(b), *args]))
    return {"local": a, "ray": b, "codes": codes, "printed": out.getvalue(), "synth": root / "videos-synth"}


def test_ray_outputs_equal_local_and_a_corrupt_video_is_reported(predicted):
    a, b = predicted["local"], predicted["ray"]
    assert predicted["codes"] == [3, 3]  # some units failed; the others are written
    printed = predicted["printed"]
    assert "failed: 1" in printed and "failed zz_broken:" in printed and "cannot open video" in printed
    ta, tb = tree(a), tree(b)
    assert len([k for k in ta if k.endswith("results.json")]) == 20
    assert ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta)  # byte-identical, nothing else
    units = json.loads((b / "manifest.json").read_text())["units"]
    assert units["zz_broken"]["status"] == "failed" and "cannot open video" in units["zz_broken"]["error"]
    assert sum(u["status"] == "done" for u in units.values()) == 20
    assert len({u["pid"] for u in units.values() if "pid" in u}) == 2  # both workers took units


def test_a_worker_killed_mid_unit_is_retried_and_each_unit_written_once(cluster, model, tmp_path):
    archive = video_archive(tmp_path / "videos", videos=3, frames=12)
    out = tmp_path / "out"
    result: dict = {}
    job = threading.Thread(
        target=lambda: result.update(
            report=predict_archive(model, archive, out, PredictConfig(runner="ray", workers=2, threads=1))
        )
    )
    job.start()
    killed: tuple[str, int] | None = None
    deadline = time.monotonic() + 60
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        for part in out.parent.glob(".out.partial-*"):  # the job folder; inside, units being written
            for unit in part.glob(".*.partial-*"):
                name, _, rest = unit.name[1:].partition(".partial-")
                pid = int(rest.split("-")[0])
                if name == "manifest.json" or pid == os.getpid():  # the driver's (our) manifest writes
                    continue
                os.kill(pid, signal.SIGKILL)
                killed = (name, pid)
                break
        time.sleep(0.005)
    job.join(120)
    assert killed is not None, "no unit was caught while being written"
    report = result["report"]
    assert report.failed == {} and sorted(report.done_now) == ["vid000", "vid001", "vid002"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["units"][killed[0]]["status"] == "done"
    assert manifest["units"][killed[0]]["pid"] != killed[1]  # redone by the restarted worker
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "vid000", "vid001", "vid002"]
    assert not [p for p in out.rglob(".*")]  # no half unit left behind
    # the retried unit is exactly what one process writes for that video
    ref = tmp_path / "ref"
    predict_model(model, archive / f"{killed[0]}.mp4", ref, PredictConfig(threads=1))
    fresh = tree(out / killed[0])
    assert fresh.keys() == tree(ref).keys()
    ref_ann = json.loads(tree(ref)["predicted/annotations.json"])
    got_ann = json.loads(fresh["predicted/annotations.json"])
    ref_ann["videos"][0].pop("source"), got_ann["videos"][0].pop("source")
    assert got_ann == ref_ann and len(got_ann["images"]) == 12


@pytest.fixture(scope="module")
def scored(disc_data_2cls, tmp_path_factory):
    """A COCO-video ground truth (two classes) and COCO results made from it: shifted, some dropped."""
    gt = disc_data_2cls
    ds = CocoDataset.load(gt)
    rng = np.random.default_rng(1)
    results = []
    for a in ds.annotations.values():
        if rng.random() < 0.15:
            continue
        m = np.roll(ds.mask(a), tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
        seg = rle.encode(m)
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": seg,
                        "bbox": rle.bbox(seg), "score": float(rng.uniform(0.6, 1))})  # fmt: skip
    pred = tmp_path_factory.mktemp("scored") / "results.json"
    pred.write_text(json.dumps(results))
    return gt, pred


def _flat(d: dict, pre: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{pre}{k}.") if isinstance(v, dict) else {pre + k: v})
    return out


def _close(x, y) -> bool:
    if isinstance(x, float) and math.isnan(x):
        return isinstance(y, float) and math.isnan(y)
    return x == y if not isinstance(x, float) or math.isinf(x) else abs(x - y) <= 1e-12


@pytest.mark.parametrize("protocol", ["binary", "semantic", "video"])
def test_evaluate_ray_equals_local(cluster, scored, protocol):
    gt, pred = scored
    local = evaluate(gt, pred, protocol)
    ray = evaluate(gt, pred, protocol, runner="ray", workers=2, threads=1)
    a, b = _flat(local.metrics), _flat(ray.metrics)
    assert a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a), (a, b)
    assert len(local.items) == len(ray.items)
    assert all(
        ra.keys() == rb.keys() and all(_close(ra[k], rb[k]) for k in ra)
        for ra, rb in zip(local.items, ray.items)
    )
    assert local.conventions == ray.conventions
    first = next(v for v in a.values() if isinstance(v, float) and not math.isnan(v))
    assert 0 < first < 1  # real scores, not an empty comparison


def test_evaluate_a_predicted_archive_ray_equals_local(cluster, predicted):
    """The OUT of an archive prediction is scored against the data set its videos came from."""
    gt, out = predicted["synth"], predicted["local"]
    cats = "[supercategory:instrument,polyp]"  # the one-class model stands for these categories
    local = evaluate(gt, out, "binary", categories=cats)
    ray = evaluate(gt, out, "binary", runner="ray", workers=2, threads=1, categories=cats)
    assert len(local.items) == 40 and [r["item"] for r in local.items] == [r["item"] for r in ray.items]
    a, b = _flat(local.metrics), _flat(ray.metrics)
    assert a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    assert 0 < a["mean_dice"] < 1
