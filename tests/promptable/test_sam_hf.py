"""transformers SamModel behind PromptPredictor: our prompt path reproduces SamModel.forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    from transformers import SamConfig, SamModel
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    torch.manual_seed(0)
    vc = SamVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=64,
        patch_size=16,
        mlp_dim=64,
        global_attn_indexes=[1],
        window_size=2,
        num_pos_feats=16,
    )
    pc = SamPromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=8)
    mc = SamMaskDecoderConfig(hidden_size=32, num_attention_heads=2, mlp_dim=64, iou_head_hidden_dim=32)
    cfg = SamConfig(
        vision_config=vc.to_dict(), prompt_encoder_config=pc.to_dict(), mask_decoder_config=mc.to_dict()
    )
    out = tmp_path_factory.mktemp("hf") / "sam"
    SamModel(cfg).eval().save_pretrained(out)
    return out


def test_hf_sam_matches_sammodel_forward(hf_dir):
    from transformers import SamModel

    from scopeseg.inference.prompt import PromptPredictor

    ref = SamModel.from_pretrained(hf_dir, local_files_only=True).eval()
    p = PromptPredictor.from_pretrained(hf_dir)
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    p.set_image(img)
    boxes = np.array([[5, 5, 40, 30], [10, 10, 60, 45]], float)
    res = p.predict(boxes=boxes, points=[[20, 20]], point_labels=[1], multimask=True)
    assert res.masks.shape == (2, 3, 48, 64) and res.low_res_logits.shape == (2, 3, 16, 16)
    scale = 64 / 64  # longest side 64 -> input 64: coordinates unchanged
    with torch.no_grad():
        out = ref(
            pixel_values=torch.from_numpy(p._prep.pixels),
            input_points=torch.tensor([[[[20.0, 20.0]], [[20.0, 20.0]]]]) * scale,
            input_labels=torch.ones(1, 2, 1, dtype=torch.int),
            input_boxes=torch.tensor(boxes, dtype=torch.float32)[None] * scale,
            multimask_output=True,
        )
    np.testing.assert_allclose(res.low_res_logits, out.pred_masks[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(res.scores, out.iou_scores[0].numpy(), atol=1e-5)
    refined = p.predict(
        points=[[20, 20], [50, 40]], point_labels=[1, 0], mask_input=res.low_res_logits[:1, 0]
    )
    assert refined.masks.shape == (1, 48, 64)


def test_hf_sam_onnx_engine_is_refused_in_one_line(hf_dir):
    from scopeseg.errors import ModelError
    from scopeseg.inference.prompt import PromptPredictor

    with pytest.raises(ModelError, match="engine torch"):
        PromptPredictor.from_pretrained(hf_dir, engine="onnx")
