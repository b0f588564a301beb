"""The ``scopeseg`` command line: a thin shell that parses, calls the library and prints.

Each module in this package registers its commands with ``@command``; they are discovered here, so a new
command is one new module. ``ScopesegError`` becomes one line on stderr and exit code 2.

Grammar (one rule for every command): inputs and outputs are positionals; every setting of the job is a
``key=value`` of the command's typed config (``preset=NAME`` where presets exist), given in any order after
the command; ``--flags`` are left for modes that are no setting of the result: doing something else
(``--list``), permission to replace or skip earlier outputs (``--overwrite``, ``--resume``), skipping the
load-time data set checks (``--no-check``, on every command that reads a data set) and what is reported
on the terminal (``--json``, ``--max-lines``, ``-q``, ``-v``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
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
    keys: Callable[[], str] | None = None  # lazy text of the config keys for --help (imports the library)
    data: bool = False  # reads data sets: loads check structure and image files; --no-check skips that
    data_files: bool = True  # ... and the image files (off where only annotations are read: scoring)


COMMANDS: dict[str, Command] = {}


def arg(*args: Any, **kwargs: Any):
    """Declare one argparse argument of a command (stack above ``@command``, in display order)."""

    def deco(fn):
        fn.__dict__.setdefault("_cli_args", []).insert(0, (args, kwargs))
        return fn

    return deco


def command(
    name: str,
    help: str,
    overrides: bool = False,
    keys: Callable[[], str] | None = None,
    data: bool = False,
    data_files: bool = True,
):
    """Register ``fn(args) -> exit code`` as ``scopeseg NAME``; ``overrides`` adds key=value items.

    ``keys`` returns the text listing the config keys (called only for ``--help``: it may import the library).
    ``data``: the command reads data sets; every load it makes runs the structural checks including the
    image files (``data.coco.data_checks``; ``data_files=False`` where no pixel is read), and ``--no-check``
    skips them.
    """

    def deco(fn):
        COMMANDS[name] = Command(
            name,
            help,
            fn,
            fn.__dict__.setdefault("_cli_args", []),
            overrides or keys is not None,
            keys,
            data,
            data_files,
        )  # shared: @arg may come after
        return fn

    return deco


def config_keys(module: str, name: str) -> Callable[[], str]:
    """``keys=`` for ``@command``: the fields of config class ``module:name`` with their defaults."""

    def text() -> str:
        cls = getattr(importlib.import_module(module), name)
        lines = [f"{cls.__name__} keys (key=value):"]
        for key, f in cls.model_fields.items():
            default = f.get_default(call_default_factory=True)
            lines.append(f"  {key}={default!r}  ({_type_name(f.annotation)})")
        return "\n".join(lines)

    return text


def _type_name(t: Any) -> str:
    """``int | None``, ``list[str]``, ``Literal['a', 'b']`` for a config field's annotation."""
    import types
    import typing

    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if t is type(None):
        return "None"
    name = getattr(origin or t, "__name__", str(t))
    return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else name


def build_config_of(cls: type, overrides: list[str], what: str) -> Any:
    """The typed config ``cls`` from a command's ``key=value`` items (one parser: ``config.parse_overrides``)."""
    from ..config import build_config

    try:
        return build_config(cls, overrides=overrides)
    except ScopesegError as e:
        raise type(e)(f"scopeseg {what}: {e}") from None


#: a key=value item: an identifier (dots for nested keys), then "="
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split the arguments after a command into (argparse arguments, key=value items).

    Why: key=value items may stand anywhere after the command, also before or between positionals.
    """
    rest, items = [], []
    for a in argv:
        (items if OVERRIDE.match(a) else rest).append(a)
    return rest, items


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


class _Parser(argparse.ArgumentParser):
    keys: Callable[[], str] | None = None

    def error(self, message: str):  # one line, exit 2 (argparse's own code), no usage dump
        raise ScopesegError(f"{self.prog}: {message}")

    def format_help(self) -> str:
        text = super().format_help()
        return f"{text}\n{self.keys()}\n" if self.keys is not None else text


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
        p.keys = cmd.keys
        for a, kw in cmd.arguments:
            p.add_argument(*a, **kw)
        if cmd.data:
            p.add_argument(
                "--no-check",
                action="store_true",
                help="skip the structural checks of data sets on load (ids, references, masks, files)",
            )
        if cmd.overrides:
            p.add_argument(
                "overrides",
                nargs="*",
                metavar="key=value",
                help="settings of the job, anywhere after the command (listed below)",
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
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        parser = build_parser()
        at = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
        items: list[str] = []
        if at is not None and COMMANDS[argv[at]].overrides:
            rest, items = split_overrides(argv[at + 1 :])
            argv = argv[: at + 1] + rest
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        _setup_logging(args.quiet, args.verbose)
        cmd = COMMANDS[args.command]
        if cmd.overrides:
            if args.overrides:  # a bare word where argparse took a positional: not key=value
                raise ScopesegError(
                    f"scopeseg {cmd.name}: unexpected argument {args.overrides[0]!r} (settings are key=value)"
                )
            args.overrides = items
        if cmd.data:
            from ..data.coco import data_checks

            with data_checks(not args.no_check, files=cmd.data_files):
                code = cmd.run(args)
        else:
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
