"""Lightning DataModule for semantic training over the canonical data set (split by video)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..data.coco import CocoDataset, load_dataset
from ..data.datasets import SemanticDataset, build_class_map
from ..data.transforms import eval_transform, train_transform
from ..errors import DataError
from .common import make_loader
from .config import SemanticTrainConfig


def train_val_ids(ds: CocoDataset, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Use the data's ``split`` fields when they name train/val; otherwise split by video with ``seed``."""
    splits = ds.splits()
    if "train" in splits and "val" in splits:
        return splits["train"], splits["val"]
    parts = ds.copy().assign_splits({"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
    if not parts["val"] or not parts["train"]:
        raise DataError(f"cannot split {len(ds)} images into train and val; give val_data=", ds.path)
    return parts["train"], parts["val"]


class SemanticDataModule(L.LightningDataModule):
    def __init__(self, cfg: SemanticTrainConfig):
        super().__init__()
        if not cfg.data:
            raise DataError("no training data: pass data=PATH (a data set folder or COCO JSON)")
        self.cfg = cfg
        self.ds = load_dataset(cfg.data)
        if not self.ds.images:
            raise DataError("data set has no images", self.ds.path)
        self.class_map, self.classes = build_class_map(self.ds, cfg.mode, cfg.categories)
        if cfg.val_data:
            self.val_ds = load_dataset(cfg.val_data)
            vmap, _ = build_class_map(self.val_ds, cfg.mode, cfg.categories)
            names = {self.ds.categories[c]["name"] for c in self.class_map}
            vnames = {self.val_ds.categories[c]["name"] for c in vmap}
            if names != vnames:
                raise DataError(
                    f"validation categories {sorted(vnames)} differ from training {sorted(names)}",
                    self.val_ds.path,
                )
            self.val_class_map = vmap
            self.train_ids, self.val_ids = list(self.ds.images), list(self.val_ds.images)
        else:
            self.val_ds, self.val_class_map = self.ds, self.class_map
            self.train_ids, self.val_ids = train_val_ids(self.ds, cfg.val_fraction, cfg.seed)
        size = cfg.train_size
        cache = eval_transform(size) if cfg.cache_images else None
        self.train_set = SemanticDataset(
            self.ds,
            self.class_map,
            self.train_ids,
            transform=train_transform(None if cache else size, cfg.augment),
            cache_transform=cache,
        )
        self.val_set = SemanticDataset(
            self.val_ds,
            self.val_class_map,
            self.val_ids,
            transform=None if cache else eval_transform(size),
            cache_transform=cache,
        )

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.cfg, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)
