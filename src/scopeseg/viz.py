"""Mask overlays, image grids, legends and data set previews (images and overlay videos).

Shared by ``synth``/``preview``, ``predict`` and ``report``: every function takes and returns uint8 RGB
``HxWx3`` arrays, colours are RGB 0..255 tuples (or ``#rrggbb``), and later masks paint over earlier ones,
as in ``CocoDataset.semantic_mask`` (DESIGN: later annotations win).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .data.coco import PALETTE  # fallback colours by index (class index or instance order)
from .io import to_rgb_uint8, write_image

log = logging.getLogger(__name__)

ColorLike = Sequence[int] | Sequence[float] | str


def to_color(color: ColorLike) -> tuple[int, int, int]:
    """``(r, g, b)`` 0..255 ints from ints, 0..1 floats or ``#rrggbb``."""
    if isinstance(color, str):
        c = color.lstrip("#")
        if len(c) != 6:
            raise ValueError(f"colour {color!r} is not #rrggbb")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    vals = list(color)[:3]
    if all(isinstance(v, float) for v in vals) and max(vals) <= 1.0:
        vals = [v * 255.0 for v in vals]
    return tuple(int(round(min(max(v, 0), 255))) for v in vals)  # type: ignore[return-value]


def _as_label_map(masks: np.ndarray, colors) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """N×H×W bool masks + colour list -> (int32 label map 1..N, {label: colour}); later masks win."""
    n = masks.shape[0]
    label = np.zeros(masks.shape[1:], np.int32)
    for i in range(n):
        label[masks[i].astype(bool, copy=False)] = i + 1
    cols = list(colors) if colors is not None else [PALETTE[i % len(PALETTE)] for i in range(n)]
    if len(cols) < n:
        raise ValueError(f"{n} masks but {len(cols)} colours")
    return label, {i + 1: to_color(cols[i]) for i in range(n)}


def overlay(
    image: np.ndarray,
    masks: np.ndarray,
    colors: Mapping[int, ColorLike] | Sequence[ColorLike] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
    contour_width: int | None = None,
) -> np.ndarray:
    """Blend masks onto an image: an HxW label map with ``{class_index: colour}`` (0 = background), or
    N×H×W bool masks with one colour each. Contours are drawn at full opacity inside each region.

    Labels without a colour are left unpainted (pass a colour for every class you want to see); with
    ``colors=None`` labels/instances take ``PALETTE`` colours by index.
    """
    import cv2

    img = to_rgb_uint8(np.asarray(image))
    masks = np.asarray(masks)
    if masks.ndim == 3:
        label, cmap = _as_label_map(masks, colors)
    elif masks.ndim == 2:
        label = masks.astype(np.int32, copy=False)
        if colors is None:
            present = [int(v) for v in np.unique(label) if v > 0]
            cmap = {v: PALETTE[(v - 1) % len(PALETTE)] for v in present}
        elif isinstance(colors, Mapping):
            cmap = {int(k): to_color(c) for k, c in colors.items()}
        else:
            cmap = {i: to_color(c) for i, c in enumerate(colors) if i > 0}
    else:
        raise ValueError(f"masks must be HxW or NxHxW, got shape {masks.shape}")
    if label.shape != img.shape[:2]:
        raise ValueError(f"mask size {label.shape} != image size {img.shape[:2]}")
    if not cmap or label.max(initial=0) <= 0:
        return img.copy()
    top = max(int(label.max()), max(cmap))
    lut = np.zeros((max(top + 1, 256), 3), np.uint8)
    painted = np.zeros(max(top + 1, 256), np.uint8)
    for k, c in cmap.items():
        if 0 < k <= top:
            lut[k] = c
            painted[k] = 1
    if label.min() < 0:
        label = np.clip(label, 0, top)
    if top <= 255:  # table look-ups in cv2 (the common case: classes or a few instances)
        label = label.astype(np.uint8)
        color_img = cv2.LUT(cv2.merge([label, label, label]), lut[:256].reshape(256, 1, 3))
        region = cv2.LUT(label, painted[:256])
    else:
        color_img, region = lut[label], painted[label]
        label = label.astype(np.float32)  # exact for < 2**24 labels; cv2 morphology has no int32
    out = img.copy()
    if not region.any():
        return out
    blend = cv2.addWeighted(img, 1.0 - alpha, color_img, alpha, 0.0)
    cv2.copyTo(blend, region, out)
    if contours:
        # a pixel is on a contour when a 4-neighbour has another label; drawn inside painted regions only
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        edge = (cv2.morphologyEx(label, cv2.MORPH_GRADIENT, cross) != 0).astype(np.uint8)
        width = contour_width or max(1, round(min(img.shape[:2]) / 400))
        if width > 1:
            edge = cv2.dilate(edge, np.ones((2 * width - 1, 2 * width - 1), np.uint8))
        cv2.copyTo(color_img, edge & region, out)
    return out


def _fit(image: np.ndarray, h: int, w: int, pad_value: int) -> np.ndarray:
    """Resize keeping the aspect ratio and letterbox into ``h``×``w``."""
    import cv2

    img = to_rgb_uint8(image)
    ih, iw = img.shape[:2]
    if (ih, iw) == (h, w):
        return img
    s = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * s)), max(1, round(iw * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((h, w, 3), pad_value, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def grid(
    images: Sequence[np.ndarray],
    ncols: int | None = None,
    pad: int = 4,
    pad_value: int = 0,
    cell_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Tile images row by row (cells sized like the first image, or ``cell_size`` h×w; letterboxed)."""
    if not len(images):
        raise ValueError("grid of no images")
    n = len(images)
    ncols = max(1, min(ncols or math.ceil(math.sqrt(n)), n))
    nrows = math.ceil(n / ncols)
    ch, cw = cell_size or images[0].shape[:2]
    out = np.full((nrows * ch + (nrows + 1) * pad, ncols * cw + (ncols + 1) * pad, 3), pad_value, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        out[y : y + ch, x : x + cw] = _fit(im, ch, cw, pad_value)
    return out


def caption(image: np.ndarray, text: str, scale: float | None = None) -> np.ndarray:
    """Copy of ``image`` with ``text`` on a dark band at the top-left (frame names in grids)."""
    import cv2

    out = to_rgb_uint8(image).copy()
    scale = scale or max(0.35, min(out.shape[:2]) / 600)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    band = out[: th + base + 6, : tw + 8]
    band[:] = (band * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def legend_strip(
    names_colors: Mapping[str, ColorLike] | Sequence[tuple[str, ColorLike]],
    width: int,
    row_height: int = 24,
    background: int = 24,
) -> np.ndarray:
    """A strip ``width`` pixels wide of colour swatches and names, wrapped onto as many rows as needed."""
    import cv2

    items = list(names_colors.items()) if isinstance(names_colors, Mapping) else list(names_colors)
    scale = row_height / 40
    thick = 1
    sw = int(row_height * 0.7)
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    x = 8
    for name, color in items:
        tw = cv2.getTextSize(str(name), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0]
        need = sw + 6 + tw + 16
        if rows[-1] and x + need > width:
            rows.append([])
            x = 8
        rows[-1].append((str(name), to_color(color), x))
        x += need
    out = np.full((row_height * len(rows) + 4, width, 3), background, np.uint8)
    for r, row in enumerate(rows):
        y = 2 + r * row_height
        for name, color, x in row:
            y0 = y + (row_height - sw) // 2
            cv2.rectangle(out, (x, y0), (x + sw, y0 + sw), color, -1)
            cv2.putText(
                out,
                name,
                (x + sw + 6, y + int(row_height * 0.7)),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (235, 235, 235),
                thick,
                cv2.LINE_AA,
            )
    return out


def overlay_image(ds, image_id: int, alpha: float = 0.5, contours: bool = True) -> np.ndarray:
    """An image of a ``CocoDataset`` with its instance masks overlaid in category colours."""
    img = ds.load_image(image_id)
    masks, cids, _ = ds.instance_masks(image_id)
    return overlay(img, masks, [ds.category_color(c) for c in cids], alpha=alpha, contours=contours)


def _pick_frames(ds, max_frames: int) -> list[int]:
    """Up to ``max_frames`` image ids spread evenly over videos and over frames within each video."""
    groups = [frames for _, frames in ds.iter_videos() if frames]
    loose = [i for i, im in ds.images.items() if im.get("video_id") is None]
    if loose:
        groups.append(loose)
    if not groups or max_frames < 1:
        return []
    per = [max(1, max_frames // len(groups))] * len(groups)
    picked: list[int] = []
    for frames, k in zip(groups, per):
        k = min(k, len(frames))
        idx = np.linspace(0, len(frames) - 1, k).round().astype(int)
        picked.extend(frames[i] for i in idx)
    return picked[:max_frames]


def preview(
    data_path: str | Path,
    out_dir: str | Path,
    max_frames: int = 16,
    video: bool = True,
    alpha: float = 0.5,
    cell_width: int = 368,
) -> dict[str, list[Path] | Path]:
    """Write ``preview.jpg`` (grid of frames with masks + legend) and one ``<video>_overlay.mp4`` per video.

    Why: one look at a data set (synthetic or converted) shows whether masks sit on the right pixels.
    Returns ``{"preview": path, "videos": [paths]}``.
    """
    from .data.coco import CocoDataset
    from .errors import DataError
    from .progress import track
    from .video_io import VideoWriter

    ds = CocoDataset.load(data_path)
    if not ds.images:
        raise DataError("data set has no images to preview", ds.path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = _pick_frames(ds, max_frames)
    tiles = []
    for iid in ids:
        im = ds.images[iid]
        vname = ds.videos.get(im.get("video_id"), {}).get("name")
        label = f"{vname} #{im.get('frame_index')}" if vname is not None else Path(im["file_name"]).name
        tiles.append(caption(overlay_image(ds, iid, alpha), label))
    h0, w0 = tiles[0].shape[:2]
    cw = min(cell_width, w0)
    ch = max(1, round(h0 * cw / w0))
    sheet = grid(tiles, cell_size=(ch, cw))
    cats = [(c.get("name", str(cid)), ds.category_color(cid)) for cid, c in sorted(ds.categories.items())]
    if cats:
        sheet = np.concatenate([sheet, legend_strip(cats, sheet.shape[1])], axis=0)
    result: dict[str, list[Path] | Path] = {
        "preview": write_image(out_dir / "preview.jpg", sheet, quality=90)
    }
    videos: list[Path] = []
    if video:
        for vid, frames in ds.iter_videos():
            if not frames:
                continue
            v = ds.videos[vid]
            name = str(v.get("name", vid)).replace("/", "_")
            path = out_dir / f"{name}_overlay.mp4"
            with VideoWriter(path, fps=float(v.get("fps", 25.0))) as writer:
                for iid in track(frames, f"overlay {name}", total=len(frames)):
                    writer.write(overlay_image(ds, iid, alpha))
            videos.append(path)
    result["videos"] = videos
    log.info("preview of %d frames and %d videos in %s", len(ids), len(videos), out_dir)
    return result
