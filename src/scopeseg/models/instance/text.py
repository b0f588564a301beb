"""Class-name text embeddings: all-MiniLM-L6-v2 (BertModel + its tokenizer, mean pooling, 384-d), offline.

Why each name alone: a sentence template ("a surgical video frame with X, Y") makes every prompt alike
(cosine ~0.7); one embedding per class name keeps them apart. The encoder is frozen; models keep only the
(classes x 384) table, so a checkpoint needs no text weights until the class names change.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ModelError

TEXT_WEIGHTS = "minilm"
TEXT_DIM = 384
#: BERT uncased vocabulary size: a tokenizer that loads with another size is not the real one
VOCAB_SIZE = 30522


class TextEncoder(nn.Module):
    """A BERT sentence encoder with mean pooling over non-padding tokens; ``embed(names) -> (N, dim)``."""

    def __init__(self, bert: nn.Module, tokenizer, name: str):
        super().__init__()
        self.bert = bert.eval()
        self.tokenizer = tokenizer
        self.name = name
        for p in self.bert.parameters():
            p.requires_grad_(False)

    @property
    def dim(self) -> int:
        return int(self.bert.config.hidden_size)

    @torch.no_grad()
    def embed(self, names: Sequence[str]) -> torch.Tensor:
        names = [clean_name(n) for n in names]
        if not names:
            raise ModelError("no class names to embed")
        tok = self.tokenizer(names, padding=True, truncation=True, max_length=32, return_tensors="pt")
        out = self.bert(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
        m = tok["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * m).sum(1) / m.sum(1).clamp(min=1e-9)


def clean_name(name: str) -> str:
    """A category name as words ("bipolar_forceps" -> "bipolar forceps"); an empty name is refused."""
    text = " ".join(str(name).replace("_", " ").replace("-", " ").split())
    if not text:
        raise ModelError(f"class name {name!r} is empty")
    return text


def minilm_available() -> bool:
    from ..weights import is_installed

    return is_installed(TEXT_WEIGHTS)


@functools.lru_cache(maxsize=2)
def load_minilm() -> TextEncoder:
    """The installed MiniLM (``scopeseg weights install minilm``), read offline; the vocabulary size is checked."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from ..weights import extras_dir, load_state_dict

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sd = load_state_dict(TEXT_WEIGHTS)
    folder = extras_dir(TEXT_WEIGHTS)
    cfg = BertConfig.from_json_file(str(folder / "config.json"))
    bert = BertModel(cfg, add_pooling_layer=False)
    sd = {k: v for k, v in sd.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
    missing, unexpected = bert.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelError(
            f"MiniLM weights do not fit BertModel: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    tokenizer = BertTokenizerFast(
        vocab_file=str(folder / "vocab.txt"),
        tokenizer_file=str(folder / "tokenizer.json"),
        do_lower_case=True,
    )
    if len(tokenizer) != VOCAB_SIZE:
        raise ModelError(f"MiniLM tokenizer has {len(tokenizer)} tokens, expected {VOCAB_SIZE}", folder)
    return TextEncoder(bert, tokenizer, TEXT_WEIGHTS)


def random_text_encoder(dim: int = 32, seed: int = 0) -> TextEncoder:
    """A tiny random BERT over a character vocabulary: unit tests of the fusion without the real weights."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    tokenizer = BertTokenizerFast(vocab={v: i for i, v in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=64,
    )
    return TextEncoder(BertModel(cfg, add_pooling_layer=False), tokenizer, "random")


def text_encoder(kind: str) -> TextEncoder:
    """``minilm`` (the installed real weights) or ``random`` (tests)."""
    if kind == TEXT_WEIGHTS:
        return load_minilm()
    if kind == "random":
        return random_text_encoder()
    raise ModelError(f"unknown text encoder {kind!r} (known: minilm, random)")
