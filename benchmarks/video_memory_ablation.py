"""Where the memory head's J&F comes from: the head untrained (= its base LiteMedSAM + previous-mask box, i.e. the
tracker) and a trained checkpoint with its memory attention switched off (its fine-tuned decoder alone).

Writes the two checkpoints into ``--work`` and scores them with ``video_compare.py`` (held-out synthetic videos,
first-frame GT box), rows ``memory untrained`` and ``memory off`` in benchmarks/results/video_compare.{json,md}.
Run: ``flock /tmp/heavy.lock .venv/bin/python benchmarks/video_memory_ablation.py --trained RUN/best
[--encoder-cache FILE]`` (the cache shares LiteMedSAM embeddings with the tracker rows; frames/s then void).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trained", required=True, help="a trained memory-head checkpoint folder")
    ap.add_argument("--work", default="/tmp/15/ablation")
    ap.add_argument("--encoder-cache", default=None)
    args = ap.parse_args()
    import torch

    from scopeseg.inference.sources import load_torch_model
    from scopeseg.models import create_model

    work = Path(args.work)
    untrained, off = work / "untrained", work / "memory_off"
    if not (untrained / "config.json").is_file():
        torch.manual_seed(0)
        create_model("litemedsam-memory").save_pretrained(untrained)
    if not (off / "config.json").is_file():
        m = load_torch_model(args.trained)
        for layer in m.layers:  # the attention's output projection at zero: the embedding passes unchanged
            torch.nn.init.zeros_(layer.out.weight)
            torch.nn.init.zeros_(layer.out.bias)
        m.save_pretrained(off)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "video_compare.py"), "--parts", "synthetic",
           "--models", f"memory untrained={untrained},memory off={off}"]  # fmt: skip
    if args.encoder_cache:
        cmd += ["--encoder-cache", args.encoder_cache]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
