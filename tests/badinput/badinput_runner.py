"""Run every bad-input case through every command that takes its kind, and judge the outcome.

Why: one table (kind -> command lines) serves both the pytest runner (``test_badinput.py``) and the
markdown outcome table (``run_table.py``). Commands run in-process through ``scopeseg.cli.main`` with
stdout/stderr captured at the file-descriptor level (so logging and native-library messages count too);
the output path is hashed before and after, so a refused command must leave it absent or byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Case, build_corpus

#: dataset problems that only show when the pixels are read: a command that never opens image files may
#: accept them (outcome either exit 0, or exit 2 in one line)
PIXEL_ONLY = {
    "image_size_differs",
    "zero_byte_image",
    "truncated_image",
    "text_as_image",
    "decompression_bomb",
}
#: an empty data set is a data set: commands that describe, copy or convert it may accept it (train and
#: evaluate have nothing to learn from or score, and must refuse)
EMPTY_OK = frozenset({"empty_dataset"})
#: dataset problems about image files (existence, escaping the root): a predicted data set may come
#: without its images, so ``evaluate`` as PRED may accept these too
IMAGE_FILES = PIXEL_ONLY | {"missing_image_file", "symlink_out_of_root", "image_is_a_folder"}


@dataclass
class Env:
    """Where the corpus and the tiny models are; fresh output paths are handed out under ``outs``."""

    root: Path
    cases: list[Case]
    unet: Path
    sam: Path
    gt: Path  # the valid data set
    image: Path  # the valid image
    masks: Path  # the valid mask folder
    image_dir: Path  # a folder holding the valid image (prompts JSON input)
    _n: int = 0

    def out(self, cmd: str, case: Case, suffix: str = "") -> Path:
        self._n += 1
        return self.root / "outs" / f"{self._n:04d}_{cmd}_{case.kind}_{case.name}{suffix}"


@dataclass
class Cmd:
    """One command line for cases of one kind: ``argv(case_path, out, env)``; ``out`` names the output."""

    name: str
    kind: str
    argv: Callable[[Path, Path, Env], list[str]]
    out_suffix: str = ""  # "" = folder output, ".json" = a file, None = no output
    reads_pixels: bool = True  # dataset kind: does the command open the image files?
    ignores: frozenset = frozenset()  # case names whose problem this command may legitimately not see
    report_on_stdout: bool = False  # validate: exit 2 with a problem table on stdout, nothing on stderr
    valid: dict = field(default_factory=dict)  # case name -> validity for this command (overrides the case)
    has_output: bool = True
    out_in: str = ""  # "input": the output file goes inside the input folder; "corpus": beside the inputs

    def expects_valid(self, case: Case) -> bool | None:
        """True: must exit 0; False: must be refused (exit 2, one line); None: either is right."""
        if case.name in self.valid:
            return self.valid[case.name]
        if case.valid:
            return True
        if case.name in self.ignores or (
            case.kind == "dataset" and not self.reads_pixels and case.name in PIXEL_ONLY
        ):
            return None
        return False


TRAIN = (
    "model=unet-effb0 pretrained=false epochs=1 train_size=[32,48] max_minutes=1 batch_size=2 report=false"
)
BOX = "boxes=10,8,30,24"


def _commands() -> list[Cmd]:
    d, r = "dataset", "results"
    no_pix = dict(reads_pixels=False)
    conv = dict(reads_pixels=False, ignores=EMPTY_OK)
    conv_rings = dict(reads_pixels=False, ignores=EMPTY_OK | {"polygon_two_points"})
    cmds = [
        Cmd(
            "validate",
            d,
            lambda p, o, e: ["validate", p],
            has_output=False,
            report_on_stdout=True,
            ignores=EMPTY_OK,
        ),  # fmt: skip
        Cmd(
            "info",
            d,
            lambda p, o, e: ["info", p, "--json", o],
            out_suffix=".json",
            ignores=EMPTY_OK,
            **no_pix,
        ),
        Cmd("preview", d, lambda p, o, e: ["preview", p, o, "--max-frames", "2"], ignores=EMPTY_OK),
        # split / filter / merge write an annotations file into a folder holding the images
        Cmd("split", d, lambda p, o, e: ["split", p, o], out_in="input", ignores=EMPTY_OK, **no_pix),
        Cmd(
            "filter",
            d,
            lambda p, o, e: ["filter", p, o, "categories=grasper,hook"],
            out_in="input",
            ignores=EMPTY_OK,
            **no_pix,
        ),  # fmt: skip
        Cmd("merge", d, lambda p, o, e: ["merge", p, e.gt, o], out_in="corpus", ignores=EMPTY_OK, **no_pix),
        Cmd(
            "train", d, lambda p, o, e: ["train", f"data={p}", f"val_data={e.gt}", f"out={o}", *TRAIN.split()]
        ),
        # evaluate scores annotations only: the GT's image files are never opened (nor shown: overlays skip them)
        Cmd(
            "evaluate-gt",
            d,
            lambda p, o, e: ["evaluate", p, e.gt, o],
            ignores=frozenset(IMAGE_FILES),
            **no_pix,
        ),
        Cmd(
            "evaluate-pred",
            d,
            lambda p, o, e: ["evaluate", e.gt, p, o],
            ignores=frozenset(IMAGE_FILES | {"empty_dataset"}),
            **no_pix,
        ),
        Cmd(
            "evaluate-pred-coco",
            d,
            lambda p, o, e: ["evaluate", e.gt, p, o, "protocol=coco"],
            ignores=frozenset(IMAGE_FILES | {"empty_dataset"}),
            **no_pix,
        ),  # fmt: skip
        # conversions that link the images (never decode them); medsam-npz stores the pixels
        Cmd("convert-to-polygons", d, lambda p, o, e: ["convert", p, o, "to=coco-polygons"], **conv),
        Cmd("convert-to-coco-video", d, lambda p, o, e: ["convert", p, o, "to=coco-video"], **conv),
        Cmd("convert-to-mask-folder", d, lambda p, o, e: ["convert", p, o, "to=mask-folder"], **conv),
        Cmd("convert-to-medsam-npz", d, lambda p, o, e: ["convert", p, o, "to=medsam-npz"], ignores=EMPTY_OK),
        # the COCO importers drop zero-area rings (< 3 points) with a warning and a count, as COCO files in the
        # wild hold them; every other reader refuses them
        Cmd(
            "convert-from-polygons", d, lambda p, o, e: ["convert", p, o, "from=coco-polygons"], **conv_rings
        ),
        Cmd("convert-from-coco-video", d, lambda p, o, e: ["convert", p, o, "from=coco-video"], **conv_rings),
        Cmd("predict", d, lambda p, o, e: ["predict", e.unet, p, o], ignores=EMPTY_OK),
        Cmd("segment-from-gt", d, lambda p, o, e: ["segment", e.sam, p, o, "from_gt=true"], ignores=EMPTY_OK),
        # predictions
        Cmd("evaluate-binary", r, lambda p, o, e: ["evaluate", e.gt, p, o, "protocol=binary"]),
        Cmd("evaluate-coco", r, lambda p, o, e: ["evaluate", e.gt, p, o, "protocol=coco"]),
        # tapis-map50 counts prediction frames the GT lacks (unmatched_prediction_frames) instead of refusing
        Cmd(
            "evaluate-tapis-map50",
            "tapis",
            lambda p, o, e: ["evaluate", e.gt, p, o, "protocol=tapis-map50"],
            ignores=frozenset({"unknown_file_name"}),
        ),  # fmt: skip
        Cmd(
            "convert-from-tapis",
            "tapis",
            lambda p, o, e: ["convert", p, o, "from=tapis-preds", f"gt={e.gt}"],
            out_suffix=".json",
        ),
        # images and videos
        Cmd("predict", "image", lambda p, o, e: ["predict", e.unet, p, o]),
        Cmd("segment-box", "image", lambda p, o, e: ["segment", e.sam, p, o, BOX]),
        Cmd("predict", "video", lambda p, o, e: ["predict", e.unet, p, o]),
        # track: a corrupt video, and bad prompts (frame / box / point / object id) on a valid one
        Cmd("track", "video", lambda p, o, e: ["track", e.sam, p, o, "prompt=f0:box:4,4,20,20"]),
        Cmd(
            "track",
            "track_prompts",
            lambda p, o, e: ["track", e.sam, e.root / "corpus" / "video" / "valid.mp4", o, f"prompts={p}"],
        ),  # fmt: skip
        Cmd("medsam-infer", "npz", lambda p, o, e: ["medsam-infer", e.sam, p, o]),
        Cmd("segment-prompts", "prompts", lambda p, o, e: ["segment", e.sam, e.image_dir, o, f"prompts={p}"]),
        Cmd("convert-from-coco-video", "coco_video", lambda p, o, e: ["convert", p, o, "from=coco-video"]),
        # checkpoints: the semantic one is no promptable model and the other way round
        Cmd("predict", "checkpoint", lambda p, o, e: ["predict", p, e.image, o], valid={"valid_sam": False}),
        Cmd(
            "segment-box",
            "checkpoint",
            lambda p, o, e: ["segment", p, e.image, o, BOX],
            valid={"valid_unet": False},
        ),  # fmt: skip
        Cmd("export", "checkpoint", lambda p, o, e: ["export", p, o]),
        # mask folders
        Cmd("evaluate-gt", "masks", lambda p, o, e: ["evaluate", p, e.masks, o]),
        Cmd("evaluate-pred", "masks", lambda p, o, e: ["evaluate", e.masks, p, o]),
        Cmd("convert-from-mask-folder", "mask_folder", lambda p, o, e: ["convert", p, o, "from=mask-folder"]),
    ]
    for c in cmds:
        if not c.has_output:
            c.out_suffix = None
    return cmds


COMMANDS = _commands()


def make_env(root: str | Path) -> Env:
    """Build the corpus and the tiny models under ``root``."""
    root = Path(root)
    cases = build_corpus(root / "corpus")
    by = {(c.kind, c.name): c for c in cases}
    image_dir = root / "corpus" / "image"
    return Env(
        root=root,
        cases=cases,
        unet=by["checkpoint", "valid_unet"].path,
        sam=by["checkpoint", "valid_sam"].path,
        gt=by["dataset", "valid"].path,
        image=by["image", "valid"].path,
        masks=by["masks", "valid"].path,
        image_dir=image_dir,
    )


def pairs(env_cases: list[Case]) -> list[tuple[Case, Cmd]]:
    """Every (case, command) that the table runs."""
    return [(case, cmd) for cmd in COMMANDS for case in env_cases if case.kind == cmd.kind]


def tree_digest(path: Path) -> dict[str, str] | None:
    """Relative path -> SHA-256 of every file under ``path`` (a file: itself); None when absent."""
    if not os.path.lexists(path):
        return None
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for f in sorted(path.rglob("*")):
        rel = str(f.relative_to(path))
        out[rel] = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "dir"
    return out


def make_earlier(path: Path) -> None:
    """An earlier output at ``path`` (a file or a folder holding files) that a refused run must keep."""
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"earlier": true}\n')
    else:
        (path / "sub").mkdir(parents=True)
        (path / "earlier.txt").write_text("an earlier run's file\n")
        (path / "sub" / "data.bin").write_bytes(bytes(range(256)))


def supports_overwrite(command: str) -> bool:
    """Whether ``scopeseg COMMAND`` takes ``--overwrite`` (read from the CLI, so new flags count)."""
    from scopeseg.cli import COMMANDS as CLI
    from scopeseg.cli import _discover

    _discover()
    return any("--overwrite" in a for a, _kw in CLI[command].arguments)


@contextlib.contextmanager
def _capture_fds():
    """Redirect fds 1 and 2 (and sys.stdout/err) into temp files; yields a dict filled on exit."""
    import sys

    got: dict[str, str] = {}
    files = [tempfile.TemporaryFile(mode="w+b") for _ in range(2)]
    saved = [os.dup(1), os.dup(2)]
    old = sys.stdout, sys.stderr
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(files[0].fileno(), 1)
    os.dup2(files[1].fileno(), 2)
    sys.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        yield got
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        sys.stdout, sys.stderr = old
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for key, f in zip(("stdout", "stderr"), files):
            f.seek(0)
            got[key] = f.read().decode("utf-8", "replace")
            f.close()


@dataclass
class Outcome:
    """What one run did: exit code (None = an exception escaped), captured output, output digests."""

    case: Case
    cmd: Cmd
    argv: list[str]
    code: int | None
    stdout: str
    stderr: str
    crash: str | None  # "ExcType: message" when an exception escaped main()
    out: Path | None
    before: dict | None
    after: dict | None
    earlier: bool

    @property
    def expected(self) -> bool | None:
        return self.cmd.expects_valid(self.case)

    def problems(self) -> list[str]:
        """Every way this outcome breaks the rules (empty: it is right)."""
        bad = []
        if self.crash:
            return [f"traceback: {self.crash}"]
        if "Traceback (most recent call last)" in self.stderr:
            bad.append("traceback on stderr")
        if self.expected is True or (self.expected is None and self.code == 0):
            if self.code != 0:
                bad.append(f"valid input refused (exit {self.code}): {self.stderr.strip()[:300]}")
            return bad
        if self.code != 2:
            bad.append(f"exit {self.code}, expected 2" + (" (accepted)" if self.code == 0 else ""))
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        if self.cmd.report_on_stdout and not lines:
            if self.case.path.name not in self.stdout and self.case.name not in self.stdout:
                bad.append("the problem report does not name the input")
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            bad.append(f"stderr is not one 'error:' line: {lines[:4]}")
        elif not self._names_input(lines[0]):
            bad.append(f"error line does not name the input: {lines[0][:200]}")
        if self.out is not None and self.before != self.after:
            bad.append("earlier output changed" if self.earlier else "output left behind")
        return bad

    def _names_input(self, line: str) -> bool:
        """The line names the case, or a file under one of the command's inputs (the item at fault, e.g. the
        image a prompts file points to, or the ground-truth mask a wrong-sized prediction is compared with)."""
        names = {self.case.path.name, self.case.name, str(self.case.path)}
        if any(n and n in line for n in names):
            return True
        inputs = [a for a in self.argv if "/" in a and a != str(self.out) and not a.startswith(str(self.out))]
        return any(str(Path(a.split("=", 1)[-1])) in line for a in inputs)

    def line(self) -> str:
        """The one line a person reads: the error message, or 'exit 0', or the crash."""
        if self.crash:
            return f"TRACEBACK {self.crash}"
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        if self.code == 0:
            return "exit 0"
        if self.cmd.report_on_stdout and not lines:
            return "problem table on stdout"
        return lines[-1] if lines else f"exit {self.code}, nothing on stderr"


def run(env: Env, case: Case, cmd: Cmd, earlier: bool = False) -> Outcome:
    """Run ``cmd`` on ``case`` in-process; with ``earlier``, an output exists before (and --overwrite)."""
    from scopeseg.cli import main

    out = None if cmd.out_suffix is None else env.out(cmd.name, case, cmd.out_suffix)
    if out is not None and cmd.out_in:
        inside = cmd.out_in == "input" and case.path.is_dir()
        folder = case.path if inside else env.root / "corpus" / case.kind
        out = folder / f"{out.name}.json"
    argv = [str(a) for a in cmd.argv(case.path, out if out is not None else env.root / "unused", env)]
    if earlier and out is not None:
        make_earlier(out)
        if supports_overwrite(argv[0]):
            argv.append("--overwrite")
    before = tree_digest(out) if out is not None else None
    crash, code = None, None
    with _capture_fds() as got:
        try:
            code = main(["-q", *argv])
        except SystemExit as e:  # argparse --help etc.
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:  # noqa: BLE001 - a crash is the outcome being recorded
            crash = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            tb = traceback.format_exc()
    if crash:
        got["stderr"] += tb
    after = tree_digest(out) if out is not None else None
    return Outcome(case, cmd, argv, code, got["stdout"], got["stderr"], crash, out, before, after, earlier)


def wants_earlier(case: Case, index: int) -> bool:
    """Pre-create an earlier output for every third invalid case (by position), to check it is kept."""
    return not case.valid and index % 3 == 0


def cleanup(outcome: Outcome) -> None:
    """Remove a run's output (valid runs write real files; the table keeps only outcomes)."""
    if outcome.out is not None and os.path.lexists(outcome.out):
        if outcome.out.is_dir():
            shutil.rmtree(outcome.out, ignore_errors=True)
        else:
            outcome.out.unlink()
