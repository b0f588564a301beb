"""litemedsam-scope: MedSAM box jitter, decoder training on cached embeddings, the shipped fp16 delta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


def test_jitter_box_stays_inside_the_image_and_keeps_a_real_box():
    from scopeseg.train.promptable import jitter_box

    rng = np.random.default_rng(0)
    h, w = 48, 64
    for _ in range(500):
        x0, y0 = rng.integers(0, w - 1), rng.integers(0, h - 1)
        box = np.array([x0, y0, rng.integers(x0 + 1, w + 1), rng.integers(y0 + 1, h + 1)], float)
        out = jitter_box(box, (h, w), rng, frac=0.5, shift=40.0)
        assert 0 <= out[0] < out[2] <= w and 0 <= out[1] < out[3] <= h, (box, out)
    # MedSAM's perturbation alone only enlarges the box (each side outward by U(0, shift)), clipped
    box = np.array([10.0, 5.0, 30.0, 20.0])
    grown = np.array([jitter_box(box, (h, w), rng, 0.0, 6.0) for _ in range(200)])
    assert (grown[:, :2] <= box[:2]).all() and (grown[:, 2:] >= box[2:]).all()
    assert grown[:, 0].min() < 5.5 and grown[:, 2].max() > 35.5  # the shift is really applied
    edge = jitter_box(np.array([0.0, 0.0, w, h]), (h, w), rng, 0.0, 6.0)
    assert edge.tolist() == [0, 0, w, h]


def _blobs(model, n=4, trunk=False):
    from scopeseg.train.promptable import encode_image, prompt_objects

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    emb, objs = {}, []
    for i in range(n):
        cy, cx, r = rng.uniform(16, 32), rng.uniform(16, 48), rng.uniform(8, 12)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = np.full((48, 64, 3), 60, np.uint8)
        img[m] = (200, 150, 120)
        emb[f"img{i}"] = encode_image(model, img, trunk=trunk).half()
        objs += prompt_objects(model, m.astype(np.int32), f"img{i}", group=f"source{i % 2}")
    return emb, objs


def test_training_on_cached_embeddings_lowers_the_loss_and_leaves_the_encoder(tiny_model):
    import copy

    from scopeseg.config import build_config
    from scopeseg.train.promptable import fit_on_embeddings

    model = copy.deepcopy(tiny_model)
    torch.manual_seed(0)
    emb, objs = _blobs(model)
    assert len(objs) == 4 and objs[0].target.shape == (1, 64, 64) and objs[0].group == "source0"
    enc = {k: v.clone() for k, v in model.image_encoder.state_dict().items()}
    dec = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    cfg = build_config(
        preset="litemedsam-finetune",
        overrides=["lr=3e-3", "batch_size=4", "box_shift=2", "schedule=none", "seed=0"],
    )
    losses = fit_on_embeddings(model, emb, objs, cfg, steps=40)
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert all(torch.equal(v, model.image_encoder.state_dict()[k]) for k, v in enc.items())
    assert any(not torch.equal(v, model.mask_decoder.state_dict()[k]) for k, v in dec.items())


def test_train_neck_trains_only_the_neck_of_the_encoder_on_trunk_features():
    """train_neck: trunk features cached, the neck (and decoder) change, the trunk does not; the cached
    path equals the full encoder, and ordinary embeddings are refused by name."""
    from scopeseg.config import build_config
    from scopeseg.errors import DataError
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH
    from scopeseg.train.promptable import encode_image, fit_on_embeddings

    torch.manual_seed(0)  # trunk width 40 != embedding width 32, as in the real models (320 vs 256)
    model = create_model("litemedsam", pretrained=False, **{**TINY_ARCH, "embed_dims": (8, 16, 24, 40)})
    emb, objs = _blobs(model)
    img = np.full((48, 64, 3), 90, np.uint8)
    full = encode_image(model, img)
    assert torch.allclose(model.image_encoder.neck(encode_image(model, img, trunk=True)[None])[0], full)
    trunk, _ = _blobs(model, trunk=True)
    cfg = build_config(
        preset="litemedsam-finetune",
        overrides=["lr=3e-3", "batch_size=4", "schedule=none", "seed=0", "train_neck=true"],
    )
    with pytest.raises(DataError, match="trunk features"):
        fit_on_embeddings(model, emb, objs, cfg, steps=1)
    before = {k: v.clone() for k, v in model.image_encoder.state_dict().items()}
    losses = fit_on_embeddings(model, trunk, objs, cfg, steps=10)
    after = model.image_encoder.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed and all(k.startswith("neck.") for k in changed), changed
    assert len(losses) == 10 and all(np.isfinite(losses))


def test_targets_keep_a_tiny_object_and_logits_meet_them_at_the_input_size():
    """A thin 660-px object of a 1280x1024 frame (~26 px at 256) is kept in its target (a 64x64 grid lost it)."""
    import torch.nn.functional as F

    from scopeseg.models.sam.recipes import get_recipe
    from scopeseg.train.promptable import input_frame_logits, input_frame_target

    recipe = get_recipe("medsam")
    mask = np.zeros((1024, 1280), np.uint8)
    mask[500:506, 600:710] = 1  # a thin 6x110 instrument tip
    gt = input_frame_target(recipe, mask, 256)
    assert gt.shape == (1, 256, 256) and gt.dtype == torch.float32
    assert 16 <= int(gt.sum()) <= 36  # ~1x22 at 256 (scale 0.2)
    ys, xs = np.nonzero(gt[0].numpy())
    assert abs(ys.mean() - 503 * 0.2) < 1.5 and abs(xs.mean() - 655 * 0.2) < 1.5
    # the old 64x64 target of the same object (area resize, 0.5 threshold) was empty
    assert int((F.interpolate(gt[None], (64, 64), mode="area") > 0.5).sum()) == 0
    low = torch.randn(2, 1, 64, 64)
    up = input_frame_logits(low, 256)
    assert up.shape == (2, 1, 256, 256)
    assert torch.allclose(up, F.interpolate(low, (256, 256), mode="bilinear", align_corners=False))
    assert input_frame_logits(up, 256) is up


def test_fit_on_embeddings_names_a_missing_embedding(tiny_model):
    from scopeseg.config import build_config
    from scopeseg.errors import DataError
    from scopeseg.train.promptable import fit_on_embeddings

    emb, objs = _blobs(tiny_model, n=2)
    cfg = build_config(preset="litemedsam-finetune", overrides=[])
    with pytest.raises(DataError, match="img1"):
        fit_on_embeddings(tiny_model, {"img0": emb["img0"]}, objs, cfg, steps=1)


def test_fp16_delta_round_trip_and_mismatch(tiny_model):
    from scopeseg.errors import ModelError
    from scopeseg.models.weights import apply_delta, make_delta

    base = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tuned = dict(base)
    key = next(k for k in base if k.startswith("mask_decoder.") and base[k].is_floating_point())
    tuned[key] = base[key] + 0.01 * torch.randn_like(base[key])
    delta = make_delta(tuned, base)
    assert list(delta) == [key] and delta[key].dtype == torch.float16
    back = apply_delta(base, delta)
    assert (back[key] - tuned[key]).abs().max() < 1e-4  # fp16 of a small difference: tiny error
    assert back[key].dtype == base[key].dtype
    with pytest.raises(ModelError, match="does not match"):
        apply_delta(base, {key: torch.zeros(3, dtype=torch.float16)})


@pytest.mark.weights
def test_install_shipped_delta_on_the_base_and_load(require_weights, tmp_path, monkeypatch):
    """``weights install litemedsam-scope`` adds the shipped delta to the installed base (both SHA-256 checked)."""
    require_weights("litemedsam")
    from scopeseg.errors import ModelError
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.models import weights as W
    from scopeseg.models.registry import create_model

    if "litemedsam-scope" not in W.WEIGHTS:
        pytest.skip("no litemedsam-scope delta registered")
    base_st, base_meta = W.weights_path("litemedsam"), W.weights_dir() / "litemedsam.json"
    monkeypatch.setenv("SCOPESEG_HOME", str(tmp_path))
    W.weights_dir().mkdir(parents=True)
    (W.weights_dir() / "litemedsam.safetensors").symlink_to(base_st)
    (W.weights_dir() / "litemedsam.json").symlink_to(base_meta)
    spec = W.WEIGHTS["litemedsam-scope"]
    assert W.package_file(spec.member).stat().st_size <= 10e6
    path = W.install("litemedsam-scope", progress=False)
    meta = W.installed()["litemedsam-scope"]
    assert meta["base"] == "litemedsam" and meta["sha256"] == spec.sha256 and meta["delta_tensors"] > 0
    tuned, orig = create_model("litemedsam-scope"), create_model("litemedsam")
    a, b = tuned.state_dict(), orig.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("image_encoder."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("mask_decoder."))
    p = PromptPredictor.from_pretrained("litemedsam-scope")
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.full((96, 128, 3), 70, np.uint8)
    img[(yy - 48) ** 2 + (xx - 60) ** 2 < 400] = (210, 160, 130)
    p.set_image(img)
    mask = p.predict(boxes=[36, 24, 84, 72]).masks[0]
    inside = (yy - 48) ** 2 + (xx - 60) ** 2 < 400
    assert (mask & inside).sum() / (mask | inside).sum() > 0.8
    assert "leave-one-source-out" in W.model_card("litemedsam-scope")
    # an install made from an earlier release (another pinned SHA-256) counts as absent and is replaced
    record = W.weights_dir() / "litemedsam-scope.json"
    rec = json.loads(record.read_text())
    record.write_text(json.dumps({**rec, "sha256": "1" * 64}))
    assert not W.is_installed("litemedsam-scope")
    with pytest.raises(ModelError, match="earlier release; run: scopeseg weights install litemedsam-scope"):
        W.weights_path("litemedsam-scope")
    W.install("litemedsam-scope", progress=False)
    assert W.is_installed("litemedsam-scope") and W.installed_release("litemedsam-scope") == spec.sha256
    # a changed shipped file is refused by its SHA-256
    bad = W.WeightSpec(**{**spec.__dict__, "name": "bad-scope", "sha256": "0" * 64})
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        W.install_delta(bad)
    assert path.is_file()
