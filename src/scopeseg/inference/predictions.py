"""The two outputs every predictor writes: a predicted canonical data set and a COCO results JSON.

Why: ``predict`` and ``segment`` write through this one writer, so ``evaluate``, ``info``, ``validate`` and
``preview`` read ``OUT/predicted/`` like any data set (RLE masks, the input's image and category ids where
the input had them, images linked or written beside the annotations) and ``OUT/results.json`` is the COCO
results list (``image_id, category_id, segmentation, bbox, score``) keyed to the same ids. Mask PNGs are
views for people and are written by the callers, never read back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.coco import CocoDataset
from ..data.records import ANNOTATION_FILE
from ..io import atomic_dir, check_inside, write_image, write_json
from ..metrics.inputs import dataset_results

#: names inside a prediction output folder (one name per meaning)
PREDICTED_DATASET = "predicted"
RESULTS_FILE = "results.json"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


class PredictionWriter:
    """Collects predicted masks, then writes ``OUT/predicted/`` (data set) and ``OUT/results.json`` at once.

    Use as a context manager: the data set folder is built in a temp folder and replaces ``OUT/predicted``
    only when the block succeeds (an earlier output stays as it was on failure). ``images=False`` stores
    annotations only (the folder is then a data set whose image files are absent).
    """

    def __init__(self, out: str | Path, categories: Sequence[dict[str, Any]], images: bool = True):
        self.out = Path(out)
        self.images = images
        self.ds = CocoDataset()
        for c in categories:
            self.ds.add_category(**c)
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None

    def __enter__(self) -> PredictionWriter:
        self._tmp = self._stack.enter_context(atomic_dir(self.out / PREDICTED_DATASET))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._finish()
        self._stack.__exit__(exc_type, exc, tb)

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
            dst = check_inside(self._tmp, file_name)
            if source is not None:
                _link_or_copy(Path(source), dst)
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
        self.ds.root = self._tmp
        self.ds.save(self._tmp / ANNOTATION_FILE)
        write_json(self.out / RESULTS_FILE, dataset_results(self.ds))

    def paths(self) -> dict[str, str]:
        """Where the two outputs are (for summaries)."""
        return {"predicted": str(self.out / PREDICTED_DATASET), "results": str(self.out / RESULTS_FILE)}
