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
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_path, check_output, output_dir, write_text
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


def open_case(path: str | Path):
    """Open a challenge ``.npz`` lazily (its arrays are read on access) and check it holds ``imgs``, ``boxes``.

    Why: ``infer_folder`` checks every case's keys this cheaply before it writes anything.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read npz ({e.__class__.__name__}: {str(e)[:80]})", path) from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy renamed to .npz
        raise DataError("not an npz archive (a single array)", path)
    missing = [k for k in ("imgs", "boxes") if k not in z.files]
    if missing:
        z.close()
        raise DataError(f"missing key(s) {', '.join(missing)}; found {', '.join(z.files) or 'none'}", path)
    return z


def read_case(path: str | Path) -> ChallengeCase:
    """Read and check a challenge ``.npz`` (keys ``imgs`` and ``boxes``; ``spacing`` optional)."""
    path = Path(path)
    with open_case(path) as z:
        try:
            imgs, boxes = z["imgs"], np.asarray(z["boxes"])
            spacing = z["spacing"] if "spacing" in z.files else None
        except ValueError as e:  # object arrays: allow_pickle=False refuses to unpickle them
            raise DataError(f"cannot read arrays ({str(e)[:80]}); expected numeric arrays", path) from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise DataError(f"cannot read arrays ({e.__class__.__name__}: {str(e)[:80]})", path) from None
    for key, a in (("imgs", imgs), ("boxes", boxes)):
        if a.dtype.kind not in "biuf":
            raise DataError(f"{key} has dtype {a.dtype}, expected numbers", path)
    if not np.isfinite(boxes).all():
        raise DataError("boxes hold NaN or infinite values", path)
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
    if is_3d and (boxes[:, 2].min() < 0 or boxes[:, 5].max() > imgs.shape[0]):
        raise DataError(f"3D box slices outside the volume of {imgs.shape[0]} slices", path)
    return ChallengeCase(path.name, imgs, boxes, spacing)


def write_segs(path: str | Path, segs: np.ndarray) -> Path:
    """Write ``segs`` to a compressed npz atomically (the challenge output format)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
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


EFFICIENCY_FILE = "efficiency.csv"


def check_cases(in_dir: str | Path) -> list[Path]:
    """The ``*.npz`` cases of ``in_dir``, each checked for its keys (cheap: no array is read)."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise DataError("input folder not found", in_dir)
    files = sorted(in_dir.glob("*.npz"))
    if not files:
        raise DataError("no .npz cases in folder", in_dir)
    for f in files:
        open_case(f).close()
    return files


def _read_times(path: Path) -> dict[str, str]:
    """``case -> time`` rows of an ``efficiency.csv`` (empty when there is none)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["case"]: r["time"] for r in csv.DictReader(f) if r.get("case") and r.get("time")}


def _write_times(path: Path, rows: dict[str, str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "time"])
    w.writerows(sorted(rows.items()))
    write_text(path, buf.getvalue())


def infer_folder(
    predictor,
    in_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> list[tuple[str, float]]:
    """Run every ``*.npz`` of ``in_dir``; write ``segs`` npz with the same names + ``efficiency.csv``.

    ``out_dir`` appears whole at the end (``io.output_dir``: refused if it exists, unless ``overwrite`` or
    ``resume``). ``efficiency.csv``, rewritten after each case, is the record of finished cases: ``resume``
    continues a killed run from its partial folder, or adds the missing cases to an existing ``out_dir``.
    ``predictor`` may be a function that loads it, called once the inputs and the output are checked.
    Returns the ``(case, seconds)`` of the cases run now.
    """
    files = check_cases(in_dir)
    check_output(out_dir, overwrite, resume)
    if not hasattr(predictor, "set_image"):
        predictor = predictor()
    times: list[tuple[str, float]] = []
    with output_dir(out_dir, overwrite, resume) as tmp:
        record = tmp / EFFICIENCY_FILE
        rows = {k: v for k, v in _read_times(record).items() if (tmp / k).is_file()} if resume else {}
        for f in track(files, "medsam-infer", total=len(files)) if progress else files:
            if f.name in rows:
                continue
            t0 = time.perf_counter()
            case = read_case(f)
            try:
                segs = infer_case(predictor, case)
            except DataError as e:  # a box the predictor refuses: name the case
                raise DataError(str(e), f) from None
            write_segs(tmp / f.name, segs)
            times.append((f.name, time.perf_counter() - t0))
            rows[f.name] = f"{times[-1][1]:.4f}"
            _write_times(record, rows)
            log.info("%s: %.3f s", f.name, times[-1][1])
        _write_times(record, rows)
    return times
