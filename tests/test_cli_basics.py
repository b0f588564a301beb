"""CLI shell: --help/--version, data commands (validate/info/split/merge/filter), one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scopeseg import __version__
from scopeseg.cli import main
from scopeseg.data.coco import CocoDataset
from scopeseg.io import write_image

SCRIPT = Path(sys.executable).parent / "scopeseg"


def tiny_data(root: Path, videos: int = 3, frames: int = 3) -> Path:
    """Videos of 12x16 frames, one 'tool' box per frame (and a 'blob' on the first frame of each video)."""
    ds = CocoDataset(root=root)
    ds.add_category("tool", color=(0, 255, 0))
    ds.add_category("blob")
    for v in range(videos):
        vid = ds.add_video(f"case{v}")
        for f in range(frames):
            name = f"frames/v{v}/{f:03d}.png"
            write_image(root / name, np.full((12, 16, 3), 100, np.uint8))
            iid = ds.add_image(name, 12, 16, video_id=vid, frame_index=f)
            m = np.zeros((12, 16), bool)
            m[2 : 6 + f, 3:9] = True
            ds.add_annotation(iid, 1, m)
            if f == 0:
                b = np.zeros((12, 16), bool)
                b[8:11, 10:15] = True
                ds.add_annotation(iid, 2, b)
    ds.save(root)
    return root


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for w in words:
        assert w in lines[0]


# ---------------------------------------------------------------------------------------------- shell
@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_help_and_version_subprocess():
    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in ("validate", "info", "split", "merge", "filter"):
        assert f"    {cmd}" in out.stdout
    ver = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=120)
    assert ver.returncode == 0 and ver.stdout.strip() == f"scopeseg {__version__}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_missing_file_subprocess_one_line(tmp_path):
    out = subprocess.run(
        [str(SCRIPT), "validate", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120
    )
    assert_one_line_error(out.returncode, out.stderr, str(tmp_path / "nope"), "not found")
    assert out.stdout == ""


def test_no_command_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and "validate" in out


@pytest.mark.parametrize(
    "argv, words",
    [(["nosuchcommand"], ["invalid choice"]), (["validate"], ["required"]), (["info", "x", "--bogus"], ["--bogus"]),
     (["split", "DATA", "OUT", "fractions=train:0.5"], ["fractions", "train:0.5"])],
)  # fmt: skip
def test_usage_errors_one_line(capsys, tmp_path, argv, words):
    data = tiny_data(tmp_path / "d", 1, 1)
    argv = [str(data) if a == "DATA" else str(tmp_path / "o.json") if a == "OUT" else a for a in argv]
    assert_one_line_error(*run_cli(capsys, *argv)[::2], *words)


def test_malformed_json_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    for cmd in ("validate", "info"):
        code, out, err = run_cli(capsys, cmd, bad)
        assert_one_line_error(code, err, str(bad), "malformed JSON")


def test_unknown_preset_and_key_via_config(capsys):
    code, _, err = run_cli(capsys, "train", "preset=unet-efb2")
    assert_one_line_error(code, err, "unknown preset 'unet-efb2'", "unet-effb2")
    code, _, err = run_cli(capsys, "train", "preset=unet-effb2", "epocs=3")
    assert_one_line_error(code, err, "'epocs'", "epochs")
    code, _, err = run_cli(capsys, "train", "preset=unet-effb2", "epochs=three")
    assert_one_line_error(code, err, "'epochs'")


# ---------------------------------------------------------------------------------------------- validate
def test_validate_clean_exit_0(capsys, tmp_path):
    code, out, err = run_cli(capsys, "validate", tiny_data(tmp_path))
    assert code == 0 and "no problems" in out and err == ""


def test_validate_problems_exit_2_table_and_lines(capsys, tmp_path):
    data = tiny_data(tmp_path)
    raw = json.loads((data / "annotations.json").read_text())
    raw["annotations"][0]["bbox"] = [0, 0, 1, 1]
    raw["annotations"][1]["category_id"] = 77
    raw["images"][4]["frame_index"] = 0
    (data / "annotations.json").write_text(json.dumps(raw))
    (data / raw["images"][8]["file_name"]).unlink()
    code, out, _ = run_cli(capsys, "validate", data, "--json", tmp_path / "report.json", "--max-lines", "3")
    assert code == 2
    for c in ("bbox_mismatch", "unknown_category", "frame_index_duplicate", "image_missing"):
        assert c in out
    problem_lines = [ln for ln in out.splitlines() if ln.startswith(("error ", "warning "))]
    assert len(problem_lines) == 3 and "more" in out
    report = json.loads((tmp_path / "report.json").read_text())["report"]
    assert report["ok"] is False and report["counts"]["bbox_mismatch"] == 1
    assert {p["code"] for p in report["problems"]} >= {"bbox_mismatch", "unknown_category", "image_missing"}
    bad = next(p for p in report["problems"] if p["code"] == "unknown_category")
    assert bad["image_id"] == 1 and bad["annotation_id"] == 2 and bad["file"].endswith("annotations.json")


def test_validate_fix_writes_clean_copy(capsys, tmp_path):
    data = tiny_data(tmp_path)
    raw = json.loads((data / "annotations.json").read_text())
    raw["annotations"][0]["bbox"] = [0, 0, 1, 1]
    raw["annotations"].append(dict(raw["annotations"][2]))  # exact duplicate
    raw["images"][2]["frame_index"] = 9  # gap
    (data / "annotations.json").write_text(json.dumps(raw))
    out_json = data / "fixed.json"
    code, out, _ = run_cli(capsys, "validate", data, "--fix", out_json, "--json", tmp_path / "r.json")
    assert code == 0, out
    assert "fixed bbox_mismatch" in out
    assert run_cli(capsys, "validate", out_json)[0] == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["report"]["ok"] is False and r["after_fix"]["ok"] is True and len(r["fix_log"]) >= 3
    # a copy outside the images' folder cannot point at them: refused with one line
    code, _, err = run_cli(capsys, "validate", data, "--fix", tmp_path / "elsewhere" / "x.json")
    assert_one_line_error(code, err, "outside")


# ---------------------------------------------------------------------------------------------- info / split / merge / filter
def test_info_text_and_json(capsys, tmp_path):
    data = tiny_data(tmp_path)
    code, out, _ = run_cli(capsys, "info", data)
    assert code == 0 and "12 annotations" in out and "case2" in out and "12x16" in out and "█" in out
    code, out, _ = run_cli(capsys, "info", data, "--json")
    s = json.loads(out)
    assert s["images"] == 9 and s["annotations"] == 12
    assert {c["name"]: c["annotations"] for c in s["categories"]} == {"tool": 9, "blob": 3}
    assert s["image_sizes"] == {"12x16": 9} and sum(s["mask_area"]["counts"]) == 12
    assert run_cli(capsys, "info", data, "--json", tmp_path / "i.json")[0] == 0
    assert json.loads((tmp_path / "i.json").read_text()) == s


def test_split_merge_filter(capsys, tmp_path):
    data = tiny_data(tmp_path / "a", videos=4)
    out = tmp_path / "a" / "split.json"
    code, text, _ = run_cli(capsys, "split", data, out, "fractions=train=0.5,val=0.25,test=0.25", "seed=0")
    assert code == 0 and "written" in text
    ds = CocoDataset.load(out)
    by_video = {}
    for im in ds.images.values():
        by_video.setdefault(im["video_id"], set()).add(im["split"])
    assert all(len(s) == 1 for s in by_video.values())
    assert sorted(s.pop() for s in by_video.values()) == ["test", "train", "train", "val"]
    assert (
        run_cli(
            capsys,
            "split",
            data,
            tmp_path / "a" / "again.json",
            "fractions=train=0.5,val=0.25,test=0.25",
        )[0]
        == 0
    )
    assert json.loads((tmp_path / "a" / "again.json").read_text()) == json.loads(out.read_text())

    other = tiny_data(tmp_path / "b", videos=1)
    code, _, _ = run_cli(capsys, "merge", out, other, tmp_path / "merged.json")
    m = CocoDataset.load(tmp_path / "merged.json")
    assert code == 0 and len(m.images) == 15 and len(m.videos) == 5 and len(m.categories) == 2
    assert m.images[1]["file_name"] == "a/frames/v0/000.png"
    assert run_cli(capsys, "validate", tmp_path / "merged.json")[0] == 0

    code, _, _ = run_cli(
        capsys, "filter", out, tmp_path / "a" / "blob.json", "categories=blob", "drop_empty=true"
    )
    f = CocoDataset.load(tmp_path / "a" / "blob.json")
    assert code == 0 and len(f.images) == 4 and {c["name"] for c in f.categories.values()} == {"blob"}
    code, _, _ = run_cli(capsys, "filter", out, tmp_path / "a" / "v.json", "videos=case1,3", "split=train")
    f = CocoDataset.load(tmp_path / "a" / "v.json")
    assert code == 0 and {im["split"] for im in f.images.values()} <= {"train"}
    code, _, err = run_cli(capsys, "filter", out, tmp_path / "a" / "x.json", "videos=nope")
    assert_one_line_error(code, err, "nope")


# ---------------------------------------------------------------------------------------------- one key=value parser
@pytest.mark.parametrize(
    "text", ["none", "null", "~", "3", "3e-4", "0.5", "true", "no", "[1, 2]", "a,b", "2024-01-01"]
)
def test_same_text_parses_the_same_for_every_command(text):
    """Configs (train, predict, segment, synth, filter...), protocol parameters (evaluate) and format options
    (convert) read a value through the one parser: an untyped key gets exactly ``parse_value(text)``."""
    from scopeseg.config import BaseConfig, build_config, parse_value
    from scopeseg.data.formats import _typed_options
    from scopeseg.metrics.protocols import protocol_params

    class Loose(BaseConfig):
        x: Any = None

    want = parse_value(text)
    assert build_config(Loose, overrides=[f"x={text}"]).x == want
    assert protocol_params("binary", {"categories": text})["categories"] == want

    def fmt(src, dst, *, x: Any = None):  # a format function whose option is untyped
        return x

    assert _typed_options(fmt, "test", {"x": want})["x"] == want


def test_none_and_null_agree_across_commands():
    """``null`` is None and ``none`` is a word, in a config and in protocol parameters alike."""
    from scopeseg.config import build_config
    from scopeseg.errors import ConfigError
    from scopeseg.inference.semantic_files import PredictConfig
    from scopeseg.metrics.protocols import protocol_params

    assert build_config(PredictConfig, overrides=["threshold=null"]).threshold is None
    assert protocol_params("binary", {"spacing": "null"})["spacing"] is None
    assert (
        protocol_params("binary", {"empty": "none"})["empty"] == "none"
    )  # a word (then refused by its rule)
    with pytest.raises(ConfigError, match="write null"):
        protocol_params("binary", {"spacing": "none"})
    with pytest.raises(ConfigError, match="threshold"):
        build_config(PredictConfig, overrides=["threshold=none"])


def test_key_value_items_anywhere_after_the_command(capsys, tmp_path):
    data = tiny_data(tmp_path / "a", videos=2)
    code, _, _ = run_cli(capsys, "filter", "videos=case1", data, tmp_path / "a" / "v.json")
    assert code == 0 and len(CocoDataset.load(tmp_path / "a" / "v.json").images) == 3
    code, _, err = run_cli(capsys, "filter", data, tmp_path / "a" / "w.json", "vidoes=case1")
    assert_one_line_error(code, err, "'vidoes'", "videos")
    with pytest.raises(SystemExit) as e:
        main(["filter", "--help"])
    out = capsys.readouterr().out
    assert (
        e.value.code == 0 and "drop_empty=False  (bool)" in out and "videos=None  (list[str] | None)" in out
    )
