"""Typed configs (pydantic) with YAML presets shipped in ``configs/`` and ``key=value`` overrides.

``build_config(preset="unet-effb2", overrides=["epochs=3", "lr=3e-4"])`` gives the typed config of the
preset's task; an unknown key or a wrong type raises ``ConfigError`` naming the key and close matches.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .errors import ConfigError
from .registry import Registry

T = TypeVar("T", bound="BaseConfig")

#: task name -> config class, filled by ``@register_config`` (training tasks: ``@register_task``) where defined
CONFIGS: Registry[type[BaseConfig]] = Registry("task", ConfigError, packages=("scopeseg.train",))
#: name -> folder of YAML presets: the shipped ``configs/`` and any a plugin registers with ``register_presets``
PRESET_FOLDERS: Registry[Path] = Registry("preset folder", ConfigError)


class BaseConfig(BaseModel):
    """Base of every config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def register_config(task: str):
    """Class decorator: make a config class the one for ``task`` (presets name their task)."""

    def deco(cls: type[T]) -> type[T]:
        CONFIGS.register(task, cls)
        return cls

    return deco


def parse_value(text: str) -> Any:
    """Parse an override value the way YAML would (``3`` int, ``3e-4`` float, ``[a,b]`` list, ``null``)."""
    if text in ("None", "null", "Null", "NULL", "~"):  # lowercase "none" stays a string (schedule=none)
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool) and text.lower() not in ("true", "false"):
        return text  # YAML 1.1 yes/no/on/off stay strings (name=no); pydantic still reads them into bools
    if isinstance(value, (datetime.date, datetime.datetime)):
        return text  # 2024-01-01 is a name here, not a date
    # YAML 1.1 reads 3e-4 as a string; accept it as a float
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}``; a malformed item is a ``ConfigError``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} was already given a value, not a section")
        node[parts[-1]] = parse_value(raw.strip())
    return out


def presets_dir() -> Path:
    """The folder of the YAML presets shipped with the package."""
    return Path(str(resources.files("scopeseg") / "configs"))


def register_presets(name: str, folder: str | Path) -> Path:
    """Add a family's folder of ``*.yaml`` presets (a plugin calls this in the module it registers from)."""
    return PRESET_FOLDERS.register(name, Path(folder), origin=str(Path(folder).resolve()))


register_presets("scopeseg", presets_dir())


def preset_files() -> dict[str, Path]:
    """Preset name -> YAML file over every registered folder; one name in two folders is a ``ConfigError``."""
    out: dict[str, Path] = {}
    for _, folder in PRESET_FOLDERS.items():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem in out:
                raise ConfigError(f"preset {path.stem!r} is defined twice: {out[path.stem]} and {path}")
            out[path.stem] = path
    return out


def list_presets() -> dict[str, dict[str, Any]]:
    """name -> {task, description} for every YAML preset (shipped or registered by a family)."""
    out = {}
    for name, path in sorted(preset_files().items()):
        data = yaml.safe_load(path.read_text()) or {}
        out[name] = {"task": data.get("task", "?"), "description": data.get("description", "")}
    return out


def load_preset(name: str) -> dict[str, Any]:
    """Raw dict of a preset: a registered preset name or a path to a YAML file."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        files = preset_files()
        if name not in files:
            close = difflib.get_close_matches(name, list(files), n=3)
            known = f"; presets: {', '.join(sorted(files))}"
            hint = f"; did you mean {', '.join(close)}?" if close else known
            raise ConfigError(f"unknown preset {name!r}{hint}")
        path = files[name]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML: {str(e).splitlines()[0]}", path) from None
    if not isinstance(data, dict):
        raise ConfigError("preset must be a YAML mapping", path)
    return data


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _fields_at(cls: type[BaseModel], loc: tuple) -> dict[str, Any]:
    """Fields of the (nested) model at ``loc``, for close-match hints on nested keys."""
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return getattr(model, "model_fields", {})
        model = ann
    return getattr(model, "model_fields", {})


def validate_config(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build ``cls`` from ``data``; turn pydantic's errors into one line naming the key."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = list(_fields_at(cls, err["loc"][:-1]))
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(f"unknown key {loc!r} in {where}; {hint}") from None
        got = err.get("input")
        raise ConfigError(f"key {loc!r} in {where}: {err['msg']} (got {got!r})") from None


def build_config(
    cls: type[T] | None = None,
    preset: str | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    task: str | None = None,
) -> BaseConfig:
    """Preset (optional) + overrides -> typed config. The class comes from ``cls``, ``task`` or the preset."""
    over = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    preset = over.pop("preset", None) or preset
    data: dict[str, Any] = {}
    where = "config"
    if preset:
        data = load_preset(str(preset))
        where = f"preset {preset!r}"
    data = deep_merge(data, over)
    data.pop("description", None)
    task = data.pop("task", None) or task
    if cls is None:
        if not task:
            raise ConfigError(f"{where} names no task; tasks: {', '.join(CONFIGS.names())}")
        cls = CONFIGS.get(str(task))
    return validate_config(cls, data, where)


def parse_size(text: str | Sequence[int], what: str = "size") -> tuple[int, int]:
    """``"480x736"`` (or ``[480, 736]``) -> ``(480, 736)``: sizes are height×width everywhere (DESIGN)."""
    if isinstance(text, str):
        parts = text.lower().replace("×", "x").split("x")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
    else:
        ok = isinstance(text, Sequence) and all(isinstance(v, int | float) for v in text)
        values = [int(v) for v in text] if ok else []  # a bare number (size=96) is no size
    if len(values) != 2 or min(values) < 1:
        raise ConfigError(f"{what} {text!r} must be HEIGHTxWIDTH with positive integers, e.g. 480x736")
    return values[0], values[1]


def parse_fractions(text: str, option: str = "fractions") -> dict[str, float]:
    """``"train=0.8,val=0.2"`` -> ``{"train": 0.8, "val": 0.2}``; malformed or negative items are a ``ConfigError``."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"{option} item {item!r} must be NAME=FRACTION, e.g. train=0.8,val=0.2"
            ) from None
        if out[name.strip()] < 0:
            raise ConfigError(f"{option} fraction of {name.strip()!r} is negative")
    if sum(out.values()) <= 0:
        raise ConfigError(f"{option} {text!r}: fractions must sum to > 0")
    return out


def _fractions(value: Any) -> Any:
    return parse_fractions(value) if isinstance(value, str) else value


def comma_list(value: Any) -> Any:
    """``a,b`` (text, each item read by ``parse_value``) -> ``["a", "b"]``; one scalar -> a list of it."""
    if isinstance(value, str):
        return [parse_value(t.strip()) for t in value.split(",") if t.strip()]
    if isinstance(value, (int, float)):
        return [value]
    return value


def _words(value: Any) -> Any:
    value = comma_list(value)
    return [str(v) for v in value] if isinstance(value, list) else value


#: a config field of named fractions: ``train=0.8,val=0.2`` (text) or a mapping ``{train: 0.8, val: 0.2}``
Fractions = Annotated[dict[str, float], BeforeValidator(_fractions)]
#: lists a command line gives as ``a,b,c`` or ``[a, b, c]``: words (names, ids as text) and numbers
Words = Annotated[list[str], BeforeValidator(_words)]
Floats = Annotated[list[float], BeforeValidator(comma_list)]
Ints = Annotated[list[int], BeforeValidator(comma_list)]
