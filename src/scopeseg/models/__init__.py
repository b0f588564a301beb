"""Models: the base contract, a registry of named factories per family, and checkpoint I/O."""

from .base import ScopesegModel
from .checkpoints import load_model, save_pretrained
from .registry import create_model, list_models, register_model

__all__ = ["ScopesegModel", "create_model", "list_models", "load_model", "register_model", "save_pretrained"]
