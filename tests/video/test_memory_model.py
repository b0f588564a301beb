"""The memory head: starts as its base image model, bounded memory, clip training (losses by weight, resume)."""

from __future__ import annotations

import json

import pytest
import torch

from scopeseg.losses import build_loss
from scopeseg.models.video.memory import ObjectMemory


def test_memory_head_starts_as_the_base_model(tiny_memory_model):
    m = tiny_memory_model
    x, coords, labels = m.example_inputs(2)
    with torch.no_grad():
        emb = m.encode(x)
        base, _ = m.sam.decode(emb, coords, labels)
        low, _ = m(x, coords, labels)  # conditioned on the first decode's memory
    assert torch.allclose(low, base, atol=1e-5)
    m2 = type(m)(m.sam, mem_dim=16, attn_dim=16, heads=2, pool=2)
    with torch.no_grad():
        for layer in m2.layers:
            layer.out.weight.normal_()
        assert not torch.allclose(m2(x, coords, labels)[0], base, atol=1e-3)  # the memory changes the masks


def test_memory_bank_is_bounded(tiny_memory_model):
    m = tiny_memory_model
    x, coords, labels = m.example_inputs(1)
    bank = ObjectMemory()
    with torch.no_grad():
        emb = m.encode(x)
        for t in range(12):
            m.step(emb, [bank], coords, labels, [t in (0, 5, 9)])
    assert len(bank.prompted) == 2 and len(bank.recent) == m.memory_size == 6


def test_losses_are_weighted_by_name():
    logits = torch.randn(3, 1, 16, 16)
    target = (torch.rand(3, 16, 16) > 0.5).long()
    iou = torch.rand(3)
    one = build_loss("focal:1,dice:1,iou_mse:1", True, inputs=("pred_iou",))
    total = one(logits, target, pred_iou=iou)
    parts = dict(one.last)
    weighted = build_loss("focal:20,dice:0.5,iou_mse:2", True, inputs=("pred_iou",))
    value = weighted(logits, target, pred_iou=iou)
    assert value.item() == pytest.approx(
        20 * parts["focal"] + 0.5 * parts["dice"] + 2 * parts["iou_mse"], rel=1e-5
    )
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)


def test_clip_training_runs_and_resumes(tmp_path):
    from tests.conftest import make_disc_videos

    from scopeseg.config import build_config
    from scopeseg.models.video.memory import TINY_HEAD
    from scopeseg.train.loop import train
    from scopeseg.train.video import VideoModule, VideoTrainConfig

    data = make_disc_videos(tmp_path / "discs", videos=3, frames=5, size=(48, 64))
    args = {k: v for k, v in TINY_HEAD.items() if k != "pretrained"}
    over = {"data": str(data), "out": str(tmp_path / "run"), "epochs": 1, "pretrained": False, "clip_length": 3,
            "model_args": args, "prompt_types": ["box", "points", "mask"], "prompted_frames": 2, "loss": "focal:20,dice:1"}  # fmt: skip
    cfg = build_config(VideoTrainConfig, preset="litemedsam-memory-video", overrides=over)
    res = train(cfg)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert 0.0 <= res["val"]["val_dice"] <= 1.0
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["family"] == "video"
    assert VideoModule(__import__("scopeseg").models.create_model("litemedsam-memory", **TINY_HEAD), cfg).loss_fn.parts == [
        ("focal", 20.0), ("dice", 1.0)]  # fmt: skip
    again = build_config(VideoTrainConfig, preset="litemedsam-memory-video",
                         overrides={**over, "epochs": 2, "resume": str(tmp_path / "run")})  # fmt: skip
    res2 = train(again)
    assert res2["epochs_run"] == 2


def test_memory_predictor_engines_agree(tiny_memory_model, tmp_path):
    from video_testutil import square_frames

    from scopeseg.inference.tracking import Prompt, propagate
    from scopeseg.inference.video import VideoPredictor

    ckpt = tiny_memory_model.save_pretrained(tmp_path / "mem")
    frames, _ = square_frames(4)
    prompts = {0: {1: Prompt(box=(5, 20, 21, 36))}}
    ref = [m[1] for _, m in propagate(VideoPredictor.from_pretrained(ckpt), frames, prompts)]
    onnx = VideoPredictor.from_pretrained(ckpt, engine="onnx")
    assert type(onnx.encoder).__name__ == "OrtPromptEngine" and (ckpt / "base_sam" / "config.json").is_file()
    got = [m[1] for _, m in propagate(onnx, frames, prompts)]
    assert sum(int(a.sum()) for a in ref) > 0
    assert all((a != b).mean() < 0.01 for a, b in zip(ref, got))  # fp32 export: masks agree


def test_sam2_tracks_and_trains(tmp_path):
    from tests.conftest import make_disc_videos
    from video_testutil import square_frames

    from scopeseg.config import build_config
    from scopeseg.inference.tracking import Prompt, propagate
    from scopeseg.inference.video import Sam2Predictor, VideoPredictor
    from scopeseg.models import create_model
    from scopeseg.train.loop import train
    from scopeseg.train.video import VideoTrainConfig

    torch.manual_seed(0)
    model = create_model("sam2-video", layout="tiny", image_size=64)
    pred = VideoPredictor.from_pretrained(model)
    assert isinstance(pred, Sam2Predictor)
    frames, _ = square_frames(20)
    out = list(
        propagate(
            pred, frames, {0: {1: Prompt(box=(5, 20, 21, 36))}, 2: {2: Prompt(points=[(9, 25)], labels=[1])}}
        )
    )
    assert [t for t, _ in out] == list(range(20)) and set(out[5][1]) == {1, 2}
    keep = max(model.net.config.num_maskmem, model.net.config.max_object_pointers_in_encoder) + 1
    assert list(pred.session.processed_frames) == [19]  # pixels of past frames dropped
    assert all(
        len(o["non_cond_frame_outputs"]) <= keep + 1 for o in pred.session.output_dict_per_obj.values()
    )
    data = make_disc_videos(tmp_path / "discs", videos=3, frames=4, size=(48, 64))
    over = {"data": str(data), "out": str(tmp_path / "run"), "epochs": 1, "clip_length": 3,
            "model_args": {"layout": "tiny", "image_size": 64}}  # fmt: skip
    res = train(build_config(VideoTrainConfig, preset="sam2-tiny-video", overrides=over))
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file() and 0 <= res["val"]["val_dice"] <= 1
    with pytest.raises(Exception, match="iou_mse.*needs pred_iou"):
        train(
            build_config(
                VideoTrainConfig,
                preset="sam2-tiny-video",
                overrides={**over, "loss": "dice:1,iou_mse:1", "overwrite": True},
            )
        )


def test_sam2_loads_hf_format_weights_from_disk(tmp_path):
    from transformers import Sam2VideoModel

    from scopeseg.errors import ModelError
    from scopeseg.models import create_model
    from scopeseg.models.video.sam2 import sam2_config

    torch.manual_seed(0)
    net = Sam2VideoModel(sam2_config("tiny", 64, 7))
    net.save_pretrained(tmp_path / "hf")
    m = create_model("sam2-video", hf_dir=str(tmp_path / "hf"))
    assert m.img_size == 64
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), m.net.state_dict().values()))
    with pytest.raises(ModelError, match="no config.json"):
        create_model("sam2-video", hf_dir=str(tmp_path))
    with pytest.raises(ModelError, match="no SAM2 weights are bundled"):
        create_model("sam2-video", pretrained=True)


def test_embedding_cache_is_computed_once_and_frozen_decoder_stays(tmp_path):
    from safetensors.torch import load_file
    from tests.conftest import make_disc_videos

    from scopeseg.config import build_config
    from scopeseg.inference.sources import load_torch_model
    from scopeseg.models.video.memory import TINY_HEAD
    from scopeseg.train.loop import train
    from scopeseg.train.video import VideoTrainConfig

    data = make_disc_videos(tmp_path / "discs", videos=3, frames=4, size=(48, 64))
    args = {k: v for k, v in TINY_HEAD.items() if k != "pretrained"}
    cache = tmp_path / "cache"
    over = {"data": str(data), "out": str(tmp_path / "run"), "epochs": 1, "pretrained": False, "clip_length": 2,
            "model_args": args, "embedding_cache": str(cache), "train_decoder": False, "flip": True}  # fmt: skip
    train(build_config(VideoTrainConfig, preset="litemedsam-memory-video", overrides=over))
    files = list(cache.glob("*.safetensors"))
    assert len(files) == 1
    stored = load_file(str(files[0]))
    # 12 frames: train frames with and without flip, val frames unflipped
    assert len(stored) > 12 and {k.split(":")[1] for k in stored} == {"0", "1"}
    assert all(
        v.dtype == torch.float16 and v.shape[0] == TINY_HEAD["base_args"]["prompt_dim"]
        for v in stored.values()
    )
    stamp = files[0].stat().st_mtime_ns
    model = load_torch_model(tmp_path / "run" / "best")
    torch.manual_seed(0)
    from scopeseg.models import create_model

    init = create_model("litemedsam-memory", **TINY_HEAD)
    for (name, a), b in zip(model.sam.state_dict().items(), init.sam.state_dict().values()):
        assert torch.equal(a, b), name  # base SAM (encoder and decoder) untouched with train_decoder=False
    head_changed = any(
        not torch.equal(a, b)
        for a, b in zip(model.layers.state_dict().values(), init.layers.state_dict().values())
    )
    assert head_changed
    train(build_config(VideoTrainConfig, preset="litemedsam-memory-video",
                       overrides={**over, "out": str(tmp_path / "run2")}))  # fmt: skip
    assert files[0].stat().st_mtime_ns == stamp  # reused, not recomputed


@pytest.mark.slow
def test_clip_training_ddp_two_cpu_processes(tmp_path):
    """Clip training of the memory head under DDP: two CPU processes (gloo) launched by the CLI."""
    from tests.conftest import make_disc_videos, run_ddp_train

    from scopeseg.models.checkpoints import load_model
    from scopeseg.models.video.memory import TINY_HEAD

    data = make_disc_videos(tmp_path / "discs", videos=4, frames=4, size=(48, 64))
    args = [f"model_args.{k}={v}" for k, v in TINY_HEAD.items() if k not in ("pretrained", "base_args")]
    args += [f"model_args.base_args.{k}={v}" for k, v in TINY_HEAD["base_args"].items()]
    over = ["preset=litemedsam-memory-video", f"data={data}", "pretrained=false", "clip_length=2",
            "limit_train_batches=null", *args]  # fmt: skip
    run = run_ddp_train(over, tmp_path / "ddp", epochs=2)
    assert type(load_model(run / "best")).__name__ == "MemorySAM"
