"""Foreign data formats <-> the canonical COCO+RLE data set: a registry of one module per format.

Each module has ``NAME``, ``DESCRIPTION``, ``to_coco(src, dst, **opts)``, ``detect(src) -> int`` (0 = not
this format, higher = more specific) and, where meaningful, ``from_coco(src, dst, **opts)``; both return a
``ConversionReport``. ``convert`` picks the module, checks the options against its signature and chains
two foreign formats through a temp canonical data set.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import ConfigError, DataError
from ...io import check_output, scratch_dir
from ._base import ConversionReport, load_class_table, load_mapping

#: module names in the order ``scopeseg convert --help`` lists them
MODULES = (
    "mask_folder",
    "endovis17",
    "endovis18",
    "cholecseg8k",
    "labelme",
    "endoscapes",
    "medsam_npz",
    "polygons",
    "detectron2",
    "coco_video",
    "tapis",
    "video",
)
COCO = "coco"


def _load() -> dict[str, ModuleType]:
    out: dict[str, ModuleType] = {}
    for name in MODULES:
        mod = importlib.import_module(f"{__name__}.{name}")
        out[mod.NAME] = mod
        for alias in getattr(mod, "ALIASES", ()):
            out[alias] = mod
    return out


_REGISTRY: dict[str, ModuleType] | None = None


def registry() -> dict[str, ModuleType]:
    """Format name (and aliases) -> module."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
    return _REGISTRY


def list_formats() -> list[dict[str, Any]]:
    """One row per format: name, description, whether it imports / exports."""
    seen = []
    for name, mod in registry().items():
        if name != mod.NAME:
            continue
        seen.append(
            {
                "name": name,
                "description": mod.DESCRIPTION,
                "to_coco": hasattr(mod, "to_coco"),
                "from_coco": hasattr(mod, "from_coco"),
                "aliases": list(getattr(mod, "ALIASES", ())),
            }
        )
    return seen


def get_format(name: str) -> ModuleType:
    try:
        return registry()[name]
    except KeyError:
        names = sorted(f["name"] for f in list_formats())
        raise ConfigError(f"unknown data format {name!r}; formats: {', '.join(names)}") from None


def detect(src: str | Path) -> str:
    """The format of ``src`` when exactly one format claims it most specifically; else ``DataError``."""
    src = Path(src)
    if not src.exists():
        raise DataError("input not found", src)
    scores: dict[str, int] = {}
    for f in list_formats():
        try:
            s = int(get_format(f["name"]).detect(src))
        except (OSError, ValueError, DataError):
            s = 0
        if s > 0:
            scores[f["name"]] = s
    if not scores:
        raise DataError("cannot tell the data format; pass from=FORMAT (see scopeseg convert --list)", src)
    best = max(scores.values())
    top = sorted(n for n, s in scores.items() if s == best)
    if len(top) > 1:
        raise DataError(f"data format is ambiguous ({', '.join(top)}); pass from=FORMAT", src)
    return top[0]


def _call(mod: ModuleType, fn_name: str, src: Any, dst: Any, opts: dict[str, Any]) -> ConversionReport:
    fn = getattr(mod, fn_name, None)
    if fn is None:
        what = "import" if fn_name == "to_coco" else "export"
        raise ConfigError(
            f"format {mod.NAME!r} cannot {what} ({'to' if fn_name == 'from_coco' else 'from'} coco)"
        )
    params = inspect.signature(fn).parameters
    given = {k: v for k, v in opts.items() if v is not None}
    bad = sorted(set(given) - set(params))
    if bad:
        allowed = sorted(p for p in params if p not in ("src", "dst"))
        raise ConfigError(
            f"format {mod.NAME!r} ({fn_name}) has no option {bad[0]!r}; its options: {', '.join(allowed)}"
        )
    return fn(src, dst, **_typed_options(fn, mod.NAME, given))


def _typed_options(fn: Any, fmt: str, given: dict[str, Any]) -> dict[str, Any]:
    """Check each option against the format function's annotation (its signature is its typed config)."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(fn)
    out = {}
    for k, v in given.items():
        try:
            out[k] = TypeAdapter(hints.get(k, Any)).validate_python(v)
        except ValidationError as e:
            raise ConfigError(f"format {fmt!r}: option {k}={v!r}: {e.errors()[0]['msg']}") from None
    return out


def convert(
    src: str | Path,
    dst: str | Path,
    from_format: str | None = None,
    to_format: str | None = None,
    **opts: Any,
) -> ConversionReport:
    """Convert ``src`` (format ``from_format``, auto-detected when None) to ``to_format`` (default: coco).

    ``coco`` on either side means the canonical data set; two foreign formats are chained through a temp
    canonical data set. Options not taken by the chosen format raise ``ConfigError``.
    """
    src_fmt = from_format or (COCO if to_format not in (None, COCO) else detect(src))
    dst_fmt = to_format or COCO
    if src_fmt == COCO and dst_fmt == COCO:
        raise ConfigError("from= and to= are both coco: nothing to convert")
    if dst_fmt == COCO:
        return _call(get_format(src_fmt), "to_coco", src, dst, opts)
    if src_fmt == COCO:
        return _call(get_format(dst_fmt), "from_coco", src, dst, opts)
    in_mod, out_mod = get_format(src_fmt), get_format(dst_fmt)
    in_opts = {k: v for k, v in opts.items() if k in inspect.signature(in_mod.to_coco).parameters}
    out_opts = {k: v for k, v in opts.items() if k not in in_opts or k in ("overwrite",)}
    out_opts.pop("mapping", None)
    check_output(dst, bool(out_opts.get("overwrite")))  # before the first half of the chain runs
    with scratch_dir(Path(dst).resolve()) as tmp:
        first = _call(in_mod, "to_coco", src, Path(tmp) / "coco", {**in_opts, "overwrite": True})
        second = _call(out_mod, "from_coco", Path(tmp) / "coco", dst, out_opts)
    for msg, files in first.warnings.items():
        second.warnings.setdefault(msg, []).extend(files)
    second.src = str(src)
    return second


__all__ = [
    "ConversionReport",
    "convert",
    "detect",
    "get_format",
    "list_formats",
    "load_class_table",
    "load_mapping",
    "registry",
]
