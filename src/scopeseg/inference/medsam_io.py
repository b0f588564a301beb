"""MedSAM-on-laptop challenge I/O and inference: ``.npz`` cases (``imgs``, ``boxes``) -> ``segs`` label maps.

Follows the challenge baseline ``CVPR24_LiteMedSAM_infer.py``: 2D cases decode every box on one embedding
(later boxes overwrite earlier ones); 3D cases run slice by slice from the middle slice of each box, each
slice prompted with the box of the neighbouring slice's mask (in model-input pixels, +-3 px), falling
back to the given box when that mask is empty. As in the baseline, slices z_max and z_min are not
segmented (its ranges are end-exclusive).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_path, write_text
from ..progress import track

log = logging.getLogger(__name__)

BOX_SHIFT = 3  # the baseline's get_bbox256 margin in model-input pixels


@dataclass
class ChallengeCase:
    """One challenge input: ``imgs`` (HxW[x3] or DxHxW), ``boxes`` ((N, 4) xyxy or (N, 6) xyzxyz)."""

    name: str
    imgs: np.ndarray
    boxes: np.ndarray
    spacing: np.ndarray | None = None

    @property
    def is_3d(self) -> bool:
        return self.boxes.shape[1] == 6


def read_case(path: str | Path) -> ChallengeCase:
    """Read and check a challenge ``.npz`` (keys ``imgs`` and ``boxes``; ``spacing`` optional)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read npz ({e.__class__.__name__})", path) from None
    with z:
        missing = [k for k in ("imgs", "boxes") if k not in z.files]
        if missing:
            raise DataError(
                f"missing key(s) {', '.join(missing)}; found {', '.join(z.files) or 'none'}", path
            )
        imgs, boxes = z["imgs"], np.asarray(z["boxes"])
        spacing = z["spacing"] if "spacing" in z.files else None
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 6) or len(boxes) == 0:
        raise DataError(f"boxes: expected (N, 4) or (N, 6), got shape {boxes.shape}", path)
    is_3d = boxes.shape[1] == 6
    if is_3d and imgs.ndim != 3:
        raise DataError(f"3D boxes need a DxHxW volume, imgs has shape {imgs.shape}", path)
    if not is_3d and not (imgs.ndim == 2 or (imgs.ndim == 3 and imgs.shape[2] in (1, 3, 4))):
        raise DataError(f"2D boxes need an HxW or HxWx3 image, imgs has shape {imgs.shape}", path)
    if is_3d and np.any(boxes[:, 2] >= boxes[:, 5]):
        raise DataError("3D box with z_min >= z_max", path)
    return ChallengeCase(path.name, imgs, boxes, spacing)


def write_segs(path: str | Path, segs: np.ndarray) -> Path:
    """Write ``segs`` to a compressed npz atomically (the challenge output format)."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, segs=segs)
    return Path(path)


def _label_dtype(n: int):
    return np.uint8 if n < 256 else np.uint16


def segment_2d(predictor, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Label map of a 2D case: box i (1-based) paints its mask; later boxes overwrite earlier ones."""
    predictor.set_image(image)
    res = predictor.predict(boxes=np.asarray(boxes, np.float64)[:, :4])
    segs = np.zeros(predictor.image_size, dtype=_label_dtype(len(boxes)))
    for i, mask in enumerate(res.masks, start=1):
        segs[mask] = i
    return segs


def _box_from_mask(predictor, mask: np.ndarray) -> np.ndarray | None:
    """The baseline's get_bbox256: mask resized like the image (INTER_AREA), padded, bbox +-3 px, clipped."""
    size = predictor.engine.img_size
    small = predictor.recipe.resize(mask, size)
    if small.max() == 0:
        return None
    ys, xs = np.nonzero(small)
    return np.array(
        [
            max(0, xs.min() - BOX_SHIFT),
            max(0, ys.min() - BOX_SHIFT),
            min(size, xs.max() + BOX_SHIFT),
            min(size, ys.max() + BOX_SHIFT),
        ],
        np.float32,
    )


class _SliceCache:
    """Embeddings of recently encoded slices, so overlapping 3D boxes encode each slice once."""

    def __init__(self, predictor, volume: np.ndarray, capacity: int = 32):
        self.predictor, self.volume, self.capacity = predictor, volume, capacity
        self.items: OrderedDict[int, tuple] = OrderedDict()

    def set(self, z: int) -> None:
        p = self.predictor
        if z in self.items:
            self.items.move_to_end(z)
            p.set_embedding(*self.items[z])
            return
        p.set_image(self.volume[z])
        self.items[z] = p.get_embedding()
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)


def segment_3d(predictor, volume: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Label map of a 3D case by slice-wise box propagation from each box's middle slice (see module doc)."""
    segs = np.zeros(volume.shape, dtype=_label_dtype(len(boxes)))
    cache = _SliceCache(predictor, volume)
    for idx, box in enumerate(np.asarray(boxes), start=1):
        x0, y0, z0, x1, y1, z1 = (int(v) for v in box)
        mid_box = np.array([[x0, y0, x1, y1]], np.float64)
        z_mid = int((z1 - z0) / 2 + z0)
        temp = np.zeros(volume.shape, dtype=np.uint8)
        order = list(range(z_mid, z1)) + list(range(z_mid - 1, z0, -1))
        for z in order:
            if not 0 <= z < volume.shape[0]:
                raise DataError(f"box {idx}: slice {z} outside the volume of {volume.shape[0]} slices")
            cache.set(z)
            prev = None if z == z_mid else temp[z - 1 if z > z_mid else z + 1]
            input_box = None if prev is None else _box_from_mask(predictor, prev)
            if input_box is None:
                mask = predictor.predict(boxes=mid_box).masks[0]
            else:
                mask = predictor.predict_input_space(boxes=input_box[None]).masks[0]
            temp[z, mask] = idx
        segs[temp > 0] = idx
    return segs


def infer_case(predictor, case: ChallengeCase) -> np.ndarray:
    """``segs`` for one case (2D or 3D)."""
    if case.is_3d:
        return segment_3d(predictor, case.imgs, case.boxes)
    return segment_2d(predictor, case.imgs, case.boxes)


def infer_folder(
    predictor, in_dir: str | Path, out_dir: str | Path, resume: bool = False, progress: bool = True
) -> list[tuple[str, float]]:
    """Run every ``*.npz`` of ``in_dir``; write ``segs`` npz with the same names + ``efficiency.csv``."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise DataError("input folder not found", in_dir)
    files = sorted(in_dir.glob("*.npz"))
    if not files:
        raise DataError("no .npz cases in folder", in_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    times: list[tuple[str, float]] = []
    for f in track(files, "medsam-infer", total=len(files)) if progress else files:
        target = out_dir / f.name
        if resume and target.is_file():
            continue
        t0 = time.perf_counter()
        case = read_case(f)
        write_segs(target, infer_case(predictor, case))
        times.append((f.name, time.perf_counter() - t0))
        log.info("%s: %.3f s", f.name, times[-1][1])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "time"])
    w.writerows((name, f"{t:.4f}") for name, t in times)
    write_text(out_dir / "efficiency.csv", buf.getvalue())
    return times
