"""transformers ``SamModel`` (HF-format SAM checkpoints already on disk) behind the promptable interface.

Same ``encode`` / ``decode`` contract as ``PromptableSAM`` (SAM ONNX prompt form in, all 4 masks out), so
``PromptPredictor`` drives it unchanged; images follow the ``sam`` recipe (= SamProcessor: longest side,
ImageNet mean/std, zero pad). Never downloads: the folder must hold ``config.json`` + weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ...errors import ModelError
from ...io import atomic_dir
from .model import PromptableModel


def is_hf_sam_dir(path: str | Path) -> bool:
    """True for a folder whose ``config.json`` is a transformers SAM config."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text())
        return isinstance(data, dict) and data.get("model_type") == "sam"
    except (OSError, ValueError):
        return False


class HFSamPromptable(PromptableModel):
    """Wrap a ``transformers.SamModel``: ``encode(pixels)``, ``decode(embedding, coords, labels, mask)``.

    Checkpoints stay in the transformers format (not exportable: its decoder loops over mask prompts).
    """

    preprocess = "sam"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.config.update(model_type="sam")
        self.model = model.eval()
        pcfg = model.config.prompt_encoder_config
        self.img_size = int(pcfg.image_size)
        self.low_res_size = 4 * int(pcfg.image_embedding_size)

    def save_pretrained(self, path: str | Path) -> Path:  # type: ignore[override]
        """Write the wrapped model as a transformers SAM folder (what ``from_pretrained`` reads), atomically."""
        with atomic_dir(path) as tmp:
            self.model.save_pretrained(str(tmp))
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> HFSamPromptable:  # type: ignore[override]
        """Load a transformers SAM folder already on disk (never downloads)."""
        from transformers import SamModel

        try:
            return cls(SamModel.from_pretrained(str(path), local_files_only=True))
        except (OSError, ValueError) as e:
            raise ModelError(
                f"cannot load the transformers SAM checkpoint: {str(e).splitlines()[0]}", path
            ) from None

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_embeddings(pixels)

    def _sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """SAM ONNX prompt form -> HF sparse embeddings ``(1, N, P, C)`` with HF's own weights."""
        pe = self.model.prompt_encoder
        emb = pe.shared_embedding((coords + 0.5)[None], (self.img_size, self.img_size))
        lab = labels[None, ..., None]
        out = torch.where(lab == -1, torch.zeros_like(emb), emb)
        out = out + (lab == -1).to(emb.dtype) * pe.not_a_point_embed.weight
        for i, point_embed in enumerate(pe.point_embed):
            out = out + (lab == i).to(emb.dtype) * point_embed.weight
        return out

    def _decode_one_mask_batch(self, embedding, sparse, dense):
        pos = self.model.get_image_wide_positional_embeddings().repeat(embedding.shape[0], 1, 1, 1)
        outs = [
            self.model.mask_decoder(embedding, pos, sparse, dense, multimask_output=m) for m in (False, True)
        ]
        masks = torch.cat([outs[0][0], outs[1][0]], dim=2)[0]
        iou = torch.cat([outs[0][1], outs[1][1]], dim=2)[0]
        return masks, iou

    def decode(self, embedding, coords, labels, mask_input=None):
        """All 4 low-res logits ``(N, 4, L, L)`` and IoU predictions ``(N, 4)`` (index 0 = single mask)."""
        sparse = self._sparse(coords, labels)
        if mask_input is None:
            h = w = self.low_res_size // 4
            dense = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)
            return self._decode_one_mask_batch(embedding, sparse, dense)
        parts = []  # HF adds one dense (mask) embedding per image: decode prompt by prompt
        for i in range(coords.shape[0]):
            dense = self.model.prompt_encoder.mask_embed(mask_input[i : i + 1])
            parts.append(self._decode_one_mask_batch(embedding, sparse[:, i : i + 1], dense))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
