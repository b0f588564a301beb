"""Metrics engine: every convention named, reproduced exactly (see ``reference.REGISTRY``), and fast.

Modules: ``overlap`` (Dice/IoU with explicit empty rules), ``surface`` (NSD/HD/ASSD, DeepMind and MONAI
conventions), ``medsam`` (MedSAM challenge scorer), ``endovis`` (challenge IoU / IoU / mcIoU), ``semantic``
(mmseg mIoU), ``instances`` (COCO AP, VOC-style mAP), ``video`` (DAVIS J&F), ``protocols`` (named bundles).
"""

from .overlap import dice, iou, per_class_dice, per_class_iou, precision, recall
from .surface import SurfaceDistances, assd, hausdorff, nsd, surface_distances

__all__ = [
    "SurfaceDistances",
    "assd",
    "dice",
    "hausdorff",
    "iou",
    "nsd",
    "per_class_dice",
    "per_class_iou",
    "precision",
    "recall",
    "surface_distances",
]
