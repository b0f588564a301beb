"""Sim-to-real options of the generator, the ``real`` augmentation level and fine-tuning from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from scopeseg.config import validate_config
from scopeseg.data.synthetic import SynthConfig, render_video
from scopeseg.errors import ConfigError, DataError

SMALL = {"size": (120, 184), "frames": 2, "polyp_prob": 0.0, "difficulty": 0.3}
SEEDS = (1, 2, 3, 4, 5, 6)
OPTIONS = ("tissue_palette", "tissue_texture", "tissue_organs", "tool_look", "tool_width", "tool_insulated")


def _frames(seed: int, **kw):
    return list(render_video(seed, SynthConfig(**{**SMALL, **kw}), with_tracks=True))


def _tissue_pixels(frame, inst) -> np.ndarray:
    tool = np.zeros(frame.shape[:2], bool)
    for _, m, _ in inst:
        tool |= m
    keep = (frame.max(-1) > 30) & ~tool
    return frame[keep].astype(np.float32)


def _saturation(px: np.ndarray) -> float:
    return float(((px.max(1) - px.min(1)) / np.maximum(px.max(1), 1)).mean())


def test_options_off_keep_the_default_scene_and_are_validated():
    for seed in (1, 2):
        off = {k: 0.0 for k in OPTIONS}
        a, b = _frames(seed), _frames(seed, **off)
        assert all(np.array_equal(fa, fb) for (fa, _), (fb, _) in zip(a, b))
    for key in OPTIONS:
        with pytest.raises(ConfigError, match=key):
            validate_config(SynthConfig, {key: 1.5})


def test_tissue_palette_desaturates_tissue_and_keeps_the_masks():
    plain, pal = [], []
    for seed in SEEDS:
        for (f0, i0), (f1, i1) in zip(_frames(seed), _frames(seed, tissue_palette=1.0)):
            assert [c for c, _, _ in i0] == [c for c, _, _ in i1]
            assert all(np.array_equal(m0, m1) for (_, m0, _), (_, m1, _) in zip(i0, i1))
            plain.append(_saturation(_tissue_pixels(f0, i0)))
            pal.append(_saturation(_tissue_pixels(f1, i1)))
    assert np.mean(pal) < 0.8 * np.mean(plain)  # real Endoscapes tissue is far less saturated


def test_tissue_texture_adds_fine_detail():
    import cv2

    def detail(frames):  # Laplacian variance inside the tissue, away from the aperture and the tools
        out = []
        for f, inst in frames:
            keep = f.max(-1) > 30
            for _, m, _ in inst:
                keep &= ~m
            keep = cv2.erode(keep.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            out.append(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F)[keep].var())
        return float(np.mean(out))

    for seed in (1, 2):
        assert detail(_frames(seed, tissue_texture=0.7)) > 2.0 * detail(_frames(seed))


def test_tool_look_makes_tools_thicker_and_tissue_coloured():
    area0 = area1 = 0
    for seed in SEEDS:
        for (_, i0), (_, i1) in zip(_frames(seed), _frames(seed, tool_look=1.0)):
            area0 += sum(int(m.sum()) for _, m, _ in i0)
            area1 += sum(int(m.sum()) for _, m, _ in i1)
    assert area1 > 1.2 * area0


def test_tool_width_makes_tools_thicker_without_recolouring_them():
    area0 = area1 = 0
    for seed in SEEDS:
        for (f0, i0), (f1, i1) in zip(_frames(seed), _frames(seed, tool_width=1.0)):
            area0 += sum(int(m.sum()) for _, m, _ in i0)
            area1 += sum(int(m.sum()) for _, m, _ in i1)
            assert [c for c, _, _ in i0] == [c for c, _, _ in i1]
            tool0, tool1 = (np.any([m for _, m, _ in i], 0) for i in (i0, i1))
            both = tool0 & tool1
            if both.sum() > 50:  # untinted: the tool pixels keep the plain generator's saturation
                assert (
                    abs(_saturation(f1[both].astype(np.float32)) - _saturation(f0[both].astype(np.float32)))
                    < 0.15
                )
    assert area1 > 1.3 * area0
    # with tool_width 0 the scene is exactly the plain one, with other options on too
    a, b = _frames(3, tool_look=0.5), _frames(3, tool_look=0.5, tool_width=0.0)
    assert all(np.array_equal(fa, fb) for (fa, _), (fb, _) in zip(a, b))


def test_tissue_organs_add_grey_and_dark_tissue_and_keep_the_masks():
    """Organ regions (grey-blue gallbladder, pale fascia, dark liver) make part of the tissue far less red."""

    def redness(px):  # share of tissue pixels whose red channel clearly leads
        return float(np.mean(px[:, 0] > 1.35 * px[:, 1:].max(1)))

    plain, organs, changed = [], [], 0
    for seed in SEEDS:
        for (f0, i0), (f1, i1) in zip(_frames(seed), _frames(seed, tissue_organs=1.0)):
            assert [c for c, _, _ in i0] == [c for c, _, _ in i1]
            assert all(np.array_equal(m0, m1) for (_, m0, _), (_, m1, _) in zip(i0, i1))
            plain.append(redness(_tissue_pixels(f0, i0)))
            organs.append(redness(_tissue_pixels(f1, i1)))
            changed += int(not np.array_equal(f0, f1))
    assert changed >= len(SEEDS)  # every video (share 1.0) has organ regions
    assert np.mean(organs) < np.mean(plain) - 0.1, (np.mean(plain), np.mean(organs))


def test_insulated_tools_have_a_dark_shaft_and_a_light_sleeve():
    """tool_insulated=1: every instrument's pixels hold both near-black (shaft) and light grey (sleeve) parts,
    with the same categories and a mask of similar size (the look changes, not the geometry)."""
    dark = light = total = area0 = area1 = 0
    for seed in SEEDS:
        for (_f0, i0), (f1, i1) in zip(_frames(seed), _frames(seed, tool_insulated=1.0)):
            assert [c for c, _, _ in i0] == [c for c, _, _ in i1]
            for (_, m0, _), (_, m1, _) in zip(i0, i1):
                area0, area1 = area0 + int(m0.sum()), area1 + int(m1.sum())
                if m1.sum() < 200:
                    continue
                px = f1[m1].astype(np.float32)
                lum = px @ np.array([0.299, 0.587, 0.114], np.float32)
                sat = (px.max(1) - px.min(1)) / np.maximum(px.max(1), 1)
                dark += int((lum < 40).mean() > 0.1)
                light += int(((lum > 120) & (sat < 0.25)).mean() > 0.03)
                total += 1
    assert 0.7 < area1 / area0 < 1.5, (area0, area1)  # a longer sleeve in place of jaws
    assert total >= 6 and dark >= 0.8 * total and light >= 0.6 * total, (dark, light, total)


def test_realism_options_are_deterministic():
    opts = {
        "tissue_palette": 1.0,
        "tissue_texture": 0.4,
        "tissue_organs": 1.0,
        "tool_look": 1.0,
        "tool_width": 1.0,
        "tool_insulated": 1.0,
    }
    a, b = _frames(9, **opts), _frames(9, **opts)
    assert all(np.array_equal(fa, fb) for (fa, _), (fb, _) in zip(a, b))


def test_real_augmentation_keeps_masks_binary_and_size():
    from scopeseg.data.transforms import train_transform

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[30:60, 40:90] = 1
    t = train_transform((64, 96), "real")
    changed = 0
    for _ in range(8):
        out = t(image=img, mask=mask)
        assert out["image"].shape == (64, 96, 3) and out["image"].dtype == np.uint8
        assert set(np.unique(out["mask"])) <= {0, 1}
        changed += int(out["image"].mean() != img.mean())
    assert changed > 0


@pytest.mark.parametrize("level", ["randconv", "domain"])
def test_domain_augmentation_levels_keep_masks_and_size(level):
    from scopeseg.data.transforms import train_transform

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = (rng.random((96, 128)) > 0.7).astype(np.uint8)
    t = train_transform(None, level)
    t.set_random_seed(3)
    for _ in range(6):
        out = t(image=img, mask=mask)
        assert out["image"].shape == img.shape and out["image"].dtype == np.uint8
        assert set(np.unique(out["mask"])) <= {0, 1}


def test_augment_scale_zooms_and_is_validated():
    from scopeseg.config import build_config
    from scopeseg.data.transforms import train_transform
    from scopeseg.errors import ConfigError

    img = np.zeros((96, 128, 3), np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[40:56, 56:72] = 1  # 256 px in the middle
    areas = []
    for scale in ((1.0, 1.0), (2.0, 2.0)):
        t = train_transform(None, "default", scale)
        t.set_random_seed(0)
        areas.append(max(t(image=img, mask=mask)["mask"].sum() for _ in range(12)))
    assert areas[1] > 3 * areas[0]  # 2x zoom: 4x the area when the affine is drawn (p=0.6)
    cfg = build_config(preset="unet-lite0", overrides=["augment_scale=[0.9,2.0]"], task="semantic")
    assert cfg.augment_scale == (0.9, 2.0)
    with pytest.raises(ConfigError, match="augment_scale"):
        build_config(preset="unet-lite0", overrides=["augment_scale=[2,1]"], task="semantic")


def test_random_convolution_is_a_rescaled_blend_of_a_colour_filter():
    """k=1: a 3x3 colour matrix per pixel; the output keeps each channel's mean and spread, mix 0 is identity."""
    import albumentations as A
    import cv2

    from scopeseg.data.transforms import RandomConvolution

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8), (5, 5), 0)
    t = RandomConvolution(kernel_sizes=(1,), mix=(1.0, 1.0), p=1.0)
    t.set_random_seed(5)
    params = t.get_params()
    out = t.apply(img, **params).astype(np.float64)
    x = img.reshape(-1, 3).astype(np.float64)
    y = x @ params["weight"][:, :, 0, 0].T.astype(np.float64)
    y = (y - y.mean(0)) / y.std(0) * x.std(0) + x.mean(0)
    expect = np.clip(y, 0, 255).reshape(img.shape)
    assert np.abs(out - expect).max() < 1.01  # uint8 truncation, float32
    assert np.allclose(out.reshape(-1, 3).mean(0), x.mean(0), atol=3)
    same = A.Compose([RandomConvolution(kernel_sizes=(5,), mix=(0.0, 0.0), p=1.0)])
    assert np.array_equal(same(image=img)["image"], img)
    big = RandomConvolution(kernel_sizes=(7,), p=1.0)
    big.set_random_seed(2)
    assert big.get_params()["weight"].shape == (3, 3, 7, 7)


def test_init_from_checkpoint_copies_weights_and_refuses_other_shapes(tmp_path):
    import torch

    from scopeseg.models.checkpoints import save_pretrained
    from scopeseg.models.registry import create_model
    from scopeseg.train.semantic import init_from_checkpoint

    torch.manual_seed(0)
    src = create_model("unet-effb0", classes=["instrument"], pretrained=False)
    save_pretrained(src, tmp_path / "ck")
    torch.manual_seed(1)
    dst = create_model("unet-effb0", classes=["foreground"], pretrained=False)  # other name, same shape
    key = next(k for k, v in dst.state_dict().items() if v.dtype.is_floating_point and v.numel() > 8)
    assert not torch.equal(dst.state_dict()[key], src.state_dict()[key])
    init_from_checkpoint(dst, str(tmp_path / "ck"))
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in dst.state_dict().items())
    two = create_model("unet-effb0", classes=["a", "b"], pretrained=False)
    with pytest.raises(DataError, match="1 classes"):
        init_from_checkpoint(two, str(tmp_path / "ck"))
