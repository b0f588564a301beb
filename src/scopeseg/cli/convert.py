"""``scopeseg convert``: foreign data formats <-> the canonical data set (thin shell over data.formats)."""

from __future__ import annotations

import argparse
import sys

from . import arg, command


@arg("src", nargs="?", help="input: a foreign data set (folder/file), or a canonical data set with --to")
@arg("dst", nargs="?", help="output folder (or file for prediction formats)")
@arg("--from", dest="from_format", metavar="FORMAT", help="input format (auto-detected when unambiguous)")
@arg("--to", dest="to_format", metavar="FORMAT", help="output format (default: coco, the canonical data set)")
@arg(
    "--mapping", metavar="JSON", help='class mapping {"source name": "new name" | null} to rename/merge/drop'
)
@arg("--classes", metavar="JSON", help="class table (ids, names, colors) for index/color masks")
@arg("--mask-mode", choices=["auto", "binary", "index", "color"], help="how mask pixel values encode classes")
@arg(
    "--ignore-value", type=int, metavar="V", help="mask value left unlabelled (e.g. 255) in class-index masks"
)
@arg("--npz-key", dest="key", choices=["auto", "gts", "segs"], help="MedSAM npz array holding the masks")
@arg("--labels", choices=["binary", "parts", "type"], help="EndoVis 2017 label set")
@arg("--masks", dest="masks", choices=["watershed", "color"], help="CholecSeg8k mask kind to read/write")
@arg("--flavor", choices=["sam2", "tapis"], help="COCO-video field names to write")
@arg("--gt", metavar="COCO", help="ground-truth data set (image ids, sizes, classes) for prediction formats")
@arg("--stride", type=int, metavar="N", help="keep every N-th video frame")
@arg("--crop", action="store_true", default=None, help="EndoVis 2017: crop 1920x1080 frames to 1280x1024")
@arg("--overwrite", action="store_true", default=None, help="replace an existing output")
@arg("--list", dest="list_formats", action="store_true", help="list the formats and exit")
@command("convert", help="convert data sets between foreign formats and the canonical COCO+RLE data set")
def _convert(args: argparse.Namespace) -> int:
    from ..data.formats import convert, list_formats
    from ..errors import ConfigError

    if args.list_formats:
        for f in list_formats():
            way = "<->" if f["from_coco"] else "->"
            print(f"{f['name']:<20} {way:<4} {f['description']}")
        return 0
    if not args.src or not args.dst:
        raise ConfigError("scopeseg convert: SRC and DST are required (or --list)")
    opts = {
        "mapping": args.mapping,
        "classes": args.classes,
        "mask_mode": args.mask_mode,
        "ignore_value": args.ignore_value,
        "key": args.key,
        "labels": args.labels,
        "masks": args.masks,
        "flavor": args.flavor,
        "gt": args.gt,
        "stride": args.stride,
        "crop": args.crop,
        "overwrite": args.overwrite,
    }
    report = convert(args.src, args.dst, args.from_format, args.to_format, **opts)
    for line in report.lines():
        print(line, file=sys.stderr if line.lstrip().startswith("warning:") else sys.stdout)
    return 0
