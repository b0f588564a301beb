"""The models the app offers and their per-image embedding cache.

Promptable models (``PromptPredictor``) keep one image embedding per (media, frame) in an LRU, so a new box or
click costs only the prompt decoder. Other families load through the predictor registry
(``inference.predictors.load_predictor``), so a family added later (instance, with class names) appears
without a change here as long as its predictor has ``predict(images)``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ModelError
from .files import NotFound

log = logging.getLogger(__name__)

#: released promptable models offered when their weights are installed
RELEASED_PROMPTABLE = ("litemedsam", "litemedsam-scope", "mobilesam")


@dataclass
class ModelEntry:
    """A model by name: where it comes from, its family, and the loaded predictor once used."""

    name: str
    family: str  # promptable | semantic | instance | ...
    source: Any  # released name, checkpoint folder, or a predictor object
    classes: list[str] = field(default_factory=list)
    predictor: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def public(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "classes": self.classes,
            "loaded": self.predictor is not None,
            # propagation: promptable models through the box tracker, video models step by themselves
            "video": self.family in ("promptable", "video"),
            "editable_classes": self.family == "instance",
        }


def family_of(path: Path) -> tuple[str, list[str]]:
    """Family and class names of a checkpoint folder (``config.json``)."""
    from ..models.checkpoints import read_config

    cfg = read_config(path)
    family = cfg.get("family")
    if not family:
        raise ModelError("config.json names no model 'family'", path)
    return str(family), [str(c) for c in (cfg.get("classes") or [])]


class ModelHub:
    """Named models, loaded on first use; embeddings cached per promptable model."""

    def __init__(self, engine: str = "torch", threads: int | None = None, embeddings: int = 24):
        self.engine, self.threads, self.capacity = engine, threads, embeddings
        self.entries: dict[str, ModelEntry] = {}
        self._cache: dict[str, OrderedDict] = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ catalogue
    def add(
        self, name: str, source: Any, family: str | None = None, classes: list[str] | None = None
    ) -> None:
        """Offer a model: a predictor object (family given or read from it), a released name or a folder."""
        if family is None:
            if not isinstance(source, (str, Path)):
                if hasattr(source, "step") and hasattr(source, "reset"):
                    family = "video"
                elif hasattr(source, "set_image"):
                    family = "promptable"
                else:
                    family = str(getattr(source, "family", "semantic"))
            elif str(source) in RELEASED_PROMPTABLE:
                family = "promptable"
            else:
                family, classes = family_of(Path(source))
        entry = ModelEntry(name, family, source, list(classes or []))
        if not isinstance(source, (str, Path)):
            entry.predictor = source
            entry.classes = entry.classes or list(getattr(source, "classes", []) or [])
        self.entries[name] = entry

    def add_released(self) -> None:
        """Installed released promptable models."""
        from ..models import weights

        for name in RELEASED_PROMPTABLE:
            try:
                if weights.is_installed(name):
                    self.add(name, name, "promptable")
            except Exception:  # noqa: BLE001 - a broken weights table must not stop the server
                log.warning("could not check the %s weights", name)

    def list(self) -> list[dict]:
        return [e.public() for e in self.entries.values()]

    def entry(self, name: Any) -> ModelEntry:
        if not isinstance(name, str) or name not in self.entries:
            known = ", ".join(self.entries) or "none configured"
            raise NotFound(f"unknown model {name!r} (available: {known})")
        return self.entries[name]

    def predictor(self, name: str, family: str | None = None) -> tuple[ModelEntry, Any]:
        """The loaded predictor of ``name`` (loaded once, under its lock); ``family`` checked when given."""
        e = self.entry(name)
        if family is not None and e.family != family:
            raise DataError(f"model {name!r} is a {e.family} model, not {family}")
        if e.predictor is None:
            with e.lock:
                if e.predictor is None:
                    e.predictor = self._load(e)
                    e.classes = e.classes or list(getattr(e.predictor, "classes", []) or [])
        return e, e.predictor

    def _load(self, e: ModelEntry) -> Any:
        if e.family == "promptable":
            from ..inference.prompt import PromptPredictor

            return PromptPredictor.from_pretrained(e.source, engine=self.engine, threads=self.threads)
        from ..inference.predictors import load_predictor

        options: dict[str, Any] = {"engine": self.engine}
        if self.threads:
            options["threads"] = self.threads
        return load_predictor(e.source, **options)

    # ------------------------------------------------------------------ promptable
    def embedding(self, name: str, key: tuple, image: np.ndarray) -> tuple[Any, Any, bool]:
        """``(embedding, prepared image, was cached)`` of ``image`` under ``key`` for promptable ``name``."""
        e, pred = self.predictor(name, "promptable")
        with self._cache_lock:
            cache = self._cache.setdefault(name, OrderedDict())
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                return hit[0], hit[1], True
        with e.lock:
            pred.set_image(image)
            emb, prep = pred.get_embedding()
        with self._cache_lock:
            cache[key] = (emb, prep)
            while len(cache) > self.capacity:
                cache.popitem(last=False)
        return emb, prep, False

    def forget(self, media_id: str) -> None:
        """Drop the embeddings of a closed media item."""
        with self._cache_lock:
            for cache in self._cache.values():
                for k in [k for k in cache if k[0] == media_id]:
                    del cache[k]

    def decode(
        self,
        name: str,
        key: tuple,
        image: np.ndarray,
        box: list[float] | None,
        points: list[list[float]],
        labels: list[int],
        mask_input: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float, np.ndarray, bool]:
        """One object's mask from a box and/or points on a cached embedding: (mask, score, low-res, cached)."""
        emb, prep, cached = self.embedding(name, key, image)
        e, pred = self.predictor(name, "promptable")
        kw: dict[str, Any] = {}
        if box is not None:
            kw["boxes"] = [box]
        if points:
            kw["points"] = [points]
            kw["point_labels"] = [labels]
        if not kw:
            raise DataError("a prompt needs a box or at least one point")
        if mask_input is not None:
            kw["mask_input"] = mask_input
        with e.lock:
            pred.set_embedding(emb, prep, image)  # the pixels too: box zoom crops them
            out = pred.predict(**kw)
        return out.masks[0], float(out.scores[0]), out.low_res_logits[0], cached


def dense_objects(
    predictor: Any, image: np.ndarray, classes: list[str]
) -> list[tuple[str, np.ndarray, float]]:
    """``(class name, bool mask, score)`` of a non-promptable predictor on one image.

    A label map (semantic ``Predictor.predict``) gives one object per class present; a result with ``masks``
    (and ``labels`` / ``category_ids``, ``scores``) one per instance. ``classes`` are given to predictors that
    take class names (``set_classes``), the open-vocabulary instance family.
    """
    if (
        classes
        and hasattr(predictor, "set_classes")
        and list(classes) != list(getattr(predictor, "classes", []))
    ):
        predictor.set_classes(list(classes))
    out = predictor.predict([image])
    out = out[0] if isinstance(out, (list, tuple)) else out
    names = list(getattr(predictor, "classes", []) or classes)
    if isinstance(out, (list, tuple)) and all(hasattr(i, "mask") for i in out):  # instances (Mask2Former)
        return [
            (names[int(i.label)] if 0 <= int(i.label) < len(names) else f"class {i.label}",
             np.asarray(i.mask, bool), float(getattr(i, "score", 1.0)))
            for i in out
        ]  # fmt: skip
    if isinstance(out, np.ndarray) and out.ndim == 2:
        objs = []
        for v in sorted(int(v) for v in np.unique(out) if v > 0):
            name = names[v - 1] if 0 < v <= len(names) else f"class {v}"
            objs.append((name, out == v, 1.0))
        return objs
    masks = getattr(out, "masks", None)
    if masks is None:
        raise ModelError(f"predictor {type(predictor).__name__} returned no label map or masks")
    masks = np.asarray(masks).astype(bool)
    ids = getattr(out, "labels", None)
    if ids is None:
        ids = getattr(out, "category_ids", None)
    scores = getattr(out, "scores", None)
    objs = []
    for i, m in enumerate(masks):
        k = int(ids[i]) if ids is not None else 0
        name = names[k] if 0 <= k < len(names) else f"class {k}"
        objs.append((name, m, float(scores[i]) if scores is not None else 1.0))
    return objs
