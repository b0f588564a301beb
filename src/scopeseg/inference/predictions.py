"""The two outputs every predictor writes: a predicted canonical data set and a COCO results JSON.

Why: ``predict`` and ``segment`` write through this one writer, so ``evaluate``, ``info``, ``validate`` and
``preview`` read ``OUT/predicted/`` like any data set (RLE masks, the input's image and category ids where
the input had them, images linked or written beside the annotations) and ``OUT/results.json`` is the COCO
results list (``image_id, category_id, segmentation, bbox, score``) keyed to the same ids. Mask PNGs are
views for people and are written by the callers, never read back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.coco import CocoDataset
from ..data.records import ANNOTATION_FILE
from ..io import check_inside, link_or_copy, output_dir, write_image, write_json
from ..metrics.inputs import dataset_results
from ..viz import palette_color

if TYPE_CHECKING:
    from ..models.dense_recipe import DenseRecipe

#: names inside a prediction output folder (one name per meaning)
PREDICTED_DATASET = "predicted"
RESULTS_FILE = "results.json"


class PredictionWriter:
    """The prediction output folder ``OUT``: ``predicted/`` (data set), ``results.json`` and the views.

    Use as a context manager: everything is written into a hidden temp sibling of ``OUT`` (``io.output_dir``)
    that replaces ``OUT`` only when the block succeeds, so ``OUT`` is absent, the earlier output or the whole
    new one; an existing ``OUT`` is refused unless ``overwrite``. Views go to ``view(name)``. ``images=False``
    stores annotations only (the folder is then a data set whose image files are absent).
    """

    def __init__(
        self,
        out: str | Path,
        categories: Sequence[dict[str, Any]],
        images: bool = True,
        overwrite: bool = False,
    ):
        self.out = Path(out)
        self.images = images
        self.overwrite = overwrite
        self.ds = CocoDataset()
        for c in categories:
            self.ds.add_category(**c)
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None

    def __enter__(self) -> PredictionWriter:
        self._tmp = self._stack.enter_context(output_dir(self.out, self.overwrite))
        (self._tmp / PREDICTED_DATASET).mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._finish()
        self._stack.__exit__(exc_type, exc, tb)
        self.ds.root = self.out / PREDICTED_DATASET

    def view(self, name: str) -> Path:
        """Where the view file ``name`` (``masks/x.png``, ``overlays/x.jpg``, ``x_overlay.mp4``) is written."""
        assert self._tmp is not None, "PredictionWriter is used as a context manager"
        path = check_inside(self._tmp, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_image(
        self,
        file_name: str,
        height: int,
        width: int,
        source: Path | None = None,
        pixels: np.ndarray | None = None,
        id: int | None = None,
        **kw: Any,
    ) -> int:
        """Add an image record; its file is linked from ``source`` or written from ``pixels`` (RGB)."""
        iid = self.ds.add_image(file_name, height, width, id=id, **kw)
        if self.images and self._tmp is not None:
            dst = check_inside(self._tmp / PREDICTED_DATASET, file_name)
            if source is not None:
                link_or_copy(source, dst)
            elif pixels is not None:
                write_image(dst, pixels, quality=95)
        return iid

    def add_video(self, name: str, **kw: Any) -> int:
        return self.ds.add_video(name, **kw)

    def add_mask(self, image_id: int, category_id: int, mask: np.ndarray, score: float, **kw: Any) -> int:
        """Add one predicted binary mask (bool ``HxW``) with its confidence ``score``."""
        return self.ds.add_annotation(
            image_id, category_id, mask.astype(bool), score=round(float(score), 5), **kw
        )

    def _finish(self) -> None:
        assert self._tmp is not None
        self.ds.root = self._tmp / PREDICTED_DATASET
        self.ds.save(self.ds.root / ANNOTATION_FILE)
        write_json(self._tmp / RESULTS_FILE, dataset_results(self.ds))

    def paths(self) -> dict[str, str]:
        """Where the two outputs are (for summaries)."""
        return {"predicted": str(self.out / PREDICTED_DATASET), "results": str(self.out / RESULTS_FILE)}


def model_categories(classes: list[str], gt: CocoDataset | None) -> list[dict[str, Any]]:
    """Model classes as categories: a COCO input's id for a class of the same name, else the next free id."""
    by_name = {c["name"]: cid for cid, c in gt.categories.items()} if gt is not None else {}
    next_id = max([0, *by_name.values()]) + 1 if by_name else 1
    out = []
    for i, name in enumerate(classes):
        cid = by_name.get(name)
        if cid is None:
            cid, next_id = next_id, next_id + 1
        out.append({"name": name, "id": cid, "color": palette_color(i)})
    return out


class MaskViews:
    """Turns probability maps into masks of the predicted data set plus PNG / overlay views.

    Why: images, data sets, videos and streams store their predictions the same way.
    """

    def __init__(self, predictor: DenseRecipe, writer: PredictionWriter, masks: bool, overlays: bool):
        self.p, self.w, self.masks, self.overlays = predictor, writer, masks, overlays
        cats = list(writer.ds.categories)
        self.cat_ids = {i + 1: cid for i, cid in enumerate(cats)}  # label value -> category id
        self.colors = {i + 1: writer.ds.categories[cid]["color"] for i, cid in enumerate(cats)}

    def add(self, iid: int, probs: np.ndarray, stem: str, img: np.ndarray, views: bool = True) -> np.ndarray:
        labels = self.p.labels(probs)
        for c, cid in self.cat_ids.items():
            m = labels == c
            if m.any():
                score = float(probs[0][m].mean() if self.p.binary else probs[c][m].mean())
                self.w.add_mask(iid, cid, m, score)
        if views and self.masks:
            write_image(self.w.view(f"masks/{stem}.png"), labels * 255 if self.p.binary else labels)
        if views and self.overlays:
            from ..viz import overlay

            write_image(self.w.view(f"overlays/{stem}.jpg"), overlay(img, labels, self.colors), quality=90)
        return labels


def batched(items: Iterable[Any], n: int) -> Iterator[list]:
    """Lists of ``n`` consecutive items (the last may be shorter), read lazily."""
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
