"""Model registry: ``@register_model`` factories, ``create_model``, ``list_models``, ``model_entry``.

timm-style: a family registers named factory functions in its own module (found by walking
``scopeseg.models`` and the installed plugins, never listed); checkpoint I/O lives in ``checkpoints``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ModelError
from ..registry import Registry


@dataclass
class ModelEntry:
    """One registered model: its factory, family, one-line description, defaults and tiny test arguments."""

    name: str
    factory: Callable[..., nn.Module]
    family: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    #: arguments that build a small random instance of the same code path (tests and smoke runs)
    tiny: dict[str, Any] = field(default_factory=dict)


MODELS: Registry[ModelEntry] = Registry("model", ModelError, packages=("scopeseg.models",))


def register_model(
    name: str | None = None,
    *,
    family: str,
    description: str = "",
    tiny: dict[str, Any] | None = None,
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory(**cfg) -> ScopesegModel`` under ``name`` (default: the function name).

    ``tiny`` holds the arguments of a small random instance (``pretrained=False`` and a tiny architecture).
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__.replace("_", "-")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        entry = ModelEntry(key, fn, family, doc, dict(defaults), dict(tiny or {}))
        MODELS.register(key, entry, origin=f"{fn.__module__}.{fn.__qualname__}")
        return fn

    return deco


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching a glob (``list_models("unet-*")``), optionally of one family."""
    return [n for n in MODELS.names(pattern) if family is None or MODELS.get(n).family == family]


def model_entry(name: str) -> ModelEntry:
    """The registry entry of a model name; an unknown name raises ``ModelError`` with close matches."""
    return MODELS.get(name)


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build a registered model; its ``config`` (name, family, arguments) is what ``save_pretrained`` writes."""
    entry = model_entry(name)
    args = {**entry.defaults, **cfg}
    model = entry.factory(**args)
    if not callable(getattr(model, "bind_config", None)):  # registry sits below base: checked by its contract
        raise ModelError(
            f"model {name!r}: its factory returned a {type(model).__name__}, not a ScopesegModel "
            "(subclass scopeseg.models.base.ScopesegModel)"
        )
    model.bind_config(name, args)
    if model.family != entry.family:
        raise ModelError(
            f"model {name!r} is registered as {entry.family!r} but builds a {model.family!r} model"
        )
    return model
