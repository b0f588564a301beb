"""Torch Dataset adapters over the canonical data set.

``SemanticDataset`` rasterises instances into a label map (binary: the chosen categories vs background;
multi-class: category -> class index) and yields ``(image float[3,H,W] in [0,1], label long[H,W])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .coco import CocoDataset


def resolve_categories(ds: CocoDataset, selectors: Sequence[str] | None) -> list[int]:
    """Category ids for names or ``supercategory:NAME`` selectors (None = every category)."""
    if not selectors:
        return sorted(ds.categories)
    out: list[int] = []
    for sel in selectors:
        if sel.startswith("supercategory:"):
            sup = sel.split(":", 1)[1]
            ids = [cid for cid, c in ds.categories.items() if c.get("supercategory") == sup]
            if not ids:
                raise DataError(f"no category has supercategory {sup!r}", ds.path)
            out += ids
        else:
            out.append(ds.category_id(sel))
    return sorted(set(out))


def build_class_map(
    ds: CocoDataset, mode: str, selectors: Sequence[str] | None
) -> tuple[dict[int, int], list[str]]:
    """(category id -> class index, foreground class names). Binary: all chosen categories -> 1."""
    cids = resolve_categories(ds, selectors)
    if mode == "binary":
        if selectors and len(selectors) == 1:
            name = selectors[0].split(":", 1)[-1]
        elif len(cids) == 1:
            name = ds.categories[cids[0]]["name"]
        else:
            name = "foreground"
        return {cid: 1 for cid in cids}, [name]
    if mode != "multiclass":
        raise DataError(f"unknown mode {mode!r} (binary or multiclass)")
    return {cid: i + 1 for i, cid in enumerate(cids)}, [ds.categories[c]["name"] for c in cids]


class SemanticDataset(Dataset):
    """Images + label maps of ``image_ids``; ``cache`` keeps resized samples in memory (small data sets)."""

    def __init__(
        self,
        ds: CocoDataset,
        class_map: dict[int, int],
        image_ids: Sequence[int] | None = None,
        transform=None,
        cache_transform=None,
    ):
        self.ds = ds
        self.class_map = class_map
        self.ids = list(image_ids) if image_ids is not None else list(ds.images)
        self.transform = transform
        self.cache_transform = cache_transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8, uint8 label map) at the stored size (or the cache size)."""
        iid = self.ids[i]
        if iid in self._cache:
            return self._cache[iid]
        img = self.ds.load_image(iid)
        lab = self.ds.semantic_mask(iid, self.class_map)
        if img.shape[:2] != lab.shape:
            raise DataError(
                f"image {iid}: image is {img.shape[0]}x{img.shape[1]} but annotations say "
                f"{lab.shape[0]}x{lab.shape[1]}",
                self.ds.image_path(iid),
            )
        if self.cache_transform is not None:
            out = self.cache_transform(image=img, mask=lab)
            img, lab = out["image"], out["mask"]
            self._cache[iid] = (img, lab)
        return img, lab

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = self.raw(i)
        if self.transform is not None:
            out = self.transform(image=img, mask=lab)
            img, lab = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)
        y = torch.from_numpy(np.ascontiguousarray(lab)).long()
        return x, y
