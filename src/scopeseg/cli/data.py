"""``scopeseg validate|info|split|merge|filter``: thin shells over ``scopeseg.data`` (coco, validate).

Outputs are annotation files only (images are never copied): their ``file_name`` values are rewritten
relative to the output's folder, which must therefore contain the images (e.g. the data folder itself).
"""

from __future__ import annotations

import argparse
import json

from . import arg, build_config_of, command, config_keys

MAX_LINES = 20


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _print_report(report, max_lines: int, title: str = "validation") -> None:
    from rich.table import Table

    from ..data.validate import CODES

    con = _console()
    counts = report.counts()
    if not counts:
        con.print(f"{report.path}: no problems")
        return
    table = Table(title=f"{title}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    for col in ("code", "severity", "count", "fix"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for code, n in counts.items():
        c = CODES.get(code)
        table.add_row(code, c.severity if c else "?", str(n), (c.fixable or "-") if c else "-")
    con.print(table)
    shown = report.errors[:max_lines] + report.warnings[: max(0, max_lines - len(report.errors))]
    for p in shown:
        con.print(p.line(), markup=False)
    if len(report.problems) > len(shown):
        con.print(
            f"... {len(report.problems) - len(shown)} more (--max-lines N, or --json REPORT.json for all)"
        )


@arg("data", help="data set folder (with annotations.json) or COCO JSON file")
@arg(
    "--fix",
    metavar="OUT",
    help="write a repaired copy (JSON path or folder, in a folder containing the images); "
    "the exit code then reflects the copy",
)
@arg("--overwrite", action="store_true", help="replace an existing --fix OUT")
@arg("--no-images", action="store_true", help="skip opening image files (faster; sizes not checked)")
@arg("--json", metavar="REPORT.json", help="write the full report (and fix log) as JSON")
@arg("--max-lines", type=int, default=MAX_LINES, help=f"problems listed one per line (default {MAX_LINES})")
@command(
    "validate", help="check a data set (images, masks, ids, frames); exit 2 on errors; --fix repairs a copy"
)
def _validate(args: argparse.Namespace) -> int:
    from ..data.coco import CocoDataset
    from ..data.ops import write_relocated
    from ..data.validate import fix, validate
    from ..io import write_json

    ds = CocoDataset.load(args.data, check=False)  # every problem is reported, none refused at load
    report = validate(ds, check_images=not args.no_images)
    _print_report(report, args.max_lines)
    payload: dict = {"report": report.to_dict()}
    final = report
    if args.fix:
        fixed = fix(ds, report)
        out = write_relocated(fixed, args.fix, args.overwrite)
        con = _console()
        for act in fixed.fix_log[: args.max_lines]:
            where = "".join(f" {k}={act[k]}" for k in ("image_id", "annotation_id") if act[k] is not None)
            con.print(f"fixed {act['code']}{where}: {act['action']}", markup=False)
        con.print(f"{len(fixed.fix_log)} fix(es) applied; repaired copy written to {out}", markup=False)
        final = validate(CocoDataset.load(out, check=False), check_images=not args.no_images)
        _print_report(final, args.max_lines, title=f"after --fix ({out})")
        payload.update(fix_log=fixed.fix_log, fixed=str(out), after_fix=final.to_dict())
    if args.json:
        write_json(args.json, payload, indent=1)
    return 0 if final.ok else 2


def _bar(n: int, top: int, width: int = 40) -> str:
    return "█" * (round(width * n / top) if top else 0)


@arg("data", help="data set folder (with annotations.json) or COCO JSON file")
@arg(
    "--json",
    nargs="?",
    const="-",
    metavar="OUT.json",
    help="dump the numbers as JSON (to stdout, or to OUT.json)",
)
@command("info", help="counts per split/category/video, image sizes and a mask-area histogram", data=True)
def _info(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..data.coco import CocoDataset
    from ..io import write_json

    s = CocoDataset.load(args.data).summary()
    if args.json == "-":
        print(json.dumps(s, indent=1))
        return 0
    if args.json:
        write_json(args.json, s, indent=1)
    con = _console()
    con.print(f"{s['path']}: {s['images']} images, {s['annotations']} annotations, "
              f"{len(s['categories'])} categories, {len(s['videos'])} videos", markup=False)  # fmt: skip
    tables = {
        "splits": (
            ["split", "images", "annotations", "videos"],
            [[k, *v.values()] for k, v in s["splits"].items()],
        ),
        "categories": (["id", "name", "annotations", "images"], [list(c.values()) for c in s["categories"]]),
        "videos": (["id", "name", "frames", "annotations", "split"], [list(v.values()) for v in s["videos"]]),
        "image sizes (h x w)": (["size", "images"], [[k, v] for k, v in s["image_sizes"].items()]),
    }
    for title, (cols, rows) in tables.items():
        if not rows:
            continue
        t = Table(title=title)
        for c in cols:
            t.add_column(c)
        for r in rows:
            t.add_row(*(str(x) for x in r))
        con.print(t)
    h = s["mask_area"]
    if h["median"] is not None:
        con.print(
            f"mask area (pixels): min {h['min']}, median {h['median']:g}, max {h['max']}, empty {h['empty']}"
        )
        top = max(h["counts"])
        edges = h["bin_edges"]
        for lo, hi, n in zip(edges[:-1], edges[1:], h["counts"]):
            con.print(f"  [{lo:>8}, {hi:>8}) {n:>7} {_bar(n, top)}", markup=False)
    return 0


@arg("data", help="data set folder (with annotations.json) or COCO JSON file")
@arg("out", help="output JSON path or folder (in a folder containing the images)")
@arg("--overwrite", action="store_true", help="replace an existing OUT")
@command(
    "split",
    help="assign a split to every image, by video (no video crosses splits); writes a copy",
    keys=config_keys("scopeseg.data.selection", "SplitConfig"),
    data=True,
)
def _split(args: argparse.Namespace) -> int:
    from ..data.coco import CocoDataset
    from ..data.ops import write_relocated
    from ..data.selection import SplitConfig, assign_splits

    cfg = build_config_of(SplitConfig, args.overrides, "split")
    ds = CocoDataset.load(args.data)
    parts = assign_splits(ds, cfg)
    out = write_relocated(ds, args.out, args.overwrite)
    for name, ids in parts.items():
        videos = {ds.images[i].get("video_id") for i in ids} - {None}
        print(f"{name}: {len(ids)} images, {len(videos)} videos")
    print(f"written {out}")
    return 0


@arg("inputs", nargs="+", metavar="DATA", help="data sets to merge (folders or COCO JSON files)")
@arg("out", help="output JSON path or folder (in a folder containing every input's images)")
@arg("--overwrite", action="store_true", help="replace an existing OUT")
@command("merge", help="merge data sets: categories unified by name, ids and videos renumbered", data=True)
def _merge(args: argparse.Namespace) -> int:
    from ..data.coco import CocoDataset
    from ..data.records import output_json_path
    from ..io import check_output

    out_json = check_output(output_json_path(args.out), args.overwrite)
    merged = CocoDataset.merge([CocoDataset.load(p) for p in args.inputs], root=out_json.parent.resolve())
    merged.save(out_json)
    print(f"written {out_json}: {len(merged.images)} images, {len(merged.annotations)} annotations, "
          f"{len(merged.categories)} categories, {len(merged.videos)} videos")  # fmt: skip
    return 0


@arg("data", help="data set folder (with annotations.json) or COCO JSON file")
@arg("out", help="output JSON path or folder (in a folder containing the images)")
@arg("--overwrite", action="store_true", help="replace an existing OUT")
@command(
    "filter",
    help="keep a subset of a data set (categories, videos, images, split); writes a copy",
    keys=config_keys("scopeseg.data.selection", "FilterConfig"),
    data=True,
)
def _filter(args: argparse.Namespace) -> int:
    from ..data.coco import CocoDataset
    from ..data.ops import write_relocated
    from ..data.selection import FilterConfig, select

    cfg = build_config_of(FilterConfig, args.overrides, "filter")
    out_ds = select(CocoDataset.load(args.data), cfg)
    out = write_relocated(out_ds, args.out, args.overwrite)
    print(f"written {out}: {len(out_ds.images)} images, {len(out_ds.annotations)} annotations")
    return 0
