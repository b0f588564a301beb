"""Video and stream prediction (``inference.streams``): video in -> video out, stride, smoothing, bounded
reader queue and memory, truncated / non-video files, and stream input (``file:`` URL, named pipe)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.data.coco import CocoDataset
from scopeseg.inference.semantic import Predictor
from scopeseg.inference.semantic_files import PredictConfig, input_kind, predict_model
from scopeseg.inference.streams import FrameReader, Smoother, predict_video, source_name
from scopeseg.io import read_image
from scopeseg.models import create_model
from scopeseg.video_io import VideoWriter, read_frames, video_info


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny random unet-effb0 whose head is scaled so its probabilities spread around 0.5 (mixed masks)."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ck") / "model"
    m = create_model("unet-effb0", pretrained=False, classes=["tool"]).eval()
    head = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)][-1]
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        head.weight *= 2000
        head.bias *= 2000
        head.bias -= m(torch.from_numpy(img.transpose(2, 0, 1)[None] / 255.0).float()).median()
    m.save_pretrained(d)
    return d


def _video(path, n, h=64, w=96, static=False, seed=0):
    """A textured video (a moving gradient with noise; ``static``: one frame repeated) via VideoWriter."""
    rng = np.random.default_rng(seed)
    base = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    with VideoWriter(path, fps=10) as vw:
        for t in range(n):
            if static:
                vw.write(base)
            else:
                g = ((xx + 3 * t) % w * (255 / w) + yy).astype(np.uint8)
                vw.write(((base // 2).astype(np.uint16) + g[..., None] // 2).astype(np.uint8))
    return path


def _masks(out, name):
    """Label maps of the predicted data set in frame order, with their frame indices."""
    ds = CocoDataset.load(out / "predicted")
    vid = next(iter(ds.videos))
    ids = ds.video_frames(vid)
    maps = []
    for i in ids:
        im = ds.images[i]
        m = np.zeros((im["height"], im["width"]), np.uint8)
        for a in ds.image_anns(i):
            m[ds.mask(a)] = 1
        maps.append(m)
    assert ds.videos[vid]["name"] == name
    return [ds.images[i]["frame_index"] for i in ids], maps


def test_video_in_video_out_equals_per_frame_prediction(ckpt, tmp_path):
    src = _video(tmp_path / "clip.mp4", 12)
    res = predict_model(ckpt, src, tmp_path / "out", PredictConfig(batch_size=4, threshold=0.5))
    info, out_info = video_info(src), video_info(tmp_path / "out" / "clip_overlay.mp4")
    assert res["kind"] == "video" and res["frames"] == 12
    assert (out_info["frames"], out_info["height"], out_info["width"]) == (12, 64, 96)
    assert (info["frames"], info["height"], info["width"]) == (12, 64, 96)
    frames = read_frames(src)
    ref = Predictor.from_pretrained(ckpt, threshold=0.5).predict(list(frames))
    idx, got = _masks(tmp_path / "out", "clip")
    assert idx == list(range(12))
    assert all(np.array_equal(g, r) for g, r in zip(got, ref))
    assert 0 < sum(int(r.sum()) for r in ref) < 12 * 64 * 96  # not a trivial all-empty / all-full answer
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results) == sum(int(r.any()) for r in ref)
    assert 1 <= res["peak_queued_frames"] <= 8  # two batches of 4
    assert read_image(tmp_path / "out" / "predicted" / "clip" / "000011.jpg").shape == (64, 96, 3)


def test_stride_resize_and_video_only_keys(ckpt, tmp_path):
    src = _video(tmp_path / "clip.mp4", 10)
    res = predict_model(ckpt, src, tmp_path / "s", PredictConfig(stride=3, threshold=0.5, resize="32x64"))
    assert res["frames"] == 4
    idx, got = _masks(tmp_path / "s", "clip")
    assert idx == [0, 3, 6, 9] and got[0].shape == (32, 64)
    ov = video_info(tmp_path / "s" / "clip_overlay.mp4")
    assert (ov["frames"], ov["height"], ov["width"]) == (4, 32, 64)
    assert ov["fps"] == pytest.approx(10 / 3, rel=0.01)
    img = tmp_path / "frame.png"
    from scopeseg.io import write_image

    write_image(img, read_frames(src)[0])
    assert main(["-q", "predict", str(ckpt), str(img), str(tmp_path / "o"), "stride=2"]) == 2


def test_smoothing_is_an_ema_and_keeps_a_static_video(ckpt, tmp_path):
    s = Smoother(0.5)
    a, b = np.zeros((1, 2, 2), np.float32), np.ones((1, 2, 2), np.float32)
    assert s(a).max() == 0.0 and s(b).max() == 0.5 and s(b).max() == 0.75
    assert Smoother(0.0)(b) is b
    src = _video(tmp_path / "static.mp4", 8, static=True)
    frames = read_frames(src)
    assert all(np.array_equal(f, frames[0]) for f in frames)  # the decoded scene is truly static
    plain = predict_model(ckpt, src, tmp_path / "a", PredictConfig(threshold=0.5))
    smooth = predict_model(ckpt, src, tmp_path / "b", PredictConfig(threshold=0.5, smooth=0.8))
    assert plain["frames"] == smooth["frames"] == 8
    _, ma = _masks(tmp_path / "a", "static")
    _, mb = _masks(tmp_path / "b", "static")
    assert all(np.array_equal(x, y) for x, y in zip(ma, mb))
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    rb = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [r["score"] for r in ra] == [r["score"] for r in rb]


def test_reader_queue_is_bounded_and_memory_flat(ckpt, tmp_path):
    long = _video(tmp_path / "long.mp4", 200)
    with FrameReader(long, maxsize=4) as reader:
        assert reader.start()["frames"] == 200
        got = []
        for i, _ in reader:
            if i == 0:  # a stalled consumer: the reader runs ahead until the queue is full, then waits
                deadline = time.monotonic() + 30.0  # generous: decoding is slow on a loaded machine
                while reader.peak < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.05)  # had it not waited, it would now be past 4
            got.append(i)
    assert got == list(range(200)) and reader.peak == 4 and reader.error is None
    short = _video(tmp_path / "short.mp4", 50)
    p = Predictor.from_pretrained(ckpt, batch_size=4)
    peaks = {}
    for name, src in (("short", short), ("long", long)):
        tracemalloc.start()
        res = predict_video(p, src, tmp_path / name, images=False)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert res["frames"] == {"short": 50, "long": 200}[name] and res["peak_queued_frames"] <= 8
    # measured ~0.95 MB: the predicted data set's RLE annotations (~6 KB a frame for these noisy masks, held
    # until written); 150 more decoded frames held as well would add 150 * 18 KiB = 2.8 MB on top
    assert peaks["long"] - peaks["short"] < 150 * 64 * 96 * 3 / 2, peaks


def test_truncated_video_one_line_or_partial(ckpt, tmp_path, capsys):
    src = _video(tmp_path / "full.mp4", 40, seed=1)
    data = src.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    assert main(["-q", "predict", str(ckpt), str(half), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "half.mp4" in err[0] and "truncated video" in err[0], err
    failed_at = int(re.search(r"decoding (?:failed|ended) at frame (\d+)", err[0]).group(1))
    assert 0 < failed_at < 40
    assert not (tmp_path / "o").exists()  # atomic: nothing published
    assert main(["-q", "predict", str(ckpt), str(half), str(tmp_path / "p"), "partial=true"]) == 0
    printed = capsys.readouterr().out
    assert "partial: True" in printed and f"frame {failed_at}" in printed
    assert video_info(tmp_path / "p" / "half_overlay.mp4")["frames"] == failed_at
    ds = CocoDataset.load(tmp_path / "p" / "predicted")
    assert len(ds.images) == failed_at
    assert all(ds.load_image(i).shape == (64, 96, 3) for i in ds.images)  # the kept frames are valid
    good = read_frames(src)[:failed_at]
    ref = Predictor.from_pretrained(ckpt, threshold=0.5).predict(list(good))
    _, got = _masks(tmp_path / "p", "half")
    assert all(np.array_equal(g, r) for g, r in zip(got, ref))


def test_text_file_as_video_is_one_line(ckpt, tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    assert main(["-q", "predict", str(ckpt), str(bad), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.mp4" in err[0] and "cannot open video" in err[0]
    assert not (tmp_path / "o").exists()


def test_stream_input_url_and_named_pipe(ckpt, tmp_path):
    assert input_kind("rtsp://camera.local/live") == "stream"
    assert source_name("rtsp://camera.local/live") == "live" and source_name("/dev/video0") == "video0"
    src = _video(tmp_path / "cam.mp4", 20)
    res = predict_model(ckpt, f"file:{src}", tmp_path / "url", PredictConfig(max_frames=7, threshold=0.5))
    assert res["kind"] == "stream" and res["frames"] == 7 and res["fps"] > 0
    assert video_info(tmp_path / "url" / "cam_overlay.mp4")["frames"] == 7
    ref = Predictor.from_pretrained(ckpt, threshold=0.5).predict(list(read_frames(src)[:7]))
    _, got = _masks(tmp_path / "url", "cam")
    assert all(np.array_equal(g, r) for g, r in zip(got, ref))

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()), daemon=True)
    feeder.start()
    res = predict_model(ckpt, fifo, tmp_path / "fifo", PredictConfig(threshold=0.5))
    feeder.join(timeout=10)
    assert res["kind"] == "stream" and res["frames"] == 20
    _, got = _masks(tmp_path / "fifo", "pipe")
    assert all(np.array_equal(g, r) for g, r in zip(got[:7], ref))
