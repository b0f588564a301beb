"""What a model argument names: a model object, a checkpoint folder, a transformers SAM folder or a released name.

One resolver for the torch engines and for export, so every command accepts the same model arguments. A
released name is a registered model whose complete trained weights are installable under the same name
(``scopeseg weights``); other registered names build untrained networks and are refused here.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import ModelError

#: the interface kinds engines and exports serve: ``dense`` (image -> logits) and ``promptable`` (encode/decode)
KINDS = ("dense", "promptable")


def released_names() -> list[str]:
    """Registered models whose complete trained weights are released (a weights entry of the same name)."""
    from ..models.registry import list_models
    from ..models.weights import WEIGHTS

    return [name for name in list_models() if name in WEIGHTS]


def model_kind(model: nn.Module) -> str:
    """``promptable`` for models with the promptable capability (``encode``/``decode``), else ``dense``."""
    return "promptable" if model.promptable else "dense"


def load_torch_model(source: str | Path | nn.Module) -> nn.Module:
    """A model in eval mode from a model object, a checkpoint folder, a transformers SAM folder or a released name."""
    if isinstance(source, nn.Module):
        return source
    from ..models.checkpoints import load_model
    from ..models.registry import create_model, list_models
    from ..models.sam.hf import HFSamPromptable, is_hf_sam_dir

    path, name = Path(source), str(source)
    if is_hf_sam_dir(path):
        return HFSamPromptable.from_pretrained(path)
    if path.exists() or len(path.parts) > 1:  # a path, not a name: the checkpoint loader names what is wrong
        return load_model(path)
    released = released_names()
    if name in released:
        return create_model(name).eval()
    hint = f"give a released model ({', '.join(released)}) or a checkpoint folder"
    if name in list_models():
        raise ModelError(f"model {name!r} has no released trained weights; {hint}")
    raise ModelError(f"unknown model {name!r}: {hint}")


def check_kind(model: nn.Module, kind: str, source: object) -> nn.Module:
    """``model`` when it is of ``kind``; otherwise a one-line error naming the predictor that runs it."""
    found = model_kind(model)
    if found != kind:
        runner = {"dense": "Predictor / scopeseg predict", "promptable": "PromptPredictor / scopeseg segment"}
        raise ModelError(f"{source} is a {found} model, not {kind}; run it with {runner[found]}")
    return model
