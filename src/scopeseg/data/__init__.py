"""Canonical data: COCO JSON with RLE masks, grouped into videos."""

from .coco import CocoDataset, load_dataset

__all__ = ["CocoDataset", "load_dataset"]
