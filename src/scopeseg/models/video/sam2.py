"""SAM2 (Ravi et al. 2024) through transformers' ``Sam2VideoModel``, driven by its inference session directly.

Why: the SAM2 processors need torchvision (never installed here), so frames are normalised by hand
(``Sam2Recipe``: square resize, ImageNet mean/std) and prompts go into ``Sam2VideoInferenceSession`` as SAM
points (a box = 2 corner points labelled 2 and 3). Layouts: ``tiny`` (2.7 M, tests and CPU training),
``hiera-tiny`` / ``hiera-small`` (the published SAM2.1 Hiera-T / -S layouts at 1024^2). HF-format SAM2 weights
load from a folder a user has (``hf_dir=``); none exist in any package reachable here, so the CPU numbers
are of models trained from our data. ``step_frame`` runs one frame with gradients (training) or without.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ModelError
from ..base import ScopesegModel
from ..registry import register_model
from ..sam.recipes import SAM_PIXEL_MEAN, SAM_PIXEL_STD, PreparedImage

#: transformers ``Sam2VideoConfig`` arguments per layout (``image_size`` is filled in)
LAYOUTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "backbone": {"hidden_size": 32, "blocks_per_stage": [1, 1, 2, 1], "embed_dim_per_stage": [32, 64, 128, 256],
                     "num_attention_heads_per_stage": [1, 1, 2, 4], "global_attention_blocks": [3],
                     "window_size_per_stage": [8, 4, 14, 7], "window_positional_embedding_background_size": [4, 4]},
        "hidden": 128, "decoder_mlp": 256, "memory_layers": 2, "memory_ffn": 256, "fuser_intermediate": 256,
    },
    "hiera-tiny": {
        "backbone": {"hidden_size": 96, "blocks_per_stage": [1, 2, 7, 2], "embed_dim_per_stage": [96, 192, 384, 768],
                     "num_attention_heads_per_stage": [1, 2, 4, 8], "global_attention_blocks": [5, 7, 9],
                     "window_size_per_stage": [8, 4, 14, 7], "window_positional_embedding_background_size": [7, 7]},
        "hidden": 256, "decoder_mlp": 2048, "memory_layers": 4, "memory_ffn": 2048, "fuser_intermediate": 1024,
    },
    "hiera-small": {
        "backbone": {"hidden_size": 96, "blocks_per_stage": [1, 2, 11, 2], "embed_dim_per_stage": [96, 192, 384, 768],
                     "num_attention_heads_per_stage": [1, 2, 4, 8], "global_attention_blocks": [7, 10, 13],
                     "window_size_per_stage": [8, 4, 14, 7], "window_positional_embedding_background_size": [7, 7]},
        "hidden": 256, "decoder_mlp": 2048, "memory_layers": 4, "memory_ffn": 2048, "fuser_intermediate": 1024,
    },
}  # fmt: skip


def sam2_config(layout: str, image_size: int, num_maskmem: int) -> Any:
    """The transformers ``Sam2VideoConfig`` of a layout at ``image_size`` (a multiple of 32)."""
    from transformers import Sam2VideoConfig
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )

    if layout not in LAYOUTS:
        raise ModelError(f"unknown SAM2 layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
    if image_size % 32:
        raise ModelError(f"SAM2 image_size must be a multiple of 32, got {image_size}")
    lay, s, h = LAYOUTS[layout], image_size, LAYOUTS[layout]["hidden"]
    dims = lay["backbone"]["embed_dim_per_stage"]
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "num_attention_heads": 1,
        "image_size": [s, s],
        **lay["backbone"],
    }
    return Sam2VideoConfig(
        vision_config={
            "backbone_config": backbone,
            "backbone_channel_list": dims[::-1],
            "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            "fpn_hidden_size": h,
        },
        # sub-configs as objects: transformers 5.17 turned a mask_decoder_config dict into a prompt-encoder config
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=h, image_size=s, mask_input_channels=16),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=h, mlp_dim=lay["decoder_mlp"],
                                                       num_attention_heads=8 if h >= 256 else 4, iou_head_hidden_dim=h),
        image_size=s,
        num_maskmem=num_maskmem,
        memory_attention_hidden_size=h,
        memory_attention_num_layers=lay["memory_layers"],
        memory_attention_feed_forward_hidden_size=lay["memory_ffn"],
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=h,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=h,
        memory_fuser_embed_dim=h,
        memory_fuser_intermediate_dim=lay["fuser_intermediate"],
    )  # fmt: skip


class Sam2Recipe:
    """SAM2's image recipe: resize to S x S (no aspect kept) bilinear, /255, ImageNet mean/std; prompts per axis."""

    name = "sam2"

    def resize(self, image: np.ndarray, size: int) -> np.ndarray:
        import cv2

        return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)

    def prepare(self, image: np.ndarray, size: int) -> PreparedImage:
        small = self.resize(image, size).astype(np.float32)
        pixels = ((small - SAM_PIXEL_MEAN) / SAM_PIXEL_STD).transpose(2, 0, 1)[None]
        return PreparedImage(
            np.ascontiguousarray(pixels, np.float32), (image.shape[0], image.shape[1]), (size, size)
        )

    def scale_points(self, points: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        h, w = original_size
        out = points.astype(np.float64).copy()
        out[..., 0] *= size / w
        out[..., 1] *= size / h
        return out

    def scale_boxes(self, boxes: np.ndarray, original_size: tuple[int, int], size: int) -> np.ndarray:
        return self.scale_points(boxes.reshape(-1, 2, 2), original_size, size).reshape(boxes.shape)

    def postprocess(self, logits: torch.Tensor, prep: PreparedImage, size: int) -> torch.Tensor:
        return F.interpolate(logits, prep.original_size, mode="bilinear", align_corners=False)


def video_recipe(name: str) -> Any:
    """The image/prompt recipe of a video model (``sam2``, or a SAM image recipe: ``medsam``, ``sam``)."""
    if name == "sam2":
        return Sam2Recipe()
    from ..sam.recipes import get_recipe

    return get_recipe(name)


class Sam2Video(ScopesegModel):
    """transformers ``Sam2VideoModel`` as a scopeseg video model (``net``), run through inference sessions."""

    family = "video"
    video = True
    preprocess = "sam2"

    def __init__(self, net: Any, threshold: float = 0.5, memory: int = 6):
        super().__init__()
        self.net = net
        self.img_size = int(net.config.image_size)
        self.low_res_size = self.img_size // 4
        self.threshold = threshold
        self.memory_size = memory

    def new_session(self, height: int, width: int) -> Any:
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        # everything on the model's device: a CPU session beside CUDA weights fails under autocast (seen on an H200)
        dev = next(self.net.parameters()).device
        return Sam2VideoInferenceSession(
            video_height=height,
            video_width=width,
            inference_device=dev,
            inference_state_device=dev,
            video_storage_device=dev,
            dtype=torch.float32,
        )

    def add_prompt(
        self,
        session: Any,
        frame: int,
        obj_id: int,
        coords: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Points ``(P, 2)`` in input pixels with labels (2/3 box corners first, 1/0 clicks) or an ``S x S`` mask."""
        idx = session.obj_id_to_idx(obj_id)
        if mask is not None:
            session.add_mask_inputs(idx, frame, mask.float().reshape(1, 1, *mask.shape[-2:]))
            session.point_inputs_per_obj[idx].pop(frame, None)
        else:
            session.add_point_inputs(
                idx,
                frame,
                {
                    "point_coords": coords.float().reshape(1, 1, -1, 2),
                    "point_labels": labels.int().reshape(1, 1, -1),
                },
            )
            session.mask_inputs_per_obj[idx].pop(frame, None)
        if obj_id not in session.obj_with_new_inputs:
            session.obj_with_new_inputs = [*session.obj_with_new_inputs, obj_id]

    def step_frame(self, session: Any, frame: int, pixels: torch.Tensor, grad: bool = False) -> Any:
        """Run one frame (``(3, S, S)`` normalised pixels) for every object of the session; outputs keep
        ``pred_masks (N, 1, S/4, S/4)`` logits and ``object_ids``. ``grad``: without inference mode (training)."""
        from transformers import Sam2VideoModel

        session.add_new_frame(pixels, frame)
        self.net.eval()  # transformers' video forward returns object scores only in eval mode
        if grad:
            return Sam2VideoModel.forward.__wrapped__(self.net, session, frame_idx=frame)
        return self.net(session, frame_idx=frame)

    def prune(self, session: Any, frame: int) -> None:
        """Bound the session: drop pixels of past frames and outputs older than the memory reaches."""
        keep = max(self.net.config.num_maskmem, self.net.config.max_object_pointers_in_encoder) + 1
        if session.processed_frames:
            for f in [f for f in session.processed_frames if f < frame]:
                del session.processed_frames[f]
        for out in session.output_dict_per_obj.values():
            old = [f for f in out["non_cond_frame_outputs"] if f < frame - keep]
            for f in old:
                del out["non_cond_frame_outputs"][f]
        for tracked in session.frames_tracked_per_obj.values():
            for f in [f for f in tracked if f < frame - keep]:
                del tracked[f]

    def forward(self, pixels: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor):
        """Per item: a prompted frame, then the same frame propagated from memory -> ``(B, 1, L, L)`` logits
        and ``(B, 1)`` object scores of the propagated frame."""
        masks, scores = [], []
        for i in range(pixels.shape[0]):
            s = self.new_session(self.img_size, self.img_size)
            self.add_prompt(s, 0, 1, coords[i], labels[i])
            self.step_frame(s, 0, pixels[i], grad=torch.is_grad_enabled())
            out = self.step_frame(s, 1, pixels[i], grad=torch.is_grad_enabled())
            masks.append(out.pred_masks)
            scores.append(out.object_score_logits.reshape(1, -1))
        return torch.cat(masks), torch.cat(scores)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        s = self.img_size
        corners = torch.tensor([[s * 0.2, s * 0.25], [s * 0.7, s * 0.8]]).expand(batch, 2, 2).clone()
        return torch.randn(batch, 3, s, s), corners, torch.tensor([2.0, 3.0]).expand(batch, 2).clone()


@register_model(
    "sam2-video",
    family="video",
    tiny={"layout": "tiny", "image_size": 64, "pretrained": False},
    description="SAM2 video model via transformers (layouts tiny, hiera-tiny, hiera-small; HF weights from disk)",
)
def sam2_video(
    layout: str = "tiny",
    image_size: int = 256,
    memory: int = 6,
    threshold: float = 0.5,
    hf_dir: str | None = None,
    pretrained: bool = False,
) -> Sam2Video:
    """SAM2 with a layout at ``image_size``; ``hf_dir``: a transformers SAM2-video folder (config + safetensors)."""
    if hf_dir:
        from transformers import Sam2VideoModel

        path = Path(hf_dir)
        if not (path / "config.json").is_file():
            raise ModelError("not a transformers SAM2 folder (no config.json)", path)
        try:
            net = Sam2VideoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load SAM2 weights ({str(e).splitlines()[0]})", path) from None
    else:
        if pretrained:
            raise ModelError(
                "no SAM2 weights are bundled; give hf_dir=FOLDER (transformers format) or pretrained=false"
            )
        net = _build_net(sam2_config(layout, image_size, memory + 1))
    return Sam2Video(net, threshold=threshold, memory=memory)


def _build_net(config: Any) -> Any:
    from transformers import Sam2VideoModel

    return Sam2VideoModel(config)
