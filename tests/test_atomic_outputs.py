"""Outputs appear whole or not at all: the shared output-folder helper, refusals, and kill -9 mid-run.

Every command that writes a folder writes it into a hidden temp sibling ``.OUT.partial-PID-...`` renamed into
place at the end (``io.output_dir``); an existing OUT is refused unless ``--overwrite``; a killed run leaves
OUT absent or as it was (byte for byte), and its leftover is recognised and tidied by the next writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scopeseg.cli import main
from scopeseg.errors import DataError
from scopeseg.io import check_output, leftovers, output_dir, write_image

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


# ---------------------------------------------------------------------------------------------- helpers
def tree(path: Path) -> dict[str, str]:
    """SHA-256 of every file under ``path`` (hidden ones too), by relative path; {} when absent."""
    if not path.exists():
        return {}
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def siblings(out: Path) -> list[str]:
    """Hidden siblings a writer of ``out`` made (``.OUT.partial-...`` / ``.OUT.replaced-...``)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def partial(out: Path) -> Path | None:
    found = [p for p in out.parent.glob(f".{out.name}.partial-*") if p.is_dir()]
    return found[0] if found else None


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def count(folder: Path | None, sub: str, pattern: str = "*") -> int:
    return 0 if folder is None or not (folder / sub).is_dir() else len(list((folder / sub).glob(pattern)))


def run_and_kill(argv: list[str], out: Path, ready, timeout: float = 240.0) -> bool:
    """Run ``scopeseg ARGV`` in a subprocess; SIGKILL it once ``ready(partial folder or None)``.

    Returns True when it was killed, False when it finished first (exit code 0 asserted).
    """
    p = subprocess.Popen(
        [sys.executable, "-m", "scopeseg.cli", "-q", *map(str, argv)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    try:
        while p.poll() is None:
            if ready(partial(out)):
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                return True
            assert time.monotonic() - t0 < timeout, "command neither reached the kill point nor ended"
            time.sleep(0.002)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode()
    assert p.returncode == 0, err
    return False


def assert_killed_state(out: Path, before: dict[str, str], killed: bool) -> None:
    """After a kill: OUT is as it was (absent or the earlier output); a finished run left a complete OUT."""
    if killed:
        assert tree(out) == before
        assert all(".partial-" in n for n in siblings(out)), siblings(out)  # recognisable leftovers only
    else:
        assert tree(out) != before and not siblings(out)


# ---------------------------------------------------------------------------------------------- the helper
def test_output_dir_appears_whole_and_refuses_an_existing_output(tmp_path):
    out = tmp_path / "out"
    with output_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.partial-") and not out.exists()
        (tmp / "a.txt").write_text("one")
    assert tree(out) == {"a.txt": hashlib.sha256(b"one").hexdigest()} and not siblings(out)
    before = tree(out)
    with pytest.raises(DataError, match="already exists .*--overwrite") as e:
        with output_dir(out):
            pass
    assert "\n" not in str(e.value) and str(out) in str(e.value)
    with pytest.raises(RuntimeError), output_dir(out, overwrite=True) as tmp:  # failure: old output stays
        (tmp / "b.txt").write_text("two")
        raise RuntimeError("boom")
    assert tree(out) == before and not siblings(out)
    with output_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(tree(out)) == ["b.txt"] and not siblings(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_output(empty)  # an empty folder counts as absent


def test_leftovers_of_a_killed_writer_are_recognised_and_tidied(tmp_path):
    out, pid = tmp_path / "out", dead_pid()
    stale = tmp_path / f".out.partial-{pid}-abcd"
    (stale / "masks").mkdir(parents=True)
    (stale / "masks" / "x.png").write_bytes(b"half")
    live = tmp_path / f".out.partial-{os.getpid()}-live"  # a writer that is still running: left alone
    live.mkdir()
    assert leftovers(out)["partial"] == [stale]
    with output_dir(out) as tmp:
        (tmp / "ok").write_text("1")
    assert not stale.exists() and live.exists() and tree(out) == {"ok": hashlib.sha256(b"1").hexdigest()}
    live.rmdir()
    # killed between the two renames of a swap: the earlier output is put back, never lost
    before = tree(out)
    out.rename(tmp_path / f".out.replaced-{pid}-ef01")
    with pytest.raises(DataError, match="already exists"):
        check_output(out)
    assert tree(out) == before and not siblings(out)


def test_resume_adopts_the_partial_folder_of_a_killed_run(tmp_path):
    out, pid = tmp_path / "out", dead_pid()
    stale = tmp_path / f".out.partial-{pid}-abcd"
    stale.mkdir()
    (stale / "done.npz").write_bytes(b"case 1")
    (stale / f".x.npz.partial-{pid}-zz.npz.tmp").write_bytes(b"half")  # a file the killed run was writing
    with output_dir(out, resume=True) as tmp:
        assert sorted(p.name for p in tmp.iterdir()) == ["done.npz"]
        (tmp / "new.npz").write_bytes(b"case 2")
    assert sorted(tree(out)) == ["done.npz", "new.npz"] and not siblings(out)


# ---------------------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A tiny untrained checkpoint and a folder of 40 small images."""
    from scopeseg.models import create_model, save_pretrained

    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    m = create_model("unet-effb0", pretrained=False, classes=["tool"]).eval()
    m.config.update(input_size=[32, 32], threshold=0.5)
    ckpt = save_pretrained(m, root / "model")
    rng = np.random.default_rng(0)
    for i in range(40):
        write_image(root / "imgs" / f"{i:03d}.png", (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    return ckpt, root / "imgs"


def test_predict_killed_early_middle_late_leaves_the_earlier_output_byte_identical(unet, tmp_path):
    ckpt, imgs = unet
    out = tmp_path / "out"
    assert main(["-q", "predict", str(ckpt), str(imgs), str(out), "batch_size=8", "overlays=false"]) == 0
    before = tree(out)
    assert "results.json" in before and len([k for k in before if k.startswith("masks/")]) == 40
    argv = ["predict", ckpt, imgs, out, "batch_size=1", "--overwrite"]
    points = {
        "early": lambda d: d is not None,
        "middle": lambda d: count(d, "masks") >= 20,
        "late": lambda d: count(d, "overlays") >= 39,
    }
    kills = []
    for ready in points.values():
        killed = run_and_kill(argv, out, ready)
        kills.append(killed)
        assert_killed_state(out, before, killed)
        if not killed:  # finished first: a complete new output; make the earlier one again
            assert main(["-q", "predict", str(ckpt), str(imgs), str(out), "batch_size=8", "overlays=false",
                         "--overwrite"]) == 0  # fmt: skip
            before = tree(out)
    assert kills[1], "the kill in the middle came too late: the test did not test a kill"
    # a refused command (bad input) into the existing OUT changes nothing and tidies the leftovers
    assert main(["-q", "predict", str(ckpt), str(tmp_path / "missing.png"), str(out), "--overwrite"]) == 2
    assert main(["-q", "predict", str(ckpt), str(imgs), str(out)]) == 2  # exists, no --overwrite
    assert tree(out) == before and not siblings(out)


def test_predict_killed_into_a_fresh_folder_leaves_nothing(unet, tmp_path):
    ckpt, imgs = unet
    out = tmp_path / "fresh"
    killed = run_and_kill(
        ["predict", ckpt, imgs, out, "batch_size=1"], out, lambda d: count(d, "masks") >= 10
    )
    if killed:
        assert not out.exists()
    else:
        assert (out / "results.json").is_file()
    assert main(["-q", "predict", str(ckpt), str(imgs), str(out), "--overwrite"]) == 0
    assert (out / "results.json").is_file() and not siblings(out)
    assert not [p for p in out.rglob("*") if ".partial-" in p.name or p.suffix == ".tmp"]


# ---------------------------------------------------------------------------------------------- convert
def _mask_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        write_image(root / "images" / f"f{i:04d}.png", (rng.random((24, 32, 3)) * 255).astype(np.uint8))
        mask = np.zeros((24, 32), np.uint8)
        mask[2 + i % 10 : 12 + i % 10, 4:20] = 1
        write_image(root / "masks" / f"f{i:04d}.png", mask)
    return root


def test_convert_killed_and_refused_leave_the_earlier_output_byte_identical(tmp_path):
    src = _mask_folder(tmp_path / "src", 400)
    out = tmp_path / "coco"
    assert main(["-q", "convert", str(src), str(out), "from=mask-folder"]) == 0
    before = tree(out)
    assert "annotations.json" in before
    argv = ["convert", src, out, "from=mask-folder", "--overwrite"]
    for i, ready in enumerate((lambda d: count(d, "images") >= 50, lambda d: count(d, "images") >= 390)):
        killed = run_and_kill(argv, out, ready)
        assert killed or i > 0, "the first kill came too late: the test did not test a kill"
        assert_killed_state(out, before, killed)
        before = tree(out)
    (src / "masks" / "f0003.png").unlink()  # bad input: an image without its mask
    assert main(["-q", "convert", str(src), str(out), "from=mask-folder", "--overwrite"]) == 2
    assert tree(out) == before and all(".partial-" in n for n in siblings(out))
    (src / "images" / "f0003.png").unlink()
    assert main(["-q", "convert", str(src), str(out), "from=mask-folder", "--overwrite"]) == 0
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 399 and not siblings(out)


# ---------------------------------------------------------------------------------------------- promptable
@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    """A tiny LiteMedSAM checkpoint, 12 challenge cases and a prompts JSON over 30 images."""
    from scopeseg.models.checkpoints import save_pretrained
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    root = tmp_path_factory.mktemp("sam")
    torch.manual_seed(0)
    ckpt = save_pretrained(create_model("litemedsam", pretrained=False, **TINY_ARCH).eval(), root / "model")
    rng = np.random.default_rng(2)
    (root / "cases").mkdir()
    prompts = []
    for i in range(30):
        img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        write_image(root / "imgs" / f"i{i:02d}.png", img)
        prompts.append({"file_name": f"i{i:02d}.png", "boxes": [[5, 5, 40, 30], [20, 10, 60, 44]]})
        if i < 12:
            np.savez(root / "cases" / f"2DBox_c{i:02d}.npz", imgs=img, boxes=np.array([[5, 5, 40, 30]]))
    (root / "prompts.json").write_text(json.dumps(prompts))
    return ckpt, root


def test_segment_killed_and_refused_leave_the_earlier_output_byte_identical(sam, tmp_path):
    ckpt, root = sam
    out = tmp_path / "seg"
    base = ["segment", ckpt, root / "imgs", out, f"prompts={root / 'prompts.json'}"]
    assert main(["-q", *map(str, base)]) == 0
    before = tree(out)
    assert len([k for k in before if k.startswith("masks/")]) == 30
    for i, ready in enumerate((lambda d: count(d, "masks") >= 3, lambda d: count(d, "masks") >= 28)):
        killed = run_and_kill([*base, "--overwrite"], out, ready)
        assert killed or i > 0, "the first kill came too late: the test did not test a kill"
        assert_killed_state(out, before, killed)
        before = tree(out)
    # a box outside its image: refused before anything runs, the earlier output untouched
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"file_name": "i00.png", "boxes": [[5, 5, 400, 30]]}]))
    assert (
        main(["-q", "segment", str(ckpt), str(root / "imgs"), str(out), f"prompts={bad}", "--overwrite"]) == 2
    )
    assert tree(out) == before and all(".partial-" in n for n in siblings(out))


def test_medsam_infer_killed_is_resumable_and_ends_like_a_clean_run(sam, tmp_path):
    ckpt, root = sam
    cases, ref, out = root / "cases", tmp_path / "ref", tmp_path / "segs"
    assert main(["-q", "medsam-infer", str(ckpt), str(cases), str(ref)]) == 0
    killed = run_and_kill(["medsam-infer", ckpt, cases, out], out, lambda d: count(d, ".", "*.npz") >= 5)
    assert killed, "the kill came too late: the test did not test a kill"
    if killed:
        assert not out.exists()  # the output appears only when every case is done
        part = partial(out)
        rows = dict(r.split(",") for r in (part / "efficiency.csv").read_text().splitlines()[1:])
        done = {name: (part / name).read_bytes() for name in rows}  # every recorded case is on disk
        assert len(done) >= 4
        assert main(["-q", "medsam-infer", str(ckpt), str(cases), str(out), "--resume"]) == 0
        assert all((out / name).read_bytes() == data for name, data in done.items())  # skipped, not redone
        again = dict(r.split(",") for r in (out / "efficiency.csv").read_text().splitlines()[1:])
        assert len(again) == 12 and all(again[k] == v for k, v in rows.items())
    assert sorted(tree(out)) == sorted(tree(ref)) and not siblings(out)
    for name in tree(ref):
        if name.endswith(".npz"):
            with np.load(ref / name) as a, np.load(out / name) as b:
                assert np.array_equal(a["segs"], b["segs"])
    before = tree(out)
    assert main(["-q", "medsam-infer", str(ckpt), str(cases), str(out), "--resume"]) == 0  # nothing to do
    assert tree(out) == before
    assert main(["-q", "medsam-infer", str(ckpt), str(cases), str(out)]) == 2  # exists: refused
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "zz.npz", img=np.zeros((4, 4)))
    assert main(["-q", "medsam-infer", str(ckpt), str(bad), str(out), "--overwrite"]) == 2
    assert tree(out) == before and not siblings(out)


def test_write_json_streams_the_same_bytes_as_json_dumps(tmp_path):
    """Compact JSON is written in pieces (long lists in batches); the file equals ``json.dumps`` exactly."""
    import json

    import numpy as np

    from scopeseg.io import write_json

    anns = [
        {"id": i, "bbox": [i, 2.5, 3, 4], "segmentation": {"size": [4, 5], "counts": f"a{i}é"}}
        for i in range(1300)
    ]
    cases = [
        {"images": [], "annotations": anns, "categories": {"x": [1, None, True, float("nan")]}, "info": {}},
        list(range(513)),
        [],
        {"n": np.int64(3), "f": np.float32(0.5), "a": np.arange(3), "t": (1, 2)},
        {1: "int keys fall back to one piece"},
        "plain",
    ]
    for k, obj in enumerate(cases):
        path = write_json(tmp_path / f"{k}.json", obj)
        expected = json.dumps(
            obj, separators=(",", ":"), default=lambda o: o.tolist() if hasattr(o, "tolist") else o.item()
        )
        assert path.read_text(encoding="utf-8") == expected
    assert json.loads((tmp_path / "0.json").read_text(encoding="utf-8"))["annotations"][1299]["id"] == 1299
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{k}.json" for k in range(len(cases))
    ]  # no temp left
