"""Instance family (Mask2Former + LEMIS text + SiMaskFormer switches): model, loss, post-processing, I/O."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from scopeseg.errors import ConfigError, ModelError
from scopeseg.models import create_model, load_model
from scopeseg.models.instance.criterion import SetCriterion, Target
from scopeseg.models.instance.mask2former import TINY
from scopeseg.models.instance.postprocess import instances_from_outputs
from scopeseg.models.instance.text import minilm_available, random_text_encoder

CLASSES = ["grasper", "hook", "scissors"]
SWITCHES = ("quality_head", "shared_matching", "refine", "box_head", "mask_pool")


def tiny(text: str = "none", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    name = "lemis-lite0" if text != "none" else "mask2former-lite0"
    extra = {"text": text, "text_encoder": "random"} if text != "none" else {}
    return create_model(name, **{**TINY, **extra, "classes": CLASSES, **kw})


def targets(b: int, h: int, w: int) -> list[Target]:
    out = []
    for i in range(b):
        m = torch.zeros(2, h, w)
        m[0, 4:30, 5 + i : 40] = 1
        m[1, 34:60, 50:90] = 1
        boxes = torch.tensor([[22.5 / w, 17 / h, 35.0 / w, 26 / h], [70 / w, 47 / h, 40 / w, 26 / h]])
        out.append(Target(torch.tensor([0, 2]), m, boxes))
    return out


@pytest.mark.parametrize("text", ["none", "additive", "cross_attention"])
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=5)))
def test_forward_backward_every_switch_combination(text, flags):
    kw = dict(zip(SWITCHES, flags))
    model = tiny(text, **kw).train()
    x = torch.rand(2, 3, 64, 96)
    result = model.forward_all(x)
    assert len(result["aux"]) == TINY["dec_layers"]
    out = result["out"]
    assert out["logits"].shape == (2, TINY["num_queries"], len(CLASSES) + 1)
    assert out["masks"].shape == (2, TINY["num_queries"], 16, 24)
    assert ("quality" in out) == kw["quality_head"] and ("boxes" in out) == kw["box_head"]
    assert ("coarse_masks" in out) == kw["refine"]
    crit = SetCriterion(len(CLASSES), shared_matching=kw["shared_matching"])
    loss = crit(result, targets(2, 64, 96))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, dead[:5]
    assert set(crit.last) >= {"class", "mask", "dice"}
    assert ("quality" in crit.last) == kw["quality_head"] and ("box" in crit.last) == kw["box_head"]


def test_shared_matching_matches_once_per_step(monkeypatch):
    calls = {True: 0, False: 0}
    for shared in (False, True):
        model = tiny(shared_matching=shared)
        crit = SetCriterion(len(CLASSES), shared_matching=shared)
        real = crit.match

        def counting(*a, _s=shared, _real=real, **k):
            calls[_s] += 1
            return _real(*a, **k)

        monkeypatch.setattr(crit, "match", counting)
        crit(model.forward_all(torch.rand(1, 3, 64, 96)), targets(1, 64, 96))
    assert calls[True] == 1 and calls[False] == TINY["dec_layers"] + 1


def test_save_load_round_trip_keeps_outputs_and_text_table(tmp_path):
    model = tiny(
        "cross_attention", quality_head=True, refine=True, box_head=True, mask_pool=True, pool_max=True
    ).eval()
    torch.nn.init.normal_(model.pool_proj.layers[-1].weight)  # zero at init: make the pooled path count
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
    model.save_pretrained(tmp_path / "ckpt")
    back = load_model(tmp_path / "ckpt")
    assert type(back) is type(model) and back.text_conditioned and back.classes == CLASSES
    assert torch.equal(back.text_table, model.text_table) and back.text_table.abs().sum() > 0
    with torch.no_grad():
        for a, b in zip(ref, back(x)):
            torch.testing.assert_close(a, b)


def test_text_noise_perturbs_training_only():
    model = tiny("cross_attention")
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():  # no other randomness in a training forward
        torch.testing.assert_close(
            model.train().forward_all(x)["out"]["logits"], model.forward_all(x)["out"]["logits"]
        )
    model.text_noise = 0.5
    with torch.no_grad():
        a, b = model.train().forward_all(x)["out"]["logits"], model.forward_all(x)["out"]["logits"]
        c, d = model.eval()(x)[0], model(x)[0]
    assert (a - b).abs().max() > 1e-4  # fresh noise every training forward
    torch.testing.assert_close(c, d)
    model.text_noise = 0.0
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], c)  # inference never sees the noise


@pytest.mark.parametrize("text", ["additive", "cross_attention"])
def test_text_changes_outputs_when_names_change(text):
    model = tiny(text).eval()
    enc = random_text_encoder()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a = model(x)[0]
        model.set_class_embeddings(CLASSES[::-1], enc.embed(CLASSES[::-1]))  # names swapped between classes
        b = model(x)[0]
        model.set_class_embeddings(CLASSES, enc.embed(CLASSES))
        c = model(x)[0]
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(a, c)
    # swapping the names swaps the class columns of the text similarity when the fusion is query-agnostic
    if text == "additive":
        torch.testing.assert_close(a[..., 0], b[..., 2], atol=1e-5, rtol=1e-5)


def test_plain_model_refuses_new_names_and_wrong_count():
    with pytest.raises(ModelError, match="no text conditioning"):
        tiny().set_class_embeddings(CLASSES, torch.zeros(3, 32))
    with pytest.raises(ModelError, match="2 class names given"):
        tiny("additive").set_class_embeddings(["a", "b"], torch.zeros(2, 32))


def test_quality_head_ranks_instead_of_class_confidence():
    q = 3
    logits = torch.tensor([[4.0, 0.0, -9.0], [0.0, 4.0, -9.0], [3.0, 0.0, -9.0]])  # 2 classes + no-object
    masks = torch.full((q, 2, 2), 10.0)
    quality = torch.tensor([-3.0, 3.0, 0.0])
    by_class = instances_from_outputs(logits, masks, None, None, (8, 8), (8, 8), topk=3)
    by_quality = instances_from_outputs(logits, masks, quality, None, (8, 8), (8, 8), topk=3)
    assert [x.label for x in by_class] == [0, 1, 0]  # probabilities 0.98, 0.98, 0.95
    assert by_quality[0].label == 1 and by_quality[0].score == pytest.approx(
        torch.sigmoid(torch.tensor(3.0)).item(), rel=1e-3
    )
    assert by_quality[0].mask.shape == (8, 8) and by_quality[0].mask.all()
    assert len(by_quality[0].score_dist) == 2


def test_box_head_boxes_are_in_image_pixels():
    logits = torch.tensor([[5.0, -5.0]])
    masks = torch.full((1, 4, 6), 10.0)
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.25]])
    (x,) = instances_from_outputs(logits, masks, None, boxes, (16, 24), (32, 48), topk=1)
    assert x.box == pytest.approx([12.0, 12.0, 24.0, 8.0])
    assert x.mask.shape == (32, 48)


# ------------------------------------------------------------------------------------------ MiniLM (weights)


@pytest.mark.weights
def test_minilm_embeds_class_names_apart():
    if not minilm_available():
        pytest.skip("minilm not installed (scopeseg weights install minilm)")
    from scopeseg.models.instance.text import VOCAB_SIZE, load_minilm

    enc = load_minilm()
    assert len(enc.tokenizer) == VOCAB_SIZE and enc.dim == 384
    e = torch.nn.functional.normalize(
        enc.embed(["grasper", "grasping forceps", "scissors", "bipolar_forceps"]), dim=1
    )
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.1  # a synonym is closer than another instrument
    assert sim[2, 3] < 0.3  # names embedded alone stay apart (a sentence template gives ~0.7)
    assert not any(p.requires_grad for p in enc.parameters())


@pytest.mark.weights
def test_lemis_with_minilm_embeds_at_creation():
    if not minilm_available():
        pytest.skip("minilm not installed (scopeseg weights install minilm)")
    m = create_model("lemis-lite0", **{**TINY, "pretrained": True, "classes": CLASSES})
    assert m.text_table.shape == (3, 384) and m.text_table.abs().sum() > 0


def test_classes_helpers():
    from scopeseg.inference.instance import parse_classes

    assert parse_classes("a, b ,c") == ["a", "b", "c"]
    assert parse_classes(None) is None
    with pytest.raises(ConfigError):
        parse_classes("a,,b")


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from scopeseg.inference.instance import export_onnx

    model = tiny("cross_attention", quality_head=True, refine=True, box_head=True).eval()
    model.config["input_size"] = [64, 96]
    path = export_onnx(model, tmp_path / "model.onnx")
    x = torch.rand(1, 3, 64, 96)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"pixels": x.numpy()})
    with torch.no_grad():
        ref = model(x)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b.numpy(), atol=2e-4, rtol=1e-3)


def test_openvino_runs_the_onnx_export_like_torch(tmp_path):
    ov = pytest.importorskip("openvino")
    from scopeseg.inference.instance import export_onnx

    model = tiny("additive", quality_head=True, box_head=True).eval()
    model.config["input_size"] = [64, 96]
    path = export_onnx(model, tmp_path / "model.onnx")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.rand(1, 3, 64, 96)
    res = compiled([x.numpy()])
    with torch.no_grad():
        ref = model(x)
    for i, b in enumerate(ref):
        np.testing.assert_allclose(res[compiled.outputs[i]], b.numpy(), atol=5e-4, rtol=1e-3)


def test_training_targets_and_jitter():
    from scopeseg.train.instance import color_jitter, masks_to_boxes

    m = torch.zeros(1, 10, 20, dtype=torch.uint8)
    m[0, 2:6, 4:14] = 1
    torch.testing.assert_close(masks_to_boxes(m), torch.tensor([[9 / 20, 4 / 10, 10 / 20, 4 / 10]]))
    assert masks_to_boxes(torch.zeros(0, 10, 20)).shape == (0, 4)
    x = torch.rand(3, 8, 8)
    y = color_jitter(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)


def test_timed_schedule_follows_the_clock_when_steps_lag(monkeypatch):
    from scopeseg.train import instance as inst
    from scopeseg.train.loop import lr_factor

    now = [100.0]
    monkeypatch.setattr(inst.time, "monotonic", lambda: now[0])
    base = lr_factor("cosine", 1000, 10)
    f = inst.timed_factor(base, 1000, 10, minutes=2.0)
    assert f(0) == base(0) and f(5) == base(5)  # warm-up stays step-based
    assert f(100) == base(100)  # the clock has not moved: the step decides
    now[0] += 60.0  # half the time gone at step 100: the schedule is at its middle
    assert f(100) == pytest.approx(base(505))
    now[0] += 120.0  # past the time: the lr is at the end of the schedule
    assert f(200) == pytest.approx(base(1000)) == pytest.approx(0.02)
    assert f(900) == pytest.approx(0.02)


def encoder_norms(model):
    return [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_frozen_encoder_norms_stay_in_eval_mode():
    from scopeseg.train.instance import InstanceModule, InstanceTrainConfig

    model = tiny()
    module = InstanceModule(model, InstanceTrainConfig())
    module.train()
    norms = encoder_norms(module.model)
    assert norms and all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in norms)
    assert model.pixel_decoder.training and model.encoder.training
    module = InstanceModule(tiny(), InstanceTrainConfig(freeze_encoder_bn=False)).train()
    assert all(m.training for m in encoder_norms(module.model))


@pytest.mark.parametrize("encoder", ["efficientnet-lite0", "mobilenetv2"])
def test_freeze_encoder_at_trains_only_the_later_encoder_layers(encoder):
    from scopeseg.models.encoders import create_encoder
    from scopeseg.train.instance import InstanceModule, InstanceTrainConfig

    enc = create_encoder(encoder)
    sizes = [sum(p.numel() for m in enc.feature_prefix(n) for p in m.parameters()) for n in range(6)]
    assert sizes[0] == 0 and sizes == sorted(sizes) and sizes[5] <= sum(p.numel() for p in enc.parameters())
    with pytest.raises(ModelError):
        enc.feature_prefix(6)

    model = tiny()
    module = InstanceModule(model, InstanceTrainConfig(freeze_encoder_at=2, freeze_encoder_bn=False)).train()
    frozen = {id(p) for m in model.encoder.feature_prefix(2) for p in m.parameters()}
    assert len(frozen) > 10
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.rand(2, 3, 64, 96)
    module.criterion(model.forward_all(x), targets(2, 64, 96)).backward()
    opt.step()
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        if id(p) in frozen:
            assert not changed and p.grad is None, n
    assert any(
        not torch.equal(before[n], p.detach())
        for n, p in model.named_parameters()
        if n.startswith("encoder.")
    )
    # the frozen prefix keeps its BatchNorm statistics (eval mode) even with freeze_encoder_bn=False
    prefix_norms = [
        m
        for mod in model.encoder.feature_prefix(2)
        for m in mod.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert prefix_norms and not any(m.training for m in prefix_norms)
    assert any(m.training for m in encoder_norms(module.model))


def test_mask_pool_mean_and_max_by_hand():
    from scopeseg.models.instance.mask2former import _mask_pool

    feats = torch.tensor([[[[1.0, -2.0], [3.0, -4.0]], [[-1.0, -5.0], [0.5, 2.0]]]])  # (1, 2 channels, 2, 2)
    big = 20.0  # sigmoid(20) = 1, sigmoid(-20) = 0
    masks = torch.full((1, 2, 2, 2), -big)
    masks[0, 0, 0, :] = big  # query 0: the top row
    out = _mask_pool(masks, feats, with_max=True)  # query 1: an empty mask
    assert out.shape == (1, 2, 4)
    w = torch.sigmoid(masks)
    mean0 = (w[0, 0] * feats[0]).sum((-2, -1)) / (w[0, 0].sum() + 1.0)
    assert torch.allclose(out[0, 0, :2], mean0)
    assert out[0, 0, 2:].tolist() == [1.0, -1.0]  # channel-wise max over the top row (negatives kept)
    assert out[0, 1, 2:].tolist() == [0.0, 0.0]  # an empty mask pools to zero, not -inf
    assert torch.equal(_mask_pool(masks, feats), out[..., :2])
    with pytest.raises(ModelError, match="pool_max needs mask_pool"):
        tiny(pool_max=True)
