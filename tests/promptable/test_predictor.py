"""PromptPredictor on tiny random models: shapes, batching, prompt encoding, refinement, conversions, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scopeseg.errors import DataError
from scopeseg.inference.engines import TorchPromptEngine
from scopeseg.inference.prompt import PromptPredictor


@pytest.fixture()
def predictor(tiny_model):
    return PromptPredictor(TorchPromptEngine(tiny_model))


def _sam_reference_sparse(pe, points, labels, boxes):
    """segment-anything PromptEncoder._embed_points/_embed_boxes, written out as upstream does it."""
    parts = []
    if points is not None:
        p = points + 0.5
        lab = labels
        if boxes is None:
            p = torch.cat([p, torch.zeros((p.shape[0], 1, 2))], dim=1)
            lab = torch.cat([lab, -torch.ones((lab.shape[0], 1))], dim=1)
        emb = pe.pe_layer.forward_with_coords(p, pe.input_image_size)
        emb[lab == -1] = 0.0
        emb[lab == -1] += pe.not_a_point_embed.weight
        emb[lab == 0] += pe.point_embeddings[0].weight
        emb[lab == 1] += pe.point_embeddings[1].weight
        parts.append(emb)
    if boxes is not None:
        coords = (boxes + 0.5).reshape(-1, 2, 2)
        emb = pe.pe_layer.forward_with_coords(coords, pe.input_image_size)
        emb[:, 0, :] += pe.point_embeddings[2].weight
        emb[:, 1, :] += pe.point_embeddings[3].weight
        parts.append(emb)
    return torch.cat(parts, dim=1)


def test_sparse_prompt_encoding_matches_segment_anything(tiny_model):
    pe = tiny_model.prompt_encoder
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 2, 2, generator=g) * 64
    lab = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 60.0, 50.0], [0.0, 0.0, 64.0, 64.0]])
    with torch.no_grad():
        for p, lb, b in [(pts, lab, None), (None, None, boxes), (pts, lab, boxes)]:
            ref = _sam_reference_sparse(pe, p, lb, b)
            cs, ls = [], []
            if p is not None:
                cs.append(p)
                ls.append(lb)
            if b is not None:
                cs.append(b.reshape(-1, 2, 2))
                ls.append(torch.tensor([[2.0, 3.0]]).repeat(3, 1))
            else:
                cs.append(torch.zeros(3, 1, 2))
                ls.append(-torch.ones(3, 1))
            ours = pe.embed_sparse(torch.cat(cs, 1), torch.cat(ls, 1))
            torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_shapes_single_and_multimask(predictor, scope_image):
    predictor.set_image(scope_image)
    res = predictor.predict(boxes=[[10, 10, 60, 50], [30, 20, 110, 85]])
    assert res.masks.shape == (2, 90, 120) and res.masks.dtype == bool
    assert res.scores.shape == (2,) and res.low_res_logits.shape == (2, 64, 64)
    # masks are the thresholded logits resized back: positive logits <=> mask
    assert res.masks.any() or (res.low_res_logits <= 0).all()
    res = predictor.predict(points=[[[50, 40]], [[20, 30]]], point_labels=[[1], [1]], multimask=True)
    assert res.masks.shape == (2, 3, 90, 120) and res.scores.shape == (2, 3)
    assert res.low_res_logits.shape == (2, 3, 64, 64)


def test_batched_decoding_equals_one_by_one(predictor, scope_image):
    predictor.set_image(scope_image)
    boxes = np.array([[10, 10, 60, 50], [30, 20, 110, 85], [0, 0, 120, 90]])
    pts, lab = np.array([[[40, 30], [5, 5]]] * 3), np.array([[1, 0]] * 3)
    batch = predictor.predict(boxes=boxes, points=pts, point_labels=lab)
    for i in range(3):
        one = predictor.predict(boxes=boxes[i], points=pts[i], point_labels=lab[i])
        np.testing.assert_allclose(batch.low_res_logits[i], one.low_res_logits[0], atol=1e-5)
        np.testing.assert_allclose(batch.scores[i], one.scores[0], atol=1e-6)


def test_refinement_reuses_cached_embedding(predictor, scope_image, monkeypatch):
    calls = []
    encode = predictor.engine.encode
    monkeypatch.setattr(predictor.engine, "encode", lambda x: calls.append(1) or encode(x))
    predictor.set_image(scope_image)
    first = predictor.predict(points=[[60, 45]], point_labels=[1], multimask=True)
    best = int(first.scores[0].argmax())
    refined = predictor.predict(
        points=[[60, 45], [10, 80]], point_labels=[1, 0], mask_input=first.low_res_logits[:, best]
    )
    plain = predictor.predict(points=[[60, 45], [10, 80]], point_labels=[1, 0])
    assert len(calls) == 1
    assert refined.masks.shape == (1, 90, 120)
    assert not np.allclose(refined.low_res_logits, plain.low_res_logits)  # the mask prompt is used


def test_input_conversions(predictor, scope_image):
    grey = scope_image[:, :, 1].copy()
    grey[0, 0], grey[0, 1] = 0, 255  # full range, so min-max rescaling of 16-bit is exact
    predictor.set_image(np.repeat(grey[:, :, None], 3, axis=2))
    ref = predictor.predict(boxes=[10, 10, 100, 80]).low_res_logits
    variants = {
        "grey": grey,
        "grey1": grey[:, :, None],
        "rgba": np.concatenate([np.repeat(grey[:, :, None], 3, 2), np.full((90, 120, 1), 7, np.uint8)], 2),
        "uint16": grey.astype(np.uint16) * 257,
        "float": grey.astype(np.float32) / 255.0 * 1000.0,
    }
    for name, img in variants.items():
        predictor.set_image(img)
        np.testing.assert_allclose(
            predictor.predict(boxes=[10, 10, 100, 80]).low_res_logits, ref, atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"boxes": [10, 10, 130, 50]}, "outside"),
        ({"boxes": [-1, 10, 30, 50]}, "outside"),
        ({"boxes": [30, 10, 30, 50]}, "degenerate"),
        ({"boxes": [40, 10, 30, 50]}, "degenerate"),
        ({"boxes": [10, 10, np.nan, 50]}, "NaN"),
        ({"boxes": [[1, 2, 3]]}, "shape"),
        ({"points": [[10, 10]]}, "point_labels"),
        ({"points": [[10, 10]], "point_labels": [2]}, "values"),
        ({"points": [[10, 200]], "point_labels": [1]}, "outside"),
        (
            {"points": [[[1, 1]], [[2, 2]]], "point_labels": [[1], [1]], "boxes": [[0, 0, 5, 5]] * 3},
            "prompt sets",
        ),
        ({"boxes": [0, 0, 5, 5], "mask_input": np.zeros((32, 32))}, "mask_input"),
        ({}, "boxes and/or points"),
    ],
)
def test_bad_prompts_raise_one_line(predictor, scope_image, kwargs, match):
    predictor.set_image(scope_image)
    with pytest.raises(DataError, match=match) as e:
        predictor.predict(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_images_and_order(tiny_model):
    p = PromptPredictor(TorchPromptEngine(tiny_model))
    with pytest.raises(DataError, match="set_image"):
        p.predict(boxes=[0, 0, 5, 5])
    for bad, match in [
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros(10, np.uint8), "shape"),
        (np.zeros((1, 8, 3), np.uint8), "too small"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8), object), "pixel type"),
    ]:
        with pytest.raises(DataError, match=match):
            p.set_image(bad)


def test_box_rounding_follows_each_recipe(tiny_model, tiny_sam_model, scope_image):
    """LiteMedSAM truncates scaled boxes to int (upstream resize_box_to_256); SAM keeps floats."""
    from scopeseg.models.sam.recipes import get_recipe

    box = np.array([[10.0, 11.0, 61.0, 47.0]])
    assert get_recipe("medsam").scale_boxes(box, (90, 120), 64).tolist() == [[5, 5, 32, 25]]
    np.testing.assert_allclose(
        get_recipe("sam").scale_boxes(box, (90, 120), 64),
        [[10 * 64 / 120, 11 * 48 / 90, 61 * 64 / 120, 47 * 48 / 90]],
    )
    p = PromptPredictor(TorchPromptEngine(tiny_sam_model))
    p.set_image(scope_image)
    assert p.predict(boxes=box).masks.shape == (1, 90, 120)


def test_save_pretrained_round_trip(tiny_model, scope_image, tmp_path):
    from scopeseg.models.checkpoints import save_pretrained

    save_pretrained(tiny_model, tmp_path / "ckpt")
    from scopeseg.models.sam.model import PromptableSAM

    again = PromptableSAM.from_pretrained(tmp_path / "ckpt")
    again.save_pretrained(tmp_path / "ckpt2")
    import json

    assert json.loads(json.dumps(again.config)) == json.loads(json.dumps(tiny_model.config))
    a = PromptPredictor(TorchPromptEngine(tiny_model))
    b = PromptPredictor.from_pretrained(tmp_path / "ckpt")
    for p in (a, b):
        p.set_image(scope_image)
    ra, rb = a.predict(boxes=[5, 5, 80, 70]), b.predict(boxes=[5, 5, 80, 70])
    np.testing.assert_array_equal(ra.low_res_logits, rb.low_res_logits)


def test_unknown_model_names_are_refused():
    from scopeseg.errors import ModelError

    with pytest.raises(ModelError, match="litemedsam"):
        PromptPredictor.from_pretrained("nosuchmodel")
