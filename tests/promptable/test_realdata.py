"""LiteMedSAM with ground-truth boxes on real Kvasir-SEG images (CC BY 4.0, ../shared/data; skipped if absent)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.weights, pytest.mark.realdata]


def test_litemedsam_box_prompts_on_kvasir(require_weights, shared_data):
    require_weights("litemedsam")
    folder = shared_data / "kvasir_seg_256"
    if not folder.is_dir():
        pytest.skip("../shared/data/kvasir_seg_256 not present")
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.metrics.medsam import medsam_cvpr24

    p = PromptPredictor.from_pretrained("litemedsam")
    scores = []
    for img_path in sorted((folder / "images").glob("*.jpg"))[:3]:
        gt = read_image(folder / "masks" / f"{img_path.stem}.png")[..., 0] > 127
        ys, xs = np.nonzero(gt)
        p.set_image(read_image(img_path))
        mask = p.predict(boxes=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).masks[0]
        scores.append(medsam_cvpr24(mask.astype(np.uint8), gt.astype(np.uint8)))
    # measured 0.93-0.99 DSC on these images (benchmarks/results/promptable_accuracy.md: mean 0.964 on 15)
    assert min(s["dsc"] for s in scores) > 0.9 and min(s["nsd"] for s in scores) > 0.9, scores


def test_litemedsam_scope_zooms_and_beats_the_original_on_endoscapes(require_weights, shared_data):
    """litemedsam-scope's default box zoom + flip on the Endoscapes frames (its training set: a known-output check)
    against the original LiteMedSAM on whole frames (0.78 there, benchmarks/results/promptable_finetune_loso.md)."""
    require_weights("litemedsam-scope")
    folder = shared_data / "endoscapes2023_vid04_unclear"
    if not folder.is_dir():
        pytest.skip("../shared/data/endoscapes2023_vid04_unclear not present")
    from scopeseg.inference.medsam_io import segment_2d
    from scopeseg.inference.prompt import PromptPredictor
    from scopeseg.io import read_image
    from scopeseg.metrics.medsam import medsam_cvpr24
    from scopeseg.models.sam.recipes import Zoom

    scope, orig = (
        PromptPredictor.from_pretrained("litemedsam-scope"),
        PromptPredictor.from_pretrained("litemedsam"),
    )
    assert scope.zoom == Zoom(0.5, 160, flip=True) and orig.zoom is None
    dsc = {"scope": [], "orig": []}
    for img_path in sorted((folder / "images").glob("*.jpg")):
        labels = read_image(folder / "masks_instance" / f"{img_path.stem}.png")
        labels = (labels[..., 0] if labels.ndim == 3 else labels).astype(np.int32)
        boxes = []
        for k in range(1, int(labels.max()) + 1):
            ys, xs = np.nonzero(labels == k)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        image = read_image(img_path)
        for name, p in (("scope", scope), ("orig", orig)):
            dsc[name].append(medsam_cvpr24(segment_2d(p, image, np.array(boxes, float)), labels)["dsc"])
    # measured: scope 0.97 (zoom alone 0.968), original 0.78
    assert np.mean(dsc["scope"]) > 0.93 and np.mean(dsc["orig"]) < 0.85, dsc
