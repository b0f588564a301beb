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


def result(run, name):
    f = WORK / run / "result.json"
    if f.exists():
        r = json.loads(f.read_text())
        keep = {k: v for k, v in r.items() if isinstance(v, (int, float, str)) or k in ("val", "metrics")}
        summary[name]["result"] = keep
        print(json.dumps(keep)[:1500], flush=True)


try:
    import torch

    summary["torch"] = torch.__version__
    summary["cuda"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name(0)
        summary["bf16"] = torch.cuda.is_bf16_supported()
    print(summary, flush=True)
    v, f = ("4", "2") if SMALL else ("48", "2")
    if not (WORK / "train").exists():
        sh(
            "synth_train",
            "synth",
            str(WORK / "train"),
            f"videos={v}",
            f"frames={f}",
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
    ep = "1" if SMALL else "4"
    common = [f"accelerator={ACC}", "overwrite=true"]
    # semantic, precision auto (bf16-mixed on an H200) and fp32
    ONLY = os.environ.get("ONLY", "")
    for prec in () if ONLY else ("auto", "32-true"):
        n = f"unet_{prec}"
        if (
            sh(
                n,
                "train",
                "preset=unet-lite0",
                f"data={WORK / 'train'}",
                f"out={WORK / n}",
                f"epochs={ep}",
                f"precision={prec}",
                "batch_size=8",
                *common,
            )
            == 0
        ):
            result(n, n)
    # resume on the accelerator: one more epoch from the auto run
    n = "unet_resume"
    if (
        not ONLY
        and sh(
            n,
            "train",
            "preset=unet-lite0",
            f"data={WORK / 'train'}",
            f"out={WORK / 'unet_auto'}",
            f"epochs={int(ep) + 1}",
            f"resume={WORK / 'unet_auto'}",
            "batch_size=8",
            *common,
        )
        == 0
    ):
        result("unet_auto", n)
    ONLY or sh(
        "unet_predict",
        "predict",
        str(WORK / "unet_auto" / "best"),
        str(WORK / "held"),
        str(WORK / "unet_pred"),
        "--overwrite",
    )
    # instance: every SiMaskFormer switch (text needs MiniLM, 90 MB, not carried)
    n = "m2f_all"
    if (
        ONLY != "sam2"
        and sh(
            n,
            "train",
            "preset=mask2former-tiny",
            f"data={WORK / 'train'}",
            f"out={WORK / n}",
            f"epochs={ep}",
            "quality_head=true",
            "shared_matching=true",
            "refine=true",
            "box_head=true",
            "max_minutes=3",
            *common,
            timeout=400,
        )
        == 0
    ):
        result(n, n)
    if (
        ONLY != "sam2"
        and sh(
            "m2f_predict",
            "predict",
            str(WORK / n / "best"),
            str(WORK / "held"),
            str(WORK / "m2f_pred"),
            "--overwrite",
        )
        == 0
    ):
        sh(
            "m2f_eval",
            "evaluate",
            str(WORK / "held"),
            str(WORK / "m2f_pred" / "results.json"),
            str(WORK / "m2f_eval"),
            "protocol=coco",
            "--overwrite",
        )
        if (WORK / "m2f_eval" / "metrics.json").exists():
            summary["m2f_eval"]["metrics"] = json.loads((WORK / "m2f_eval" / "metrics.json").read_text())
    n = "m2f_fp32"
    if (
        ONLY != "sam2"
        and sh(
            n,
            "train",
            "preset=mask2former-tiny",
            f"data={WORK / 'train'}",
            f"out={WORK / n}",
            "epochs=1",
            "precision=32-true",
            *common,
        )
        == 0
    ):
        result(n, n)
    # promptable (LiteMedSAM layout, random init: the weights are not carried)
    n = "medsam"
    if (
        not ONLY
        and sh(
            n,
            "train",
            "preset=litemedsam-finetune",
            "pretrained=false",
            f"data={WORK / 'train'}",
            f"out={WORK / n}",
            "epochs=1",
            *common,
        )
        == 0
    ):
        result(n, n)
    # SAM2 video clips from scratch
    n = "sam2"
    if (
        sh(
            n,
            "train",
            "preset=sam2-tiny-video",
            f"data={WORK / 'train'}",
            f"out={WORK / n}",
            "epochs=1",
            "clip_length=2",
            *common,
            timeout=400,
        )
        == 0
    ):
        result(n, n)
finally:
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, default=str)[:4000])
