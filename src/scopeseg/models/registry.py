"""Model registry: ``@register_model`` factories, ``create_model``, ``load_model``, ``list_models``.

timm-style: a model family registers named factory functions in its own file; checkpoints are folders with
``model.safetensors`` + ``config.json`` (name + config) so a model is rebuilt from its name, never unpickled.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import importlib
import json
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..io import atomic_dir, read_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"

#: modules that register models; imported lazily so ``import scopeseg`` stays light
FAMILY_MODULES = ("scopeseg.models.unet", "scopeseg.models.sam.model")


@dataclass
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    family: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, family: str = "semantic", description: str = "", **defaults: Any):
    """Decorator: register ``factory(**cfg) -> nn.Module`` under ``name`` (default: the function name)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__.replace("_", "-")
        doc = description or (fn.__doc__ or "").strip().splitlines()[0] if (description or fn.__doc__) else ""
        MODELS[key] = ModelEntry(key, fn, family, doc, dict(defaults))
        return fn

    return deco


def _load_families() -> None:
    for mod in FAMILY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a family module not written yet must not break the others
            if e.name != mod:
                raise


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered model names matching a glob (``list_models("unet-*")``)."""
    _load_families()
    return sorted(
        n for n, e in MODELS.items() if fnmatch.fnmatch(n, pattern) and (family is None or e.family == family)
    )


def model_entry(name: str) -> ModelEntry:
    _load_families()
    if name not in MODELS:
        import difflib

        close = difflib.get_close_matches(name, list(MODELS), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"models: {', '.join(sorted(MODELS))}"
        raise ModelError(f"unknown model {name!r}; {hint}")
    return MODELS[name]


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build a registered model; its full config is kept on ``model.scopeseg_config`` for saving."""
    entry = model_entry(name)
    full = {**entry.defaults, **cfg}
    model = entry.factory(**full)
    model.scopeseg_config = {"name": name, "family": entry.family, **full}
    return model


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_manifest(
    config: dict[str, Any] | None = None, seed: int | None = None, data_digest: str | None = None
) -> dict:
    """Package versions, git commit, config, seed and data digest of a run (written beside checkpoints)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in (
        "scopeseg",
        "torch",
        "monai",
        "lightning",
        "numpy",
        "onnxruntime",
        "transformers",
        "albumentations",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
        "config": config or {},
        "seed": seed,
        "data_digest": data_digest,
    }


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_card(config: dict[str, Any], manifest: dict[str, Any], card: str | None) -> str:
    lines = [
        f"# {config.get('name', 'model')}",
        "",
        card or "A scopeseg checkpoint.",
        "",
        "## Config",
        "```json",
        json.dumps(config, indent=2, default=str),
        "```",
        "",
        "## Licenses",
        f"- Weights: {config.get('weights_license', 'Apache-2.0 (trained with scopeseg)')}",
        f"- Pretrained encoder: {config.get('encoder_weights') or 'none (random init)'}",
        f"- Training data: {config.get('data_license', 'see manifest.json')}",
        "",
        "## Run",
        f"- created {manifest.get('created')}, git {manifest.get('git_commit')}, seed {manifest.get('seed')}",
        f"- data digest {manifest.get('data_digest')}",
    ]
    return "\n".join(lines) + "\n"


def save_pretrained(
    model: nn.Module,
    path: str | Path,
    manifest: dict[str, Any] | None = None,
    card: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` + ``manifest.json`` + model card, atomically."""
    from safetensors.torch import save_file

    config = dict(getattr(model, "scopeseg_config", {}) or {})
    if not config.get("name"):
        raise ModelError("model has no scopeseg_config; build it with create_model()")
    config.update(extra or {})
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    manifest = manifest or run_manifest(config)
    with atomic_dir(path) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "scopeseg_model": config["name"]})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        (tmp / CARD_FILE).write_text(_model_card(config, manifest, card))
    return Path(path)


def load_model(path: str | Path, map_location: str = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild a model from a checkpoint folder (name from ``config.json``) and load weights strictly."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ModelError(
            "checkpoint folder not found" if not path.exists() else "checkpoint must be a folder", path
        )
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelError(f"missing {p.name} in checkpoint folder", path)
    config = read_json(cfg_path)
    if not isinstance(config, dict) or "name" not in config:
        raise ModelError("config.json has no model 'name'", cfg_path)
    name = config.pop("name")
    config.pop("family", None)
    entry = model_entry(name)
    import inspect

    params = inspect.signature(entry.factory).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in config.items() if takes_any or k in params}
    kwargs.update(overrides)
    if "pretrained" in params or takes_any:
        kwargs["pretrained"] = False  # weights come from the checkpoint, not the encoder cache
    extra_keys = [k for k in config if k not in kwargs]
    model = create_model(name, **kwargs)
    model.scopeseg_config.update({k: config[k] for k in extra_keys})
    try:
        state = load_file(str(w_path), device=map_location)
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ModelError(
            f"cannot read weights ({e.__class__.__name__}: {str(e).splitlines()[0]})", w_path
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights do not match model {name!r}: {str(e).splitlines()[0]}", w_path) from None
    model.eval()
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def set_seed(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
