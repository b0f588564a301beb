"""Overlays, grids, legends: exact pixel values on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from scopeseg.viz import (
    ERROR_COLORS,
    PALETTE,
    caption,
    colorize_labels,
    error_map,
    grid,
    legend_strip,
    overlay,
    palette_color,
    to_color,
)


def _scene():
    img = np.full((20, 30, 3), 100, np.uint8)
    label = np.zeros((20, 30), np.int32)
    label[5:15, 5:12] = 1
    label[8:12, 20:28] = 2
    return img, label


def test_overlay_label_map_blends_and_draws_contours():
    img, label = _scene()
    out = overlay(img, label, {1: (255, 0, 0), 2: "#0000ff"}, alpha=0.5, contours=True)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert (out[label == 0] == 100).all()  # background untouched
    # interior: 0.5 * 100 + 0.5 * 255 = 177.5 -> 178 (cv2 rounds half to even)
    assert tuple(out[10, 8]) == (178, 50, 50)
    assert tuple(out[10, 24]) == (50, 50, 178)
    # contour pixels carry the full colour, inside the region only
    assert (
        tuple(out[5, 8]) == (255, 0, 0)
        and tuple(out[10, 5]) == (255, 0, 0)
        and tuple(out[14, 11]) == (255, 0, 0)
    )
    assert tuple(out[4, 8]) == (100, 100, 100)
    plain = overlay(img, label, {1: (255, 0, 0), 2: (0, 0, 255)}, contours=False)
    assert tuple(plain[5, 8]) == tuple(plain[10, 8])


def test_overlay_masks_equal_label_map_and_later_wins():
    img, label = _scene()
    masks = np.stack([label == 1, label == 2])
    colors = [(255, 0, 0), (0, 0, 255)]
    a = overlay(img, masks, colors, alpha=0.4)
    b = overlay(img, label, {1: colors[0], 2: colors[1]}, alpha=0.4)
    assert np.array_equal(a, b)
    over = np.stack([label > 0, label == 2])  # the second mask is painted over the first
    c = overlay(img, over, [(0, 255, 0), (0, 0, 255)], contours=False)
    assert tuple(c[10, 24]) == (50, 50, 178) and tuple(c[10, 8]) == (50, 178, 50)
    assert np.array_equal(overlay(img, np.zeros((0, 20, 30), bool), []), img)


def test_overlay_rejects_size_mismatch_and_unpainted_labels_stay():
    img, label = _scene()
    with pytest.raises(ValueError, match="size"):
        overlay(img, label[:10], {1: (255, 0, 0)})
    out = overlay(img, label, {1: (255, 0, 0)})  # class 2 has no colour -> left as is
    assert (out[label == 2] == 100).all()
    grey = overlay(img[..., 0], label, None)
    assert grey.shape == (20, 30, 3)


def test_to_color():
    assert to_color("#ff8000") == (255, 128, 0)
    assert to_color((1.0, 0.5, 0.0)) == (255, 128, 0)
    assert to_color([10, 20, 30]) == (10, 20, 30)


def test_grid_layout_and_letterbox():
    a = np.full((10, 20, 3), 200, np.uint8)
    b = np.full((20, 20, 3), 50, np.uint8)  # other aspect: letterboxed into a 10x20 cell
    g = grid([a, b, a], ncols=2, pad=2)
    assert g.shape == (2 * 10 + 3 * 2, 2 * 20 + 3 * 2, 3)
    assert (g[2:12, 2:22] == 200).all()
    cell = g[2:12, 24:44]
    assert (cell[:, 5:15] == 50).all() and (cell[:, :4] == 0).all()
    assert (g[14:24, 24:44] == 0).all()  # empty last cell


def test_legend_strip_and_caption():
    strip = legend_strip([("grasper", (0, 200, 255)), ("polyp", "#ffff78")], width=300)
    assert strip.shape[1] == 300 and strip.shape[0] >= 24
    assert ((strip == (0, 200, 255)).all(-1)).sum() > 50
    narrow = legend_strip({f"class{i}": (255, 0, 0) for i in range(8)}, width=120)
    assert narrow.shape[0] > strip.shape[0]  # wrapped onto more rows
    img = np.full((40, 120, 3), 100, np.uint8)
    cap = caption(img, "vid000 #3")
    assert (cap[:3, :3] < 100).all() and (cap[-5:] == 100).all()


def test_overlay_many_labels_and_negative_labels():
    img, label = _scene()
    big = label.astype(np.int32) * 300  # > 255 labels take the numpy look-up path
    a = overlay(img, big, {300: (255, 0, 0), 600: (0, 0, 255)})
    b = overlay(img, label, {1: (255, 0, 0), 2: (0, 0, 255)})
    assert np.array_equal(a, b)
    neg = np.where(label == 0, -1, label)  # negative = unlabelled
    assert np.array_equal(overlay(img, neg, {1: (255, 0, 0), 2: (0, 0, 255)}), b)


def test_palette_label_colours_and_error_map():
    assert palette_color(0) == PALETTE[0] and palette_color(len(PALETTE) + 2) == PALETTE[2]
    labels = np.array([[0, 1, 2], [300, -4, 17]])
    rgb = colorize_labels(labels)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (0, 0, 0)  # background, negative
    assert tuple(rgb[0, 1]) == PALETTE[0] and tuple(rgb[0, 2]) == PALETTE[1]
    assert tuple(rgb[1, 0]) == palette_color(254)  # clipped to label 255
    assert tuple(rgb[1, 2]) == PALETTE[0]  # label 17 wraps round the 16 colours
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    err = error_map(gt, pred)
    assert [tuple(c) for c in err[0]] == [
        ERROR_COLORS["tp"],
        ERROR_COLORS["fn"],
        ERROR_COLORS["fp"],
        (0, 0, 0),
    ]
