"""Models: a registry of named factories (semantic UNets, promptable SAM-family) and checkpoint I/O."""

from .registry import create_model, list_models, load_model, register_model, save_pretrained

__all__ = ["create_model", "list_models", "load_model", "register_model", "save_pretrained"]
