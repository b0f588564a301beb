"""Security of the web app: only files under the roots, limits on uploads and images, clear 4xx answers.

Each refused request must get a 4xx JSON error (no traceback, no 500), and the server must keep serving.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest


def _bomb_png(h: int, w: int) -> bytes:
    """A PNG whose header claims ``h`` x ``w`` pixels with a tiny body (a decompression bomb)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def _refused(r, codes=(400, 403, 404, 413, 422)) -> str:
    assert r.status_code in codes, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


def _still_serving(client) -> None:
    assert client.get("/api/status").status_code == 200


@pytest.fixture()
def link_out(data_root):
    link = data_root / "images" / "leak.png"
    if not link.is_symlink():
        link.symlink_to(data_root.parent / "secret.txt")
    (data_root / "escape").unlink(missing_ok=True)
    (data_root / "escape").symlink_to(data_root.parent)
    yield link


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "images/../../secret.txt",
        "/etc/passwd",
        str("/" * 2 + "etc/passwd"),
        "%2e%2e/secret.txt",
        "%252e%252e%252fsecret.txt",
        "images\\..\\..\\secret.txt",
        "images/leak.png",
        "escape/secret.txt",
        "images/\x00scope.png",
    ],
)
def test_traversal_refused(client, link_out, path):
    err = _refused(client.post("/api/open", json={"root": 0, "path": path}), (403,))
    assert "secret" not in err or "outside" in err or ".." in err or "escape" in err or "%" in err
    _refused(client.get("/api/files", params={"root": 0, "path": path}), (403,))
    _refused(client.get("/api/dataset", params={"root": 0, "path": path}), (403,))
    _still_serving(client)


def test_encoded_traversal_in_raw_url(client, link_out):
    for raw in (
        "/api/files?root=0&path=%2e%2e%2f",
        "/api/files?root=0&path=..%2F..%2Fetc",
        "/api/dataset?root=0&path=%2F",
    ):
        _refused(client.get(raw), (403,))
    _refused(client.get("/api/files", params={"root": 7}), (404,))
    for raw in ("/static/%2e%2e/app.py", "/static/../app.py", "/static/..%2f..%2fconfig.py"):
        r = client.get(raw)
        assert r.status_code == 404 and b"create_app" not in r.content
    _still_serving(client)


def test_links_out_are_not_listed(client, link_out):
    names = [
        e["name"] for e in client.get("/api/files", params={"root": 0, "path": "images"}).json()["entries"]
    ]
    assert names == ["scope.png"]


def test_oversize_upload(client):
    big = b"\x89PNG" + b"\x00" * (1024 * 1024 + 10)  # limit 1 MiB
    assert "exceeds" in _refused(client.post("/api/upload?name=big.png", content=big), (413,))

    def chunks():  # no Content-Length: the stream is counted as it arrives
        for _ in range(20):
            yield b"\x00" * 100_000

    assert "exceeds" in _refused(client.post("/api/upload?name=big.png", content=chunks()), (413,))
    _still_serving(client)


def test_decompression_bomb_upload(client):
    err = _refused(client.post("/api/upload?name=bomb.png", content=_bomb_png(60000, 60000)), (400,))
    assert err.startswith("upload 'bomb.png'") and "pixels" in err and "bomb" in err
    _still_serving(client)


def test_upload_names_sanitised_and_checked(client):
    from scopeseg.io import write_image

    buf = io.BytesIO()
    import cv2

    ok, png = cv2.imencode(".png", np.full((8, 9, 3), 80, np.uint8))
    buf.write(png.tobytes())
    r = client.post("/api/upload", params={"name": "../../evil name<script>.png"}, content=buf.getvalue())
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "evil_name_script_.png" and r.json()["width"] == 9
    _refused(client.post("/api/upload?name=run.sh", content=b"echo hi"), (400,))
    _refused(client.post("/api/upload?name=x.png", content=b""), (400,))
    _refused(client.post("/api/upload?name=x.png", content=b"not an image at all"), (400,))
    assert write_image is not None
    _still_serving(client)


def test_malformed_requests(client):
    media = client.post("/api/open", json={"root": 0, "path": "images/scope.png"}).json()["id"]
    hdr = {"Content-Type": "application/json"}
    cases = [
        client.post("/api/segment", content=b"{not json", headers=hdr),
        client.post("/api/segment", content=b"[1, 2]", headers=hdr),
        client.post("/api/segment", json={"media": media, "model": "tiny", "box": "wide"}),
        client.post("/api/segment", json={"media": media, "model": "tiny", "box": [1, 2, 3]}),
        client.post("/api/segment", json={"media": media, "model": "tiny", "box": [50, 50, 10, 10]}),
        client.post("/api/segment", json={"media": media, "model": "tiny", "box": [0, 0, 5000, 10]}),
        client.post("/api/segment", json={"media": media, "model": "tiny", "box": [1, 1, 9, 9], "evil": 1}),
        client.post(
            "/api/segment", json={"media": media, "model": "tiny", "points": [[1, 2]], "labels": [5]}
        ),
        client.post(
            "/api/segment", json={"media": media, "model": "tiny", "points": [[1, 2, 3]], "labels": [1]}
        ),
        client.post("/api/segment", json={"media": media, "model": "tiny"}),
        client.post("/api/segment", json={"media": media, "frame": 3, "model": "tiny", "box": [1, 1, 9, 9]}),
        client.post("/api/segment", json={"media": "nope", "model": "tiny", "box": [1, 1, 9, 9]}),
        client.post("/api/segment", content=b'{"media": "x", "box": [NaN, 1, 2, 3]}', headers=hdr),
        client.get("/api/media/nope/frame/0"),
        client.get("/api/media/" + media + "/frame/99"),
        client.get("/api/jobs/nope"),
        client.get("/api/dataset/image", params={"root": 0, "path": "data", "image_id": "x"}),
        client.get("/api/dataset/image", params={"root": 0, "path": "data", "image_id": 999999}),
        client.post("/api/open", json={"root": 0, "path": "images"}),
        client.post("/api/open", json={"root": 0, "path": "images/missing.png"}),
        client.post("/api/open", headers={"Content-Length": "abc"}, content=b"{}"),
    ]
    for r in cases:
        _refused(r)
    _still_serving(client)


def test_unknown_model(client):
    media = client.post("/api/open", json={"root": 0, "path": "images/scope.png"}).json()["id"]
    err = _refused(
        client.post("/api/segment", json={"media": media, "model": "gpt", "box": [1, 1, 9, 9]}), (404,)
    )
    assert "unknown model 'gpt'" in err and "tiny" in err
    _refused(client.post("/api/embed", json={"media": media, "model": "../../x"}), (404,))
    _still_serving(client)


def test_token_required_when_set(data_root, tiny_prompt):
    from fastapi.testclient import TestClient

    from scopeseg.serve import ServeConfig, create_app

    app = create_app([data_root], ServeConfig(token="s" * 20), models={"tiny": tiny_prompt}, discover=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert _refused(c.get("/api/status"), (401,)) == "missing or wrong token"
        _refused(c.get("/api/status", headers={"X-Scopeseg-Token": "wrong"}), (401,))
        assert c.get("/api/status", headers={"X-Scopeseg-Token": "s" * 20}).status_code == 200
        page = c.get("/?token=" + "s" * 20)  # the link printed at start sets a cookie for the page's requests
        assert page.status_code == 200 and c.get("/api/status").status_code == 200


def test_listening_beyond_localhost_needs_flag_and_token():
    from scopeseg.errors import ConfigError
    from scopeseg.serve import ServeConfig

    ServeConfig().check_listen(False)
    ServeConfig(host="::1").check_listen(False)
    with pytest.raises(ConfigError, match="--allow-remote"):
        ServeConfig(host="0.0.0.0").check_listen(False)
    with pytest.raises(ConfigError, match="token"):
        ServeConfig(host="0.0.0.0").check_listen(True)
    ServeConfig(host="0.0.0.0", token="t" * 16).check_listen(True)
