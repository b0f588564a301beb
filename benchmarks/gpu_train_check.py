"""Every training path on an accelerator: UNet (bf16-mixed and fp32, resume), Mask2Former with every
SiMaskFormer switch (bf16-mixed and fp32) then predict + COCO scoring, LiteMedSAM fine-tuning, SAM2 clips.

A smoke check for a GPU machine, not a benchmark of accuracy: each step must exit 0 and report finite
validation numbers. Text conditioning is left out (MiniLM is 90 MB; the device tool carries 64 MB).
Run: ``WORK=/tmp/gw python benchmarks/gpu_train_check.py`` (``ACC=cpu SMALL=1`` for a CPU dry run; WORK may
hold train/ and held/ made beforehand by ``scopeseg synth``, else they are synthesised there).
Writes ``$OUT/summary.json`` (OUT defaults to /tmp/gpuout); results of 2026-12-04 on an H200:
benchmarks/results/gpu_train_check.md.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ACC = os.environ.get("ACC", "gpu")
OUT = Path(os.environ.get("OUT", "/tmp/gpuout"))
WORK = Path(os.environ.get("WORK", "/tmp/gpuwork"))
SMALL = os.environ.get("SMALL") == "1"
OUT.mkdir(parents=True, exist_ok=True)
WORK.mkdir(parents=True, exist_ok=True)
summary: dict = {"acc": ACC}


def sh(name, *args, timeout=240):
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "scopeseg", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        summary[name] = {"rc": "timeout", "s": timeout}
        print(f"== {name}: timeout", flush=True)
        return -1
    dt = time.perf_counter() - t
    tail = (p.stdout + p.stderr)[-1500:]
    print(f"== {name}: rc={p.returncode} {dt:.1f}s\n{tail}", flush=True)
    summary[name] = {"rc": p.returncode, "s": round(dt, 1)}
    return p.returncode


def train(name: str, *keys: str, out: str | None = None, timeout: int = 240) -> bool:
    """``scopeseg train`` on the accelerator into WORK/<out or name>; its result.json into the summary."""
    run = WORK / (out or name)
    data = f"data={WORK / 'train'}"
    rc = sh(name, "train", *keys, data, f"out={run}", f"accelerator={ACC}", "overwrite=true", timeout=timeout)
    f = run / "result.json"
    if rc == 0 and f.exists():
        r = json.loads(f.read_text())
        keep = {k: v for k, v in r.items() if isinstance(v, (int, float, str)) or k in ("val", "metrics")}
        summary[name]["result"] = keep
        print(json.dumps(keep)[:1500], flush=True)
    return rc == 0


def main() -> None:
    import torch

    summary.update(torch=torch.__version__, cuda=torch.cuda.is_available())
    if torch.cuda.is_available():
        summary.update(gpu=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported())
    print(summary, flush=True)
    if not (WORK / "train").exists():
        n = "4" if SMALL else "48"
        sh(
            "synth_train",
            "synth",
            str(WORK / "train"),
            f"videos={n}",
            "frames=2",
            "size=240x368",
            "seed=11",
            "polyp_prob=0",
        )
        sh(
            "synth_held",
            "synth",
            str(WORK / "held"),
            "videos=4",
            "frames=2",
            "size=240x368",
            "seed=2",
            "polyp_prob=0",
        )
    ep = 1 if SMALL else 4
    only = os.environ.get("ONLY", "")  # "sam2": that step alone (a rerun after a fix)
    if not only:
        # semantic: precision auto (bf16-mixed on a bf16 GPU) and fp32, then resume one more epoch on the device
        for prec in ("auto", "32-true"):
            train(f"unet_{prec}", "preset=unet-lite0", f"epochs={ep}", f"precision={prec}", "batch_size=8")
        train(
            "unet_resume",
            "preset=unet-lite0",
            f"epochs={ep + 1}",
            f"resume={WORK / 'unet_auto'}",
            "batch_size=8",
            out="unet_auto",
        )
        sh(
            "unet_predict",
            "predict",
            str(WORK / "unet_auto" / "best"),
            str(WORK / "held"),
            str(WORK / "unet_pred"),
            "--overwrite",
        )
        # instance, every SiMaskFormer switch (text needs MiniLM, 90 MB, not carried), then predict + COCO AP
        switches = ("quality_head=true", "shared_matching=true", "refine=true", "box_head=true")
        pred, ev = WORK / "m2f_pred", WORK / "m2f_eval"
        if train(
            "m2f_all", "preset=mask2former-tiny", f"epochs={ep}", *switches, "max_minutes=3", timeout=400
        ) and (
            sh(
                "m2f_predict",
                "predict",
                str(WORK / "m2f_all" / "best"),
                str(WORK / "held"),
                str(pred),
                "--overwrite",
            )
            == 0
        ):
            sh(
                "m2f_eval",
                "evaluate",
                str(WORK / "held"),
                str(pred / "results.json"),
                str(ev),
                "protocol=coco",
                "--overwrite",
            )
            if (ev / "metrics.json").exists():
                summary["m2f_eval"]["metrics"] = json.loads((ev / "metrics.json").read_text())
        train("m2f_fp32", "preset=mask2former-tiny", "epochs=1", "precision=32-true")
        # promptable (LiteMedSAM layout, random init: the weights are not carried)
        train("medsam", "preset=litemedsam-finetune", "pretrained=false", "epochs=1")
    # SAM2 video clips from scratch
    train("sam2", "preset=sam2-tiny-video", "epochs=1", "clip_length=2", timeout=400)


if __name__ == "__main__":
    try:
        main()
    finally:
        (OUT / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(json.dumps(summary, default=str)[:4000])
