"""Exactness against the original LiteMedSAM / MobileSAM code (fixture made by golden/make_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.weights

ATOL = 1e-3
MIN_AGREE = 0.9999


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=shape[-1]).astype(bool).reshape(shape)


def _check(result_logits, result_masks, result_iou, golden, key):
    idx = golden["sample_index"]
    low = result_logits.reshape(result_logits.shape[0] if result_logits.ndim > 2 else 1, -1)
    if result_logits.ndim == 4:  # multimask (1, 3, L, L)
        low = result_logits[0].reshape(result_logits.shape[1], -1)
    ref = golden[f"{key}_logits"]
    np.testing.assert_allclose(low[:, idx], ref, atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(result_iou).reshape(-1), golden[f"{key}_iou"], atol=ATOL)
    masks = np.asarray(result_masks).reshape(-1, *result_masks.shape[-2:])
    ref_masks = _unpack(golden[f"{key}_masks"], masks.shape)
    assert (masks == ref_masks).mean() >= MIN_AGREE


def _images(golden, data):
    imgs = {"rgb": golden["img_rgb"], "grey": golden["img_grey"]}
    kv = data / "kvasir_seg_256" / "images" / str(golden["kvasir_name"])
    if kv.is_file():
        from scopeseg.io import read_image

        imgs["kvasir"] = read_image(kv)
    return imgs


@pytest.fixture(scope="module")
def lite(require_weights):
    require_weights("litemedsam")
    from scopeseg.inference.prompt import PromptPredictor

    return PromptPredictor.from_pretrained("litemedsam")


@pytest.fixture(scope="module")
def mobile(require_weights):
    require_weights("mobilesam")
    from scopeseg.inference.prompt import PromptPredictor

    return PromptPredictor.from_pretrained("mobilesam")


def test_litemedsam_matches_upstream_2d(lite, golden, shared_data):
    from scopeseg.inference.medsam_io import segment_2d

    for key, img in _images(golden, shared_data).items():
        boxes = golden[f"lite_{key}_boxes"]
        segs = segment_2d(lite, img, boxes)  # challenge label map; grey goes in as HxW (3 channels made)
        assert (segs == golden[f"lite_{key}_segs"]).mean() >= MIN_AGREE
        res = lite.predict(boxes=boxes)  # all boxes in ONE batched decoder call on the cached embedding
        assert res.masks.shape == (len(boxes), *img.shape[:2]) and res.masks.dtype == bool
        assert res.low_res_logits.shape == (len(boxes), 256, 256)
        _check(res.low_res_logits, res.masks, res.scores, golden, f"lite_{key}")


def test_litemedsam_challenge_3d_box_propagation(lite, golden, shared_data):
    from scopeseg.inference.medsam_io import segment_3d

    segs = segment_3d(lite, golden["vol"], golden["vol_boxes"])
    ref = golden["lite_vol_segs"]
    assert ref.sum() > 0 and (segs == ref).mean() >= MIN_AGREE


def test_mobilesam_matches_segment_anything_predictor(mobile, golden, shared_data):
    imgs = _images(golden, shared_data)
    mobile.set_image(imgs["rgb"])
    res = mobile.predict(boxes=[40, 40, 150, 130])
    _check(res.low_res_logits, res.masks, res.scores, golden, "mob_box")

    res = mobile.predict(points=[[95, 85]], point_labels=[1], multimask=True)
    assert res.masks.shape == (1, 3, 240, 320) and res.low_res_logits.shape == (1, 3, 256, 256)
    _check(res.low_res_logits, res.masks, res.scores, golden, "mob_point")

    best = int(np.argmax(res.scores[0]))  # refinement on the cached embedding: add a click + previous logits
    assert best == int(golden["mob_refine_best"])
    ref = mobile.predict(
        points=[[95, 85], [20, 200]], point_labels=[1, 0], mask_input=res.low_res_logits[:, best]
    )
    _check(ref.low_res_logits, ref.masks, ref.scores, golden, "mob_refine")

    mobile.set_image(imgs["grey"])
    res = mobile.predict(boxes=[60, 100, 140, 190], points=[[100, 140], [30, 30]], point_labels=[1, 0])
    _check(res.low_res_logits, res.masks, res.scores, golden, "mob_boxpts")
    if "kvasir" in imgs:
        mobile.set_image(imgs["kvasir"])
        res = mobile.predict(boxes=[60, 70, 190, 180])
        _check(res.low_res_logits, res.masks, res.scores, golden, "mob_kvasir")


@pytest.mark.parametrize("name, size, kernel", [("litemedsam", 256, 1), ("mobilesam", 1024, 3)])
def test_released_checkpoints_load_strictly(require_weights, name, size, kernel):
    from scopeseg.models import weights
    from scopeseg.models.registry import create_model, list_models
    from scopeseg.models.sam.model import clean_state_dict

    require_weights(name)
    assert name in list_models(family="promptable")
    model = create_model(name)  # load_state_dict(strict=True) inside; raises on any missing/unexpected key
    assert model.img_size == size and model.low_res_size == 256
    assert model.image_encoder.patch_embed.seq[0].c.kernel_size == (kernel, kernel)
    state = clean_state_dict(weights.load_state_dict(name))
    own = model.state_dict()
    assert set(state) == set(own)
    assert all(torch.equal(state[k], own[k]) for k in state)
