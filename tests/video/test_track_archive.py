"""``scopeseg track`` over an archive (a folder of videos) as an archive job: runner=local and runner=ray give the
same files; per-video prompts from a sidecar JSON; a corrupt video fails alone (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from video_testutil import square_frames

from scopeseg.cli import main
from scopeseg.video_io import write_video


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    for i in range(2):
        frames, _ = square_frames(5, size=(48, 64), step=2 + i)
        write_video(root / f"vid{i}.mp4", frames, fps=10)
    # vid1 has its own prompts (object 7); vid0 takes the command's prompt=
    (root / "vid1.prompts.json").write_text(
        json.dumps(
            {"objects": {"7": "square"}, "prompts": [{"frame": 0, "object": 7, "box": [4, 18, 24, 38]}]}
        )
    )
    (root / "zz_broken.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    return root


def test_track_archive_local_sidecar_prompts_and_a_corrupt_video(
    archive, tiny_memory_model, tmp_path, capsys
):
    ckpt = tiny_memory_model.save_pretrained(tmp_path / "memory")
    out = tmp_path / "out"
    code = main(["-q", "track", str(ckpt), str(archive), str(out), "prompt=f0:box:4,18,24,38", "threads=1"])
    printed = capsys.readouterr().out
    assert code == 3 and "failed: 1" in printed
    units = json.loads((out / "manifest.json").read_text())["units"]
    assert units["zz_broken"]["status"] == "failed"
    assert {k for k, u in units.items() if u["status"] == "done"} == {"vid0", "vid1"}
    assert units["vid0"]["result"]["frames"] == 5 and units["vid1"]["result"]["objects"] == 1
    cats0 = json.loads((out / "vid0" / "predicted" / "annotations.json").read_text())
    cats1 = json.loads((out / "vid1" / "predicted" / "annotations.json").read_text())
    assert {a["track_id"] for a in cats0["annotations"]} == {1}
    assert {a["track_id"] for a in cats1["annotations"]} == {7}  # the sidecar's object
    assert [c["name"] for c in cats1["categories"]] == ["square"]
    # a rerun skips the finished videos and retries the broken one (still failing)
    assert main(["-q", "track", str(ckpt), str(archive), str(out), "prompt=f0:box:4,18,24,38"]) == 3
    assert "done_before: 2" in capsys.readouterr().out


def test_track_archive_without_prompts_is_one_line(archive, tiny_memory_model, tmp_path, capsys):
    ckpt = tiny_memory_model.save_pretrained(tmp_path / "memory")
    assert main(["-q", "track", str(ckpt), str(archive), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prompts for 2 video(s)" in err[0]
    assert not (tmp_path / "out").exists()


def test_track_archive_on_ray_equals_local(archive, tiny_memory_model, tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'scopeseg[ray]')")
    ckpt = tiny_memory_model.save_pretrained(tmp_path / "memory")
    a, b = tmp_path / "local", tmp_path / "ray"
    args = [str(ckpt), str(archive)]
    assert main(["-q", "track", *args, str(a), "prompt=f0:box:4,18,24,38", "threads=1"]) == 3
    assert (
        main(
            ["-q", "track", *args, str(b), "prompt=f0:box:4,18,24,38", "runner=ray", "workers=1", "threads=1"]
        )
        == 3
    )
    assert "runner: ray (1 worker)" in capsys.readouterr().out
    ta, tb = _tree(a), _tree(b)
    assert len([k for k in ta if k.endswith("results.json")]) == 2
    assert ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta)
