"""Checkpoint folders: ``model.safetensors`` + ``config.json`` + run manifest + model card (DESIGN: Checkpoints).

A model is rebuilt from the name in ``config.json`` through the registry and its weights loaded strictly from
safetensors, so a checkpoint is never unpickled.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError
from ..io import atomic_dir, read_json
from .registry import create_model, model_entry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"

#: packages whose versions a run manifest records
MANIFEST_PACKAGES = (
    "scopeseg",
    "torch",
    "monai",
    "lightning",
    "numpy",
    "onnxruntime",
    "transformers",
    "albumentations",
)


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
    for pkg in MANIFEST_PACKAGES:
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
    """SHA-256 of a file, read in 1 MiB chunks (data set digests in run manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_card(config: dict[str, Any], manifest: dict[str, Any], card: str | None) -> str:
    """The short README of a checkpoint: what it is, its config, the licenses of weights and data."""
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
    """Write ``model.safetensors`` + ``config.json`` + ``manifest.json`` + model card, atomically.

    ``model`` keeps the base contract (``scopeseg.models.base.ScopesegModel``): its ``config`` names it.
    """
    from safetensors.torch import save_file

    config = {**model.config, **(extra or {})}
    if not config.get("name"):
        raise ModelError(f"{type(model).__name__} has no registered name; build it with create_model()")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    manifest = manifest or run_manifest(config)
    with atomic_dir(path) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "scopeseg_model": config["name"]})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        (tmp / CARD_FILE).write_text(model_card(config, manifest, card))
    return Path(path)


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder (it must name the model)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(
            "checkpoint folder not found" if not path.exists() else "checkpoint must be a folder", path
        )
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelError(f"missing {CONFIG_FILE} in checkpoint folder", path)
    config = read_json(cfg_path)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise ModelError("config.json has no model 'name'", cfg_path)
    return config


def load_model(path: str | Path, map_location: str = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild a model from a checkpoint folder (name from ``config.json``) and load weights strictly.

    Keys of ``config.json`` the factory takes are its arguments; the others (threshold, categories, ...) are
    kept in the model's ``config`` as they were saved.
    """
    from safetensors.torch import load_file

    config = read_config(path)
    cfg_path, w_path = Path(path) / CONFIG_FILE, Path(path) / WEIGHTS_FILE
    if not w_path.is_file():
        raise ModelError(f"missing {WEIGHTS_FILE} in checkpoint folder", path)
    name = config.pop("name")
    config.pop("family", None)
    try:
        params = inspect.signature(model_entry(name).factory).parameters
    except ModelError as e:
        raise ModelError(str(e), cfg_path) from None
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in config.items() if takes_any or k in params}
    kwargs.update(overrides)
    if "pretrained" in params or takes_any:
        kwargs["pretrained"] = False  # weights come from the checkpoint, not the encoder cache
    try:
        model = create_model(name, **kwargs)
    except ModelError as e:
        raise ModelError(str(e), cfg_path) from None
    except (TypeError, ValueError, KeyError, AssertionError) as e:  # the factory refused the saved arguments
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"model {name!r} cannot be built from these settings ({msg})", cfg_path) from None
    model.config.update({k: v for k, v in config.items() if k not in kwargs})
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
