"""Box zoom: the crop window, the per-box crop decode of PromptPredictor, its defaults and fall-backs."""

from __future__ import annotations

import numpy as np
import pytest

from scopeseg.errors import DataError
from scopeseg.inference.engines import TorchPromptEngine
from scopeseg.inference.prompt import PromptPredictor, resolve_zoom
from scopeseg.models.sam.recipes import Zoom, zoom_window


def test_zoom_window_is_a_square_around_the_box_shifted_into_the_image():
    z = Zoom(0.5, 16)
    # 20x10 box in the middle of a 100x200 image: a 40x40 square centred on it
    assert zoom_window(np.array([90, 45, 110, 55]), (100, 200), z) == (80, 30, 120, 70)
    # near the left/top border: shifted (same size), not cut
    assert zoom_window(np.array([0, 2, 20, 12]), (100, 200), z) == (0, 0, 40, 40)
    # near the right/bottom border
    assert zoom_window(np.array([185, 90, 200, 100]), (100, 200), z) == (170, 70, 200, 100)
    # min_side for a tiny box; larger than the image: the whole image on that axis
    assert zoom_window(np.array([50, 50, 52, 52]), (100, 200), Zoom(0.5, 64)) == (19, 19, 83, 83)
    assert zoom_window(np.array([10, 10, 190, 60]), (100, 200), z) == (0, 0, 200, 100)
    rng = np.random.default_rng(0)
    for _ in range(300):  # always inside the image and containing the box
        h, w = rng.integers(20, 300, 2)
        x0, y0 = rng.uniform(0, w - 2), rng.uniform(0, h - 2)
        box = np.array([x0, y0, rng.uniform(x0 + 1, w), rng.uniform(y0 + 1, h)])
        cx0, cy0, cx1, cy1 = zoom_window(box, (h, w), Zoom(rng.uniform(0, 1), int(rng.integers(8, 200))))
        assert 0 <= cx0 <= box[0] and 0 <= cy0 <= box[1] and box[2] <= cx1 <= w and box[3] <= cy1 <= h


def test_resolve_zoom_defaults_and_errors():
    assert resolve_zoom("auto", "litemedsam-scope") == Zoom(0.5, 160, flip=True)
    assert resolve_zoom("auto", "litemedsam") is None and resolve_zoom("auto", object()) is None
    assert resolve_zoom("off", "litemedsam-scope") is None and resolve_zoom(None) is None
    assert resolve_zoom("0.25,96") == Zoom(0.25, 96)
    assert resolve_zoom("0.5, 160, flip") == Zoom(0.5, 160, True)
    for bad in ("big", "0.5", "-1,100", "0.5,2", "0.5,160,mirror", "0.5,160,flip,1"):
        with pytest.raises(DataError, match="zoom"):
            resolve_zoom(bad)


def test_zoomed_boxes_equal_decoding_each_crop_and_pasting(tiny_model, scope_image):
    plain = PromptPredictor(TorchPromptEngine(tiny_model))
    zoomed = PromptPredictor(TorchPromptEngine(tiny_model), zoom=Zoom(0.5, 24))
    boxes = np.array([[40, 25, 80, 65], [5, 5, 30, 20]], np.float64)
    zoomed.set_image(scope_image)
    assert zoomed._embedding is None  # boxes alone never need the whole-image embedding
    out = zoomed.predict(boxes=boxes)
    assert out.masks.shape == (2, 90, 120) and out.scores.shape == (2,)
    assert out.low_res_logits.shape == (2, 64, 64)
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = zoom_window(box, (90, 120), zoomed.zoom)
        plain.set_image(scope_image[y0:y1, x0:x1])
        ref = plain.predict(boxes=box - np.array([x0, y0, x0, y0]))
        expect = np.zeros((90, 120), bool)
        expect[y0:y1, x0:x1] = ref.masks[0]
        assert np.array_equal(out.masks[i], expect)
        assert out.scores[i] == pytest.approx(float(ref.scores[0]), abs=1e-6)
    # multimask keeps the mask axis
    multi = zoomed.predict(boxes=boxes, multimask=True)
    assert multi.masks.shape == (2, 3, 90, 120) and multi.low_res_logits.shape == (2, 3, 64, 64)
    # feeding the logits back (mask_input) decodes on the whole image, as without zoom
    plain.set_image(scope_image)
    a = zoomed.predict(boxes=boxes[:1], mask_input=out.low_res_logits[:1])
    b = plain.predict(boxes=boxes[:1], mask_input=out.low_res_logits[:1])
    assert np.array_equal(a.masks, b.masks)
    # points alone use the whole image too
    pa = zoomed.predict(points=[[60, 45]], point_labels=[1])
    pb = plain.predict(points=[[60, 45]], point_labels=[1])
    assert np.array_equal(pa.masks, pb.masks)


def test_zoom_flip_averages_the_crop_and_its_mirror(tiny_model, scope_image):
    import torch

    zoomed = PromptPredictor(TorchPromptEngine(tiny_model), zoom=Zoom(0.5, 24, flip=True))
    zoomed.set_image(scope_image)
    box = np.array([40.0, 25.0, 70.0, 65.0])
    out = zoomed.predict(boxes=box[None])
    x0, y0, x1, y1 = zoom_window(box, (90, 120), zoomed.zoom)
    crop, cw = scope_image[y0:y1, x0:x1], x1 - x0
    plain = PromptPredictor(TorchPromptEngine(tiny_model))

    def logits(img, b):
        plain.set_image(np.ascontiguousarray(img))
        low = torch.from_numpy(plain.predict(boxes=b).low_res_logits)[:, None]
        return plain.recipe.postprocess(low, plain._prep, 64)[0, 0].numpy()

    local = box - np.array([x0, y0, x0, y0])
    mirrored = np.array([cw - local[2], local[1], cw - local[0], local[3]])
    avg = 0.5 * (logits(crop, local) + logits(crop[:, ::-1], mirrored)[:, ::-1])
    expect = np.zeros((90, 120), bool)
    expect[y0:y1, x0:x1] = avg > 0
    assert np.array_equal(out.masks[0], expect)
    assert not np.allclose(logits(crop, local), avg)  # the mirror really contributes


def test_zoom_without_pixels_falls_back_to_the_whole_image(tiny_model, scope_image):
    plain = PromptPredictor(TorchPromptEngine(tiny_model))
    plain.set_image(scope_image)
    emb, prep = plain.get_embedding()
    zoomed = PromptPredictor(TorchPromptEngine(tiny_model), zoom=Zoom(0.5, 24))
    box = np.array([[40, 25, 80, 65]], np.float64)
    zoomed.set_embedding(emb, prep)  # a cached embedding without the image: no crops to cut
    assert np.array_equal(zoomed.predict(boxes=box).masks, plain.predict(boxes=box).masks)
    zoomed.set_embedding(emb, prep, scope_image)
    z = PromptPredictor(TorchPromptEngine(tiny_model), zoom=Zoom(0.5, 24))
    z.set_image(scope_image)
    assert np.array_equal(zoomed.predict(boxes=box).masks, z.predict(boxes=box).masks)


def test_zoom_keeps_the_points_of_a_box_prompt_in_the_crop(tiny_model, scope_image):
    zoomed = PromptPredictor(TorchPromptEngine(tiny_model), zoom=Zoom(0.0, 8))
    zoomed.set_image(scope_image)
    out = zoomed.predict(boxes=[[50, 40, 60, 50]], points=[[[100, 80]]], point_labels=[[1]])
    # the 10x10 window grows to (50, 40)-(100, 80) so the point is inside it
    plain = PromptPredictor(TorchPromptEngine(tiny_model))
    plain.set_image(scope_image[40:80, 50:100])
    ref = plain.predict(boxes=[[0, 0, 10, 10]], points=[[[50, 40]]], point_labels=[[1]])
    expect = np.zeros((90, 120), bool)
    expect[40:80, 50:100] = ref.masks[0]
    assert np.array_equal(out.masks[0], expect)
    with pytest.raises(DataError, match="outside"):
        zoomed.predict(boxes=[[50, 40, 60, 50]], points=[[[130, 80]]], point_labels=[[1]])
