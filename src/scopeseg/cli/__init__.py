"""The ``scopeseg`` command line: a thin shell that parses, calls the library and prints.

Each module in this package registers its commands with ``@command``; they are discovered here, so a new
command is one new module. ``ScopesegError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..errors import ScopesegError


@dataclass
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    arguments: list[tuple[tuple, dict]] = field(default_factory=list)
    overrides: bool = False


COMMANDS: dict[str, Command] = {}


def arg(*args: Any, **kwargs: Any):
    """Declare one argparse argument of a command (stack above ``@command``, in display order)."""

    def deco(fn):
        fn.__dict__.setdefault("_cli_args", []).insert(0, (args, kwargs))
        return fn

    return deco


def command(name: str, help: str, overrides: bool = False):
    """Register ``fn(args) -> exit code`` as ``scopeseg NAME``; ``overrides`` adds trailing key=value items."""

    def deco(fn):
        COMMANDS[name] = Command(
            name, help, fn, fn.__dict__.setdefault("_cli_args", []), overrides
        )  # shared: @arg may come after
        return fn

    return deco


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own code), no usage dump
        raise ScopesegError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    _discover()
    parser = _Parser(
        prog="scopeseg", description="Segmentation for scope imaging: data, training, evaluation, deployment."
    )
    parser.add_argument("--version", action="version", version=f"scopeseg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in sorted(COMMANDS):
        cmd = COMMANDS[name]
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        for a, kw in cmd.arguments:
            p.add_argument(*a, **kw)
        if cmd.overrides:
            p.add_argument(
                "overrides",
                nargs="*",
                metavar="key=value",
                help="config overrides (preset=NAME picks a preset)",
            )
        # -q/-v are accepted after the command too
        p.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _setup_logging(quiet: bool, verbose: int) -> None:
    from .. import progress

    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    progress.set_enabled(not quiet)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may also follow --options (argparse stops the nargs="*" positional at them)
        takes_overrides = bool(args.command) and COMMANDS[args.command].overrides
        if extra and takes_overrides and not any(e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if not args.command:
            parser.print_help()
            return 0
        _setup_logging(args.quiet, args.verbose)
        cmd = COMMANDS[args.command]
        if cmd.overrides:
            bad = [o for o in args.overrides if "=" not in o]
            if bad:
                raise ScopesegError(
                    f"scopeseg {cmd.name}: unexpected argument {bad[0]!r} (overrides are key=value)"
                )
        code = cmd.run(args)
        return int(code or 0)
    except ScopesegError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
