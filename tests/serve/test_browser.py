"""The web app in a real headless Chromium (Debian ``chromium`` driven by Playwright; nothing downloaded).

Draw a box on a frame (a real laparoscopic frame from ../shared/data when present, and a synthetic one) and
check the mask the browser received equals ``PromptPredictor``'s on the same box (Dice 1.0); add a negative
point and see the mask change; propagate through a short synthetic video; open the Data and Results pages.
Screenshots go to ``test-artifacts/serve/``. Skipped where no Chromium exists (CI installs it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from scopeseg.data import rle as rle_ops

N_VIDEO = 4  # frames of the synthetic video (each costs one image encoding when propagated)
SHARED_FRAME = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "cholecseg8k_clip" / "images" / "frame_0621.png"
)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


pytestmark = pytest.mark.skipif(
    _chromium() is None, reason="no Chromium executable (apt-get install chromium; CI installs it)"
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


@pytest.fixture(scope="module")
def predictor(real_prompt, tiny_prompt):
    """The real LiteMedSAM when installed (masks that mean something), else the tiny random one."""
    return real_prompt or tiny_prompt


@pytest.fixture(scope="module")
def browser_root(tmp_path_factory, disc_data, make_frames) -> Path:
    from scopeseg.evaluate import evaluate, save_results
    from scopeseg.io import write_image, write_json, write_text
    from scopeseg.video_io import write_video

    root = tmp_path_factory.mktemp("browser") / "root"
    frames = make_frames(N_VIDEO, size=(96, 128))
    write_image(root / "images" / "synthetic.png", frames[0])
    if SHARED_FRAME.is_file():
        shutil.copyfile(SHARED_FRAME, root / "images" / "real.png")
    write_video(root / "videos" / "discs.mp4", frames, fps=5)
    shutil.copytree(disc_data, root / "data")
    save_results(
        evaluate(root / "data", root / "data", "binary"), root / "eval", root / "data", root / "data"
    )
    run = root / "runs" / "tiny"  # a run folder as train/loop.py lays it out: run.json, metrics, CSV log
    write_json(run / "run.json", {"task": "semantic", "model": "unet-lite0"})
    write_json(run / "metrics.json", {"best_val_dice": 0.91, "epochs": 3})
    rows = "epoch,step,train_loss,val_dice\n" + "".join(
        f"{e},{10 * (e + 1)},{1.0 / (e + 1):.3f},{0.5 + 0.1 * e:.2f}\n" for e in range(4)
    )
    write_text(run / "logs" / "csv" / "metrics.csv", rows)
    return root


@pytest.fixture(scope="module")
def live(browser_root, predictor):
    from scopeseg.serve import ServeConfig, create_app
    from scopeseg.serve.live import BackgroundServer

    app = create_app([browser_root], ServeConfig(), models={"sam": predictor}, discover=False)
    with BackgroundServer(app) as server:
        server.app = app
        yield server


@pytest.fixture(scope="module")
def page(live):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install '.[dev]')"
    )
    sync_playwright = sync_api.sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(live.url + "/#segment")
        pg.wait_for_selector("#file-list li")
        pg.errors = errors
        yield pg
        browser.close()
    assert not errors, errors


def _open(page, folder: str, name: str) -> None:
    page.evaluate("([r, p]) => browse(r, p)", [0, folder])
    page.click(f"#file-list li[title='{folder}/{name}']")
    page.wait_for_function("n => window.scopeseg.media && window.scopeseg.media.name === n", arg=name)
    page.wait_for_function("() => document.getElementById('frame-img').naturalWidth > 0")


def _segments(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.segments || 0)"))


def _drag_box(page, box: list[float], size: tuple[int, int]) -> None:
    r = page.locator("#draw").bounding_box()
    h, w = size
    sx, sy = r["width"] / w, r["height"] / h
    page.mouse.move(r["x"] + box[0] * sx, r["y"] + box[1] * sy)
    page.mouse.down()
    page.mouse.move(r["x"] + (box[0] + box[2]) / 2 * sx, r["y"] + (box[1] + box[3]) / 2 * sy, steps=3)
    page.mouse.move(r["x"] + box[2] * sx, r["y"] + box[3] * sy, steps=3)
    page.mouse.up()


def _click(page, xy: list[float], size: tuple[int, int]) -> None:
    r = page.locator("#draw").bounding_box()
    page.mouse.click(r["x"] + xy[0] * r["width"] / size[1], r["y"] + xy[1] * r["height"] / size[0])


@pytest.mark.parametrize("which", ["synthetic", pytest.param("real", marks=pytest.mark.realdata)])
def test_box_then_negative_point(page, browser_root, predictor, artifacts, which):
    from scopeseg.io import read_image

    if which == "real" and not (browser_root / "images" / "real.png").is_file():
        pytest.skip(f"real frame absent ({SHARED_FRAME} not found)")
    _open(page, "images", f"{which}.png")
    img = read_image(browser_root / "images" / f"{which}.png")
    h, w = img.shape[:2]
    n = _segments(page)
    target = (
        [0.3 * w, 0.3 * h, 0.62 * w, 0.75 * h] if which == "real" else [0.2 * w, 0.22 * h, 0.62 * w, 0.8 * h]
    )
    _drag_box(page, target, (h, w))
    page.wait_for_function("n => Number(document.body.dataset.segments || 0) > n", arg=n)
    last = page.evaluate("() => window.scopeseg.last")
    box = last["objects"]["1"]["box"]
    px = w / page.locator("#draw").bounding_box()["width"]  # image pixels per screen pixel
    assert np.allclose(box, target, atol=1.5 * px)  # the drawn box, in image pixels
    got = rle_ops.decode(last["objects"]["1"]["rle"]).astype(bool)
    predictor.set_image(img)
    want = predictor.predict(boxes=[box]).masks[0]
    assert got.shape == (h, w) and dice(got, want) == 1.0
    page.screenshot(path=str(artifacts / f"box_{which}.png"))

    # a negative point inside the mask (or the box) changes it, again exactly as PromptPredictor does
    ys, xs = np.nonzero(got)
    xy = (
        [float(np.median(xs)), float(np.median(ys))]
        if len(xs)
        else [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    )
    page.check("input[name=tool][value=neg]")
    n = _segments(page)
    _click(page, xy, (h, w))
    page.wait_for_function("n => Number(document.body.dataset.segments || 0) > n", arg=n)
    last = page.evaluate("() => window.scopeseg.last")
    o = last["objects"]["1"]
    assert o["labels"] == [0] and len(o["points"]) == 1
    got2 = rle_ops.decode(o["rle"]).astype(bool)
    want2 = predictor.predict(boxes=[o["box"]], points=[o["points"]], point_labels=[o["labels"]]).masks[0]
    assert dice(got2, want2) == 1.0
    assert (got2 != got).any()
    page.check("input[name=tool][value=box]")
    page.screenshot(path=str(artifacts / f"negative_point_{which}.png"))


def test_propagate_video(page, live, predictor, real_prompt, artifacts, make_frames):
    _open(page, "videos", "discs.mp4")
    assert page.is_visible("#video-controls")
    n = _segments(page)
    _drag_box(page, [25, 22, 82, 75], (96, 128))
    page.wait_for_function("n => Number(document.body.dataset.segments || 0) > n", arg=n)
    page.click("#propagate-btn")
    page.wait_for_selector("#job-list li[data-status=done], #job-list li[data-status=failed]", timeout=90_000)
    jobs = live.app.state.server.jobs.list()
    assert jobs[0]["status"] == "done", jobs[0]
    media = live.app.state.server.media.get(page.evaluate("() => window.scopeseg.media.id"))
    assert sorted(media.labels) == list(range(N_VIDEO))
    assert [media.labels[t][1].source for t in range(N_VIDEO)] == ["prompt"] + ["propagated"] * (N_VIDEO - 1)
    if real_prompt is not None:  # real weights: every propagated mask finds the moving disc
        yy, xx = np.mgrid[:96, :128]
        for t, _ in enumerate(make_frames(N_VIDEO, size=(96, 128))):
            disc = (xx - (0.4 * 128 + 3 * t)) ** 2 + (yy - (0.5 * 96 + t)) ** 2 < (0.2 * 96) ** 2
            assert dice(rle_ops.decode(media.labels[t][1].rle).astype(bool), disc) > 0.8, t
    page.fill("#frame-slider", str(N_VIDEO - 1))
    page.dispatch_event("#frame-slider", "change")
    page.wait_for_function(
        "n => document.getElementById('frame-label').textContent.startsWith('frame ' + n)", arg=N_VIDEO
    )
    page.wait_for_function("() => document.getElementById('seg-info').textContent.startsWith('1 object')")
    page.screenshot(path=str(artifacts / "propagated_last_frame.png"))
    # a reload finds the work where it was: the media, its frame and labels, the finished job
    page.reload()
    page.wait_for_function(
        "n => document.getElementById('frame-label').textContent.startsWith('frame ' + n)", arg=N_VIDEO
    )
    page.wait_for_function("() => document.getElementById('seg-info').textContent.startsWith('1 object')")
    assert "discs.mp4" in page.inner_text("#media-title")
    page.wait_for_selector("#job-list li[data-status=done]")


def test_data_page(page, artifacts):
    page.goto(page.url.split("#")[0] + "#data")
    page.click("#dataset-list li[title='data']")
    page.wait_for_selector("#thumbs figure img")
    assert page.locator("#thumbs figure").count() == 24
    page.select_option("#video-filter", index=1)
    page.wait_for_function("() => document.querySelectorAll('#thumbs figure').length === 6")
    page.click("#thumbs figure >> nth=0")
    page.wait_for_function("() => document.getElementById('big-img').naturalWidth === 96")
    page.click("#validate-btn")
    page.wait_for_selector("#problems p")
    assert page.inner_text("#problems p").startswith("0 error(s), 0 warning(s)")
    page.screenshot(path=str(artifacts / "data_page.png"), full_page=True)
    # the selected video opens on the Segment page with its annotations, ready to correct
    page.click("#segment-video-btn")
    page.wait_for_function("() => document.getElementById('frame-label').textContent === 'frame 1 / 6'")
    page.wait_for_function("() => document.getElementById('seg-info').textContent.startsWith('1 object')")
    assert page.evaluate("() => location.hash") == "#segment"


def test_results_page(page, artifacts):
    page.goto(page.url.split("#")[0] + "#results")
    page.click("#result-list li[title='eval']")
    page.wait_for_selector("#items-table tr.clickable")
    assert page.locator("#items-table tr.clickable").count() == 24
    assert "dice" in page.inner_text("#metrics-table")
    page.click("#items-table tr.clickable >> nth=0")
    page.wait_for_function("() => document.getElementById('drill-img').naturalWidth === 3 * 96 + 12")
    page.screenshot(path=str(artifacts / "results_evaluation.png"), full_page=True)
    # a new evaluation started from the page runs as a job and appears in the list
    page.select_option("#eval-gt", label="data")
    page.select_option("#eval-pred", label="data")
    page.fill("#eval-out", "eval-ui")
    page.click("#eval-btn")
    page.wait_for_selector("#result-list li[title='eval-ui']", timeout=60_000)
    page.click("#result-list li[title='runs/tiny']")
    page.wait_for_selector("#curves svg polyline")
    assert page.locator("#curves svg").count() == 2  # train_loss and val_dice over epochs
    page.screenshot(path=str(artifacts / "results_run.png"), full_page=True)
