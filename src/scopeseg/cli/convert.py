"""``scopeseg convert SRC DST from=FORMAT to=FORMAT key=value...``: thin shell over ``data.formats.convert``."""

from __future__ import annotations

import argparse
import sys

from . import arg, command


def _format_keys() -> str:
    """Every format's options, read from its functions' signatures (the format's typed config)."""
    import inspect

    from ..data.formats import get_format, list_formats

    lines = ["keys: from=FORMAT (default: detected) to=FORMAT (default: coco), then the format's options:"]
    for f in list_formats():
        mod = get_format(f["name"])
        for fn_name in ("to_coco", "from_coco"):
            fn = getattr(mod, fn_name, None)
            if fn is not None:
                ps = inspect.signature(fn).parameters.values()
                opts = " ".join(
                    f"{p.name}={p.default!r}" for p in ps if p.name not in ("src", "dst", "overwrite")
                )
                lines.append(f"  {f['name']:<16} {fn_name:<9} {opts or '-'}")
    return "\n".join(lines)


@arg("src", nargs="?", help="input: a foreign data set (folder/file), or a canonical data set with to=FORMAT")
@arg("dst", nargs="?", help="output folder (or file for prediction formats)")
@arg("--overwrite", action="store_true", default=None, help="replace an existing output")
@arg("--list", dest="list_formats", action="store_true", help="list the formats and exit")
@command(
    "convert",
    help="convert data sets between foreign formats and the canonical COCO+RLE data set",
    keys=_format_keys,
    data=True,
)
def _convert(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..data.formats import convert, list_formats
    from ..errors import ConfigError

    if args.list_formats:
        for f in list_formats():
            way = "<->" if f["from_coco"] else "->"
            print(f"{f['name']:<20} {way:<4} {f['description']}")
        return 0
    if not args.src or not args.dst:
        raise ConfigError("scopeseg convert: SRC and DST are required (or --list)")
    opts = parse_overrides(args.overrides)
    src_fmt, dst_fmt = opts.pop("from", None), opts.pop("to", None)
    report = convert(args.src, args.dst, src_fmt, dst_fmt, overwrite=args.overwrite, **opts)
    for line in report.lines():
        print(line, file=sys.stderr if line.lstrip().startswith("warning:") else sys.stdout)
    return 0
