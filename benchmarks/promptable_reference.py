"""Time the ORIGINAL LiteMedSAM pipeline (CVPR24_LiteMedSAM_infer.py) or MobileSAM's ``SamPredictor`` in
its own venv; prints JSON.

Run by benchmarks/promptable.py with the reference interpreter (torch + timm + the upstream code), never
imported by scopeseg. The pipeline code is the faithful reproduction in tests/promptable/golden/make_golden.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="litemedsam", choices=["litemedsam", "mobilesam"])
    ap.add_argument("--litemedsam-src")
    ap.add_argument("--litemedsam-ckpt")
    ap.add_argument("--mobilesam-src")
    ap.add_argument("--mobilesam-ckpt")
    ap.add_argument("--image", required=True)
    ap.add_argument("--box", required=True, help="x0,y0,x1,y1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "promptable" / "golden"))
    from make_golden import litemedsam_reference, mobilesam_reference

    box = np.array([[int(float(v)) for v in args.box.split(",")]])
    if args.model == "litemedsam":
        infer_2d, _ = litemedsam_reference(args.litemedsam_src, args.litemedsam_ckpt)
    else:
        predictor = mobilesam_reference(args.mobilesam_src, args.mobilesam_ckpt)

        def infer_2d(img, boxes):  # SamPredictor: embed once, then one predict call per box
            predictor.set_image(img)
            with torch.inference_mode():
                return [predictor.predict(box=b, multimask_output=False)[0] for b in boxes]

    def read():
        return cv2.cvtColor(cv2.imread(args.image), cv2.COLOR_BGR2RGB)

    infer_2d(read(), box)  # warm-up
    e2e = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        infer_2d(read(), box)
        e2e.append(time.perf_counter() - t0)
    # decoder-only time per box on a cached embedding (upstream decodes boxes one by one)
    many = np.repeat(box, 8, axis=0)
    t0 = time.perf_counter()
    infer_2d(read(), many)
    t8 = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "e2e_s": statistics.median(e2e),
                "e2e_runs": e2e,
                "decoder_per_box_s": max(0.0, (t8 - statistics.median(e2e)) / 7),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
