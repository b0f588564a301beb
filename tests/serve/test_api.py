"""The web app's JSON API through Starlette's TestClient: files, media, prompts, jobs, save, pages' data."""

from __future__ import annotations

import numpy as np

from scopeseg.data import rle as rle_ops


def _open(client, path="images/scope.png"):
    r = client.post("/api/open", json={"root": 0, "path": path})
    assert r.status_code == 200, r.text
    return r.json()


def test_index_and_assets_are_local(client):
    r = client.get("/")
    assert r.status_code == 200 and "scopeseg" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        a = client.get(asset)
        assert a.status_code == 200 and len(a.content) > 1000
        text = a.text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace name, never fetched
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_status_and_listing(client):
    s = client.get("/api/status").json()
    assert [m["name"] for m in s["models"]] == ["tiny"] and s["models"][0]["family"] == "promptable"
    names = {e["name"]: e["kind"] for e in client.get("/api/files", params={"root": 0}).json()["entries"]}
    assert names == {"data": "dataset", "images": "folder", "videos": "folder"}


def test_box_mask_equals_prompt_predictor(client, tiny_prompt, data_root):
    from scopeseg.io import read_image

    media = _open(client)
    assert (media["height"], media["width"], media["frames"]) == (96, 128, 1)
    box = [20.5, 25.0, 90.0, 80.0]
    r = client.post("/api/segment", json={"media": media["id"], "frame": 0, "model": "tiny", "box": box})
    assert r.status_code == 200, r.text
    d = r.json()
    got = rle_ops.decode(d["objects"]["1"]["rle"]).astype(bool)
    tiny_prompt.set_image(read_image(data_root / "images" / "scope.png"))
    want = tiny_prompt.predict(boxes=[box]).masks[0]
    np.testing.assert_array_equal(got, want)
    assert d["overlay"].startswith("data:image/png;base64,")
    assert d["timing"]["cached_embedding"] is False
    # a negative point on the same cached embedding changes the prompt and matches the predictor again
    pts, labels = [[50.0, 50.0]], [0]
    d2 = client.post(
        "/api/segment",
        json={"media": media["id"], "model": "tiny", "box": box, "points": pts, "labels": labels},
    ).json()
    assert d2["timing"]["cached_embedding"] is True
    res2 = tiny_prompt.predict(boxes=[box], points=[pts], point_labels=[labels])
    np.testing.assert_array_equal(rle_ops.decode(d2["objects"]["1"]["rle"]).astype(bool), res2.masks[0])
    # refine: the object's previous low-res logits go back in as the mask prompt (SAM-style)
    d3 = client.post(
        "/api/segment",
        json={
            "media": media["id"],
            "model": "tiny",
            "box": box,
            "points": pts,
            "labels": labels,
            "refine": True,
        },
    ).json()
    want3 = tiny_prompt.predict(
        boxes=[box], points=[pts], point_labels=[labels], mask_input=res2.low_res_logits[:1]
    ).masks[0]
    np.testing.assert_array_equal(rle_ops.decode(d3["objects"]["1"]["rle"]).astype(bool), want3)


def test_propagate_save_and_reload(client, data_root):
    media = _open(client, "videos/discs.mp4")
    assert media["kind"] == "video" and media["frames"] == 6
    r = client.post(
        "/api/segment", json={"media": media["id"], "frame": 0, "model": "tiny", "box": [30, 30, 80, 70]}
    )
    assert r.status_code == 200
    job = client.post("/api/jobs/propagate", json={"media": media["id"], "model": "tiny"}).json()
    app = client.app
    done = app.state.server.jobs.wait(job["id"], 60)
    assert done.status == "done", done.error
    assert (done.done, done.total) == (6, 6)
    jobs = client.get("/api/jobs").json()["jobs"]
    assert jobs[0]["id"] == job["id"] and jobs[0]["status"] == "done"
    # state is server-side: a fresh page finds the media and its labels
    assert client.get(f"/api/media/{media['id']}").json()["labelled"][0] == 0
    # save as a canonical COCO-video data set, never over something that exists
    out = client.post(f"/api/media/{media['id']}/save", json={"root": 0, "path": "labels/discs"})
    assert out.status_code == 200, out.text
    from scopeseg.data.coco import load_dataset

    ds = load_dataset(data_root / "labels" / "discs")
    assert len(ds.videos) == 1 and len(ds.images) == out.json()["frames"] >= 1
    first = ds.frames_by_video[next(iter(ds.videos))][0]
    assert ds.images[first]["frame_index"] == 0
    assert ds.annotations[ds.anns_by_image[first][0]]["track_id"] == 1
    again = client.post(f"/api/media/{media['id']}/save", json={"root": 0, "path": "labels/discs"})
    assert again.status_code == 400 and "already exists" in again.json()["error"]
    over = client.post(f"/api/media/{media['id']}/save", json={"root": 0, "path": "videos"})
    assert over.status_code in (400, 403)


def test_cancel_job(client):
    import threading

    started, release = threading.Event(), threading.Event()

    def work(job):
        for i in range(100):
            job.progress(i, 100)
            started.set()
            release.wait(0.05)
        return {}

    jobs = client.app.state.server.jobs
    job = jobs.start("test", "loop", work)
    started.wait(5)
    assert client.post(f"/api/jobs/{job.id}/cancel").json()["message"] == "cancelling"
    assert jobs.wait(job.id, 10).status == "cancelled"


def test_data_page_api(client):
    ds = client.get("/api/datasets").json()["datasets"]
    assert {"root": 0, "path": "data", "kind": "dataset", "name": "data"} in ds
    d = client.get("/api/dataset", params={"root": 0, "path": "data"}).json()
    assert d["images"] == 24 and [c["name"] for c in d["categories"]] == ["tool"]
    vid = d["videos"][1]["id"]
    fr = client.get("/api/dataset/frames", params={"root": 0, "path": "data", "video": vid}).json()
    assert fr["total"] == 6 and [it["frame_index"] for it in fr["items"]] == list(range(6))
    img = client.get(
        "/api/dataset/image", params={"root": 0, "path": "data", "image_id": fr["items"][0]["id"]}
    )
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    v = client.get("/api/dataset/validate", params={"root": 0, "path": "data"}).json()
    assert v["ok"] is True and v["errors"] == 0


def test_results_page_api(client, data_root, tiny_prompt):
    """Evaluate a predicted copy of the data set through a job, then open it with per-item drill-down."""
    import shutil

    from scopeseg.data.coco import load_dataset

    pred = data_root / "pred"
    if not pred.exists():
        ds = load_dataset(data_root / "data")
        for a in list(ds.annotations.values())[::2]:  # half the masks lost: per-item Dice differs
            a["segmentation"] = rle_ops.encode(np.zeros((64, 96), bool))
        for a in ds.annotations.values():
            a["score"] = 1.0
        shutil.copytree(data_root / "data" / "frames", pred / "frames")
        ds.root = pred
        ds.save(pred)
    r = client.post(
        "/api/jobs/evaluate",
        json={
            "gt": {"root": 0, "path": "data"},
            "pred": {"root": 0, "path": "pred"},
            "out": {"root": 0, "path": "eval"},
        },
    )
    assert r.status_code == 200, r.text
    job = client.app.state.server.jobs.wait(r.json()["id"], 60)
    assert job.status == "done", job.error
    found = client.get("/api/results").json()["results"]
    assert {"root": 0, "path": "eval", "kind": "evaluation", "name": "eval"} in found
    ev = client.get("/api/evaluation", params={"root": 0, "path": "eval"}).json()
    assert ev["drilldown"] is True and len(ev["items"]) == 24
    dice = sorted(it["dice"] for it in ev["items"])
    assert dice[0] == 0.0 and dice[-1] == 1.0
    worst = min(ev["items"], key=lambda it: it["dice"])["item"]
    png = client.get("/api/evaluation/item", params={"root": 0, "path": "eval", "item": worst})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_semantic_and_instance_models_from_the_roots(data_root, tiny_prompt):
    """Checkpoint folders under a root are offered through the predictor registry and run on a frame."""
    import torch
    from fastapi.testclient import TestClient

    from scopeseg.inference.instance import InstancePredictor
    from scopeseg.inference.semantic import Predictor
    from scopeseg.io import read_image
    from scopeseg.models.registry import create_model, model_entry
    from scopeseg.serve import ServeConfig, create_app

    torch.manual_seed(0)
    for name, folder in (("unet-lite0", "unet"), ("mask2former-lite0", "m2f")):
        if not (data_root / "models" / folder).is_dir():
            create_model(name, **model_entry(name).tiny).save_pretrained(data_root / "models" / folder)
    app = create_app([data_root], ServeConfig(), models={"tiny": tiny_prompt})
    img = read_image(data_root / "images" / "scope.png")
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        models = {m["name"]: m for m in c.get("/api/status").json()["models"]}
        assert models["models/unet"]["family"] == "semantic" and models["models/m2f"]["family"] == "instance"
        assert models["models/m2f"]["editable_classes"] is True
        media = c.post("/api/open", json={"root": 0, "path": "images/scope.png"}).json()["id"]

        d = c.post("/api/predict", json={"media": media, "model": "models/unet"}).json()
        want = Predictor.from_pretrained(data_root / "models" / "unet").predict([img])[0]
        got = np.zeros_like(want, dtype=bool)
        for o in d["objects"].values():
            got |= rle_ops.decode(o["rle"]).astype(bool)
        np.testing.assert_array_equal(got, want == 1)

        d = c.post(
            "/api/predict", json={"media": media, "model": "models/m2f", "classes": ["instrument"]}
        ).json()
        inst = InstancePredictor.from_pretrained(data_root / "models" / "m2f").predict([img])[0]
        models = {m["name"]: m for m in c.get("/api/status").json()["models"]}
        assert models["models/m2f"]["classes"] == ["instrument"] and models["models/m2f"]["loaded"] is True
        assert len(d["objects"]) == min(len(inst), 255)
        for o, i in zip(d["objects"].values(), inst):
            np.testing.assert_array_equal(rle_ops.decode(o["rle"]).astype(bool), i.mask)
        # renaming the classes of a model that is not text-conditioned: a clear 4xx, not a crash
        r = c.post("/api/predict", json={"media": media, "model": "models/m2f", "classes": ["hook"]})
        assert r.status_code == 400 and "text-conditioned" in r.json()["error"]
        r = c.post("/api/predict", json={"media": media, "model": "tiny"})
        assert r.status_code == 400 and "promptable" in r.json()["error"]

        # a folder predicted in the background into a new folder under the root
        job = c.post(
            "/api/jobs/predict",
            json={
                "model": "models/unet",
                "input": {"root": 0, "path": "images"},
                "out": {"root": 0, "path": "pred-images"},
            },
        ).json()
        done = app.state.server.jobs.wait(job["id"], 60)
        assert done.status == "done", done.error
        assert (done.done, done.total) == (1, 1)
        assert (data_root / "pred-images" / "predicted" / "annotations.json").is_file()
        again = c.post(
            "/api/jobs/predict",
            json={
                "model": "models/unet",
                "input": {"root": 0, "path": "images"},
                "out": {"root": 0, "path": "pred-images"},
            },
        )
        assert again.status_code == 400 and "already exists" in again.json()["error"]


def test_dataset_video_opened_corrected_and_saved_elsewhere(client, data_root):
    """A data set's video opens with its annotations as labels; saving goes to a new folder, never into it."""
    from scopeseg.data.coco import load_dataset

    gt = load_dataset(data_root / "data")
    vid = sorted(gt.videos)[1]
    media = client.post("/api/open/dataset", json={"root": 0, "path": "data", "video": vid}).json()
    assert media["frames"] == 6 and media["objects"] == [
        {"id": 1, "name": "tool", "color": media["objects"][0]["color"]}
    ]
    labels = client.get(f"/api/media/{media['id']}/labels/2").json()["objects"]
    want = gt.mask(gt.image_anns(gt.frames_by_video[vid][2])[0])
    np.testing.assert_array_equal(rle_ops.decode(labels["1"]["rle"]).astype(bool), want.astype(bool))
    into = client.post(f"/api/media/{media['id']}/save", json={"root": 0, "path": "data/fixed"})
    assert into.status_code == 403 and "source" in into.json()["error"]
    # correct frame 0 with a box, then save the video's labels as a new data set
    client.post("/api/segment", json={"media": media["id"], "model": "tiny", "box": [10, 10, 60, 50]})
    out = client.post(f"/api/media/{media['id']}/save", json={"root": 0, "path": "fixed-v1"})
    assert out.status_code == 200, out.text
    saved = load_dataset(data_root / "fixed-v1")
    assert len(saved.images) == 6 and [c["name"] for c in saved.categories.values()] == ["tool"]
    frame2 = saved.frames_by_video[next(iter(saved.videos))][2]
    np.testing.assert_array_equal(saved.mask(saved.image_anns(frame2)[0]).astype(bool), want.astype(bool))
    assert saved.image_anns(saved.frames_by_video[next(iter(saved.videos))][0])[0]["source"] == "prompt"


def test_overlay_png_colours_and_outline():
    import io

    from PIL import Image

    from scopeseg.serve.render import object_color, overlay_png

    lab = np.zeros((40, 50), np.int32)
    lab[10:30, 5:20] = 1
    lab[5:15, 30:45] = 200  # ids above 127 wrap around the palette
    rgba = np.array(Image.open(io.BytesIO(overlay_png(lab))).convert("RGBA"))
    assert rgba[0, 0, 3] == 0 and rgba[20, 12, 3] == 110 and rgba[10, 12, 3] == 255  # outside, fill, outline
    assert tuple(rgba[20, 12, :3]) == object_color(1)
    assert tuple(rgba[10, 37, :3]) == object_color((200 - 1) % 127 + 1) and rgba[10, 37, 3] == 110


def test_video_upload_cut_at_max_frames(client, data_root, app):
    body = (data_root / "videos" / "discs.mp4").read_bytes()
    media = client.post("/api/upload?name=my clip.mp4", content=body).json()
    assert (media["kind"], media["name"], media["frames"], media["truncated"]) == (
        "video",
        "my_clip.mp4",
        6,
        False,
    )
    app.state.server.cfg.max_frames = 4
    media = client.post("/api/upload?name=clip.mp4", content=body).json()
    assert (media["frames"], media["truncated"]) == (4, True)
    frame = client.get(f"/api/media/{media['id']}/frame/3")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"


def test_upload_folder_removed_at_shutdown(data_root, tiny_prompt):
    from fastapi.testclient import TestClient

    from scopeseg.serve import create_app

    app = create_app([data_root], models={"tiny": tiny_prompt}, discover=False)
    uploads = app.state.server.uploads
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/status").status_code == 200 and uploads.is_dir()
    assert not uploads.exists()
