"""Few-shot recipe: synthetic pre-training + fine-tuning on N real labelled frames, scored on held-out sources.

Laparoscopy (leave-one-source-out over the 17 real frames of ``sim_to_real.SOURCES``): for each held-out
source, fine-tune the synthetic pre-trained checkpoint (``--init``) with preset ``unet-lite0-fewshot`` on N
frames of the *other* sources (N = 0: no fine-tuning; 5; all of them, which is 5, 14 or 15 frames since the
held-out source's frames are never used) and score every frame of the held-out source. The same fine-tuning
from the ImageNet encoder alone (no synthetic pre-training) at N = all is the reference.
Other source (``--parts other``): fine-tuned on N of all 17 laparoscopic frames (N = 17 included), scored on
EndoVis 2017's one labelled frame (robotic da Vinci instruments, another source; the issue's "17 real frames ->
held-out frames of other sources" read literally).
Polyps: synthetic polyp pre-training (``--polyp-init``, or trained here with the ablation's budget), then
fine-tuning on N of the 38 Kvasir-SEG / EndoTect frames, scored on CVC-ClinicDB (another hospital).
Every fine-tuning run has the same number of optimizer steps (``--steps``); the last model is kept (no
selection on the test frames). Runs are cached in the work folder. Results:
``benchmarks/results/sim_to_real_fewshot.{json,md}``.
Run: ``.venv/bin/python benchmarks/sim_to_real_fewshot.py --init RUN/best [--parts lap,other,polyp]``.
Skips (exit 0) without the shared data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_polyp_pretrained import DATA, RESULTS, convert_sources, evaluate_checkpoint, machine  # noqa: E402
from sim_to_real import SOURCES  # noqa: E402
from sim_to_real_ablation import cpu_flags, synth_data  # noqa: E402

POLYP_TRAIN = ("kvasir_seg", "kvasir_seg_256", "endotect2020_polyp_unclear")
POLYP_TEST = "cvc_clinicdb_unclear"


def subset_json(
    parts: list[Path],
    n: int | None,
    seed: int,
    out_json: Path,
    mix: tuple[Path, int, int] | None = None,
    balance: bool = False,
) -> tuple[Path, int]:
    """Merge canonical data sets and keep ``n`` images drawn with ``seed`` (all when ``n`` is None).

    ``balance`` (all images only): each source repeated to about the largest one's number of frames, so 12
    near-identical frames of one clip do not outweigh 2 frames of another source.
    ``mix`` = (synthetic data set, K, R): the kept real frames repeated R times plus K synthetic frames
    (evenly spaced, instrument annotations only: a polyp is background for a binary tool model).
    Returns the JSON and the number of real frames.
    """
    from scopeseg.data import ops
    from scopeseg.data.coco import CocoDataset, load_dataset

    sets = [load_dataset(p) for p in parts]
    distinct = sum(len(d.images) for d in sets)
    if balance and n is None:
        most = max(len(d.images) for d in sets)
        sets = [d for d in sets for _ in range(max(1, round(most / max(len(d.images), 1))))]
    merged = CocoDataset.merge(sets, root=out_json.parent)
    ids = sorted(merged.images)
    if n is not None and n < len(ids):
        ids = sorted(random.Random(seed).sample(ids, n))
    sub = ops.subset(merged, ids)
    if mix is not None:
        syn_path, k, repeat = mix
        syn = load_dataset(syn_path)
        keep = {c for c, cat in syn.categories.items() if cat.get("supercategory") == "instrument"}
        sids = sorted(syn.images)
        sids = [sids[round(i * (len(sids) - 1) / max(k - 1, 1))] for i in range(min(k, len(sids)))]
        syn = ops.subset(syn, sorted(set(sids)))
        syn.annotations = {a: r for a, r in syn.annotations.items() if r["category_id"] in keep}
        syn.reindex()
        sub = CocoDataset.merge([sub] * repeat + [syn], root=out_json.parent)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    sub.save(out_json)
    return out_json, min(len(ids), distinct)


def finetune(
    args, name: str, init: str | None, train_json: Path, n: int, test: Path
) -> dict[str, Any] | None:
    """Fine-tune (preset ``unet-lite0-fewshot``) for ``args.steps`` steps and score on ``test``; cached."""
    from scopeseg.config import build_config
    from scopeseg.io import write_json
    from scopeseg.train import train

    run_dir = args.work / "runs" / name
    cached = run_dir.parent / f"{name}.json"
    budget = {"steps": args.steps, "init": init, "n": n, "lr": args.lr, "train_size": args.train_size}
    if args.mix:
        budget["mix"] = [str(args.mix[0]), args.mix[1], args.mix[2]]
    if args.balance:
        budget["balance"] = True
    if args.augment:
        budget["augment"] = args.augment
    if args.set:
        budget["set"] = list(args.set)
    images = len(json.loads(train_json.read_text())["images"])  # repeats and synthetic frames included
    if cached.is_file() and json.loads(cached.read_text()).get("budget") == budget:
        return json.loads(cached.read_text())
    if args.cached_only:
        return None
    shutil.rmtree(run_dir, ignore_errors=True)
    bs = 4
    epochs = max(1, math.ceil(args.steps / max(1, images // bs)))
    overrides = [
        f"data={train_json}",
        f"val_data={train_json}",  # validation only at the last epoch, on the training frames: no selection
        f"out={run_dir}",
        f"epochs={epochs}",
        f"val_every={epochs}",
        f"batch_size={min(bs, images)}",
        "report=false",
        "accelerator=cpu",
        "seed=0",
    ]
    if init:
        overrides.append(f"init={init}")
    if args.lr is not None:
        overrides.append(f"lr={args.lr}")
    if args.train_size is not None:
        overrides.append(f"train_size={json.dumps(args.train_size)}")
    if args.augment is not None:
        overrides.append(f"augment={args.augment}")
    overrides += args.set
    cfg = build_config(preset="unet-lite0-fewshot", overrides=overrides, task="semantic")
    t0 = time.time()
    res = train(cfg)
    ev = evaluate_checkpoint(res["best"], test)
    rec = {
        "name": name,
        "budget": budget,
        "epochs": epochs,
        "lr": cfg.lr,
        "train_size": list(cfg.train_size),
        "augment": cfg.augment,
        "train_seconds": round(time.time() - t0, 1),
        "loadavg_1": round(os.getloadavg()[0], 2),
        "dice": ev["summary"]["dice_mean_per_image"],
        "per_image": ev["per_image"],
    }
    write_json(cached, rec, indent=2)
    return rec


def zero_shot(args, name: str, init: str, test: Path) -> dict[str, Any]:
    ev = evaluate_checkpoint(init, test)
    return {"name": name, "budget": {"n": 0, "init": init}, "dice": ev["summary"]["dice_mean_per_image"],
            "per_image": ev["per_image"]}  # fmt: skip


def lap(args, real: dict[str, Path]) -> list[dict[str, Any]]:
    rows = []
    for held in SOURCES:
        others = [real[s] for s in SOURCES if s != held]
        rows.append(
            {
                "part": "lap",
                "held_out": held,
                "init": "synthetic",
                **zero_shot(args, f"lap-{held}-n0", args.init, real[held]),
            }
        )
        done = set()
        for n in [*args.shots, None]:
            tj, k = subset_json(
                others, n, 0, args.work / f"set-lap-{held}-n{n or 'all'}.json", args.mix, args.balance
            )
            if k in done:
                continue  # the pool has no more than k frames: already run
            done.add(k)
            rec = finetune(args, f"lap-{held}-n{k}-syn", args.init, tj, k, real[held])
            rows.append({"part": "lap", "held_out": held, "init": "synthetic", **(rec or {})})
    for held in SOURCES if args.reference else ():  # the ImageNet-only reference last
        others = [real[s] for s in SOURCES if s != held]
        tj, k = subset_json(others, None, 0, args.work / f"set-lap-{held}-all.json", args.mix, args.balance)
        rows.append({"part": "lap", "held_out": held, "init": "imagenet",
                     **(finetune(args, f"lap-{held}-n{k}-imagenet", None, tj, k, real[held]) or {})})  # fmt: skip
    return rows


def endovis_set(data: Path, dst: Path) -> Path | None:
    """EndoVis 2017's one labelled frame (robotic, da Vinci; another source than the 17 laparoscopic frames) as a
    binary instrument data set: the union of its two instrument masks (``masks/frame.png`` > 0), image copied."""
    import numpy as np
    from PIL import Image

    from scopeseg.data.coco import CocoDataset

    src = data / "endovis17_unclear"
    if not (src / "masks" / "frame.png").is_file():
        return None
    out = dst / "endovis17_unclear"
    if not (out / "annotations.json").is_file():
        (out / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "images" / "frame.png", out / "images" / "frame.png")
        mask = np.array(Image.open(src / "masks" / "frame.png")) > 0
        ds = CocoDataset(root=out)
        ds.add_category("instrument", id=1)
        iid = ds.add_image("images/frame.png", mask.shape[0], mask.shape[1])
        ds.add_annotation(iid, 1, mask)
        ds.save(out / "annotations.json")
    return out


def other(args, real: dict[str, Path], test: Path) -> list[dict[str, Any]]:
    """Fine-tuned on N of the 17 laparoscopic frames (all three sources), scored on another source (EndoVis 2017)."""
    held = test.name
    rows = [
        {
            "part": "other",
            "held_out": held,
            "init": "synthetic",
            **zero_shot(args, "other-n0", args.init, test),
        }
    ]
    lap_sets = [real[s] for s in SOURCES]
    for n in [*args.shots, None]:
        tj, k = subset_json(
            lap_sets, n, 0, args.work / f"set-other-n{n or 'all'}.json", args.mix, args.balance
        )
        rec = finetune(args, f"other-n{k}-syn", args.init, tj, k, test)
        rows.append({"part": "other", "held_out": held, "init": "synthetic", **(rec or {})})
    if args.reference:
        tj, k = subset_json(lap_sets, None, 0, args.work / "set-other-nall.json", args.mix, args.balance)
        rec = finetune(args, f"other-n{k}-imagenet", None, tj, k, test)
        rows.append({"part": "other", "held_out": held, "init": "imagenet", **(rec or {})})
    return rows


def polyp_init(args) -> str:
    """The synthetic polyp pre-trained checkpoint: ``--polyp-init`` or trained here (ablation budget)."""
    if args.polyp_init:
        return str(args.polyp_init)
    from scopeseg.config import build_config
    from scopeseg.train import train

    best = args.work / "runs" / "polyp-synthetic" / "best"
    if (best / "config.json").is_file():
        return str(best)
    data = synth_data(args.work, {"polyp_prob": 1.0}, 0, 6, 40)
    cfg = build_config(
        preset="unet-lite0",
        overrides=[f"data={data}", f"out={best.parent}", "overwrite=true", "mode=binary", "categories=[polyp]",
                   "val_fraction=0.17", f"epochs={args.polyp_epochs}", "val_every=1", f"max_minutes={args.polyp_minutes}",
                   "train_size=[192,288]", f"augment={args.polyp_augment}",
                   "report=false", "accelerator=cpu", "seed=0"],
        task="semantic",
    )  # fmt: skip
    return str(train(cfg)["best"])


def polyp(args, real: dict[str, Path]) -> list[dict[str, Any]]:
    if args.cached_only and not (
        args.polyp_init or (args.work / "runs" / "polyp-synthetic" / "best").is_dir()
    ):
        return []
    init = polyp_init(args)
    parts = [real[s] for s in POLYP_TRAIN]
    test = real[POLYP_TEST]
    rows = [
        {
            "part": "polyp",
            "held_out": POLYP_TEST,
            "init": "synthetic",
            **zero_shot(args, "polyp-n0", init, test),
        }
    ]
    for n in [*args.polyp_shots, None]:
        tj, k = subset_json(parts, n, 0, args.work / f"set-polyp-n{n or 'all'}.json")
        rows.append({"part": "polyp", "held_out": POLYP_TEST, "init": "synthetic",
                     **(finetune(args, f"polyp-n{k}-syn", init, tj, k, test) or {})})  # fmt: skip
    rows.append({"part": "polyp", "held_out": POLYP_TEST, "init": "imagenet",
                 **(finetune(args, f"polyp-n{k}-imagenet", None, tj, k, test) or {})})  # fmt: skip
    return rows


def markdown(out: dict[str, Any]) -> str:
    trained = [r for r in out["rows"] if "lr" in r]
    lr = f"{trained[0]['lr']:g}" if trained else "(preset)"
    size = "x".join(map(str, trained[0]["train_size"])) if trained else "(preset size)"
    aug = trained[0].get("augment", "real") if trained else "real"
    lines = [
        "# Few-shot: synthetic pre-training + fine-tuning on N real frames",
        "",
        f"Fine-tuning: preset `unet-lite0-fewshot` ({out['steps']} steps, batch 4, {size}, lr {lr} cosine, "
        f"augment {aug}), last model kept; Dice = mean per frame of the held-out source at its own size. "
        "Laparoscopy: leave-one-source-out (the held-out source's frames are never trained on). "
        "Polyps: train Kvasir-SEG + EndoTect, test CVC-ClinicDB.",
    ]
    if out.get("balance"):
        lines.append(
            "Laparoscopy sets source-balanced: each source's frames repeated to the largest source's count."
        )
    if out.get("set"):
        lines.append("More fine-tuning settings: " + ", ".join(f"`{kv}`" for kv in out["set"]) + ".")
    if out.get("mix"):
        syn, k, r = out["mix"]
        lines.append(
            f"Laparoscopy sets mixed with synthetic frames: the real frames x{r} plus {k} synthetic frames "
            f"(`{syn}`, instruments only) per fine-tuning set."
        )
    lines += [
        "",
        "| part | held-out source | init | N real frames | Dice | train s |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['part']} | {r['held_out']} | {r['init']} | {r['budget']['n']} | {r['dice']:.3f} "
            f"| {r.get('train_seconds', '-')} |"
        )
    lap = {}
    for r in out["rows"]:
        if r["part"] == "lap" and r["init"] == "synthetic":
            lap.setdefault(r["held_out"], {})[r["budget"]["n"]] = r
    if lap:
        best = []
        for by_n in lap.values():
            rr = by_n[max(by_n)]
            best += [x["dice"] for x in rr["per_image"]]
        lines += ["", f"Lap, synthetic init, most real frames per held-out source: mean Dice over the {len(best)} frames "
                  f"{sum(best) / len(best):.3f} (goal 0.88)."]  # fmt: skip
    other = [r for r in out["rows"] if r["part"] == "other" and r["init"] == "synthetic"]
    if other:
        rr = max(other, key=lambda r: r["budget"]["n"])
        lines += ["", f"Other source ({rr['held_out']}, {len(rr['per_image'])} frame(s)), synthetic init, "
                  f"{rr['budget']['n']} real frames: Dice {rr['dice']:.3f} (goal 0.88)."]  # fmt: skip
    pp = out.get("polyp_pretraining")
    if pp:
        lines += [
            "",
            f"Polyp synthetic pre-training: unet-lite0 (ImageNet encoder) on 6 synthetic videos x 40 frames with "
            f"polyp_prob 1.0, {pp['epochs']} epochs (cap {pp['max_minutes']:g} min), 192x288, batch 8, lr 2e-3, "
            f"augment {pp['augment']}, best checkpoint on a synthetic validation video.",
        ]
    m = out["machine"]
    lines += [
        f"Machine: {m['cpu_count']} CPU cores shared with other jobs, flags {m['cpu_flags']}, "
        f"{m['torch_threads']} torch threads; load at the end {m['loadavg_1_5_15']}.",
        "",
        f"Command: `{out['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", type=Path, help="synthetic pre-trained instrument checkpoint (lap part)")
    ap.add_argument(
        "--polyp-init", type=Path, help="synthetic pre-trained polyp checkpoint (else trained here)"
    )
    ap.add_argument("--polyp-minutes", type=float, default=6.5, help="synthetic polyp pre-training time cap")
    ap.add_argument(
        "--polyp-epochs", type=int, default=4, help="synthetic polyp pre-training epochs (cosine)"
    )
    ap.add_argument("--polyp-augment", default="default", help="synthetic polyp pre-training augmentation")
    ap.add_argument(
        "--parts",
        default="lap,polyp",
        help="lap (leave-one-source-out), other (17 frames -> EndoVis 2017), polyp",
    )
    ap.add_argument("--shots", default="5", help="N values besides 0 and 'all' (laparoscopy)")
    ap.add_argument("--polyp-shots", default="", help="N values besides 0 and 'all' (polyps)")
    ap.add_argument(
        "--steps", type=int, default=200, help="optimizer steps per fine-tuning (the preset at 17 frames)"
    )
    ap.add_argument("--lr", type=float, help="fine-tuning lr (default: the preset's)")
    ap.add_argument("--augment", help="fine-tuning augmentation level (default: the preset's, real)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more fine-tuning overrides (repeatable)",
    )
    ap.add_argument("--train-size", help="fine-tuning H,W (default: the preset's), e.g. 192,288")
    ap.add_argument(
        "--mix",
        help="SYNTHETIC_SET,K,R: lap fine-tuning sets hold the real frames R times plus K synthetic frames",
    )
    ap.add_argument(
        "--balance",
        action="store_true",
        help="lap: repeat each source's frames to the largest source's count",
    )
    ap.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="skip the ImageNet-only fine-tuning runs",
    )
    ap.add_argument("--cached-only", action="store_true", help="report the finished runs, train nothing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/18/fewshot"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="suffix of the results file names (e.g. _40steps)")
    args = ap.parse_args()
    args.shots = [int(x) for x in args.shots.split(",") if x]
    args.train_size = [int(x) for x in args.train_size.split(",")] if args.train_size else None
    args.polyp_shots = [int(x) for x in args.polyp_shots.split(",") if x]
    if args.mix:
        path, k, r = args.mix.split(",")
        args.mix = (Path(path), int(k), int(r))
    parts = [p for p in args.parts.split(",") if p]
    if {"lap", "other"} & set(parts) and not (args.init and (args.init / "config.json").is_file()):
        ap.error("--init must be a synthetic pre-trained checkpoint folder (lap and other parts)")
    names = (SOURCES if {"lap", "other"} & set(parts) else ()) + (
        (*POLYP_TRAIN, POLYP_TEST) if "polyp" in parts else ()
    )
    missing = [s for s in names if not (args.data / s / "images").is_dir()]
    if missing:
        print(f"skipped: shared data not found under {args.data} (missing {', '.join(missing)})")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from scopeseg import progress
    from scopeseg.io import write_json, write_text

    progress.set_enabled(False)
    torch.set_num_threads(args.threads)
    args.init = str(args.init) if args.init else None
    real = convert_sources(args.data, names, args.work / "real")
    rows = lap(args, real) if "lap" in parts else []
    if "other" in parts:
        endovis = endovis_set(args.data, args.work / "real")
        rows += other(args, real, endovis) if endovis else []
    rows += polyp(args, real) if "polyp" in parts else []
    rows = [r for r in rows if "dice" in r]  # --cached-only leaves unfinished runs out
    out = {
        "benchmark": "sim_to_real_fewshot",
        "steps": args.steps,
        "mix": [str(args.mix[0]), args.mix[1], args.mix[2]] if args.mix else None,
        "balance": args.balance,
        "set": args.set,
        "rows": rows,
        "polyp_pretraining": (
            {"epochs": args.polyp_epochs, "augment": args.polyp_augment, "max_minutes": args.polyp_minutes}
            if "polyp" in parts and not args.polyp_init
            else None
        ),
        "machine": {**machine(), "cpu_flags": cpu_flags()},
        "command": "python benchmarks/sim_to_real_fewshot.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "sim_to_real_fewshot" + ("" if len(parts) == 2 else f"_{parts[0]}") + args.tag
    write_json(args.out / f"{name}.json", out, indent=2)
    write_text(args.out / f"{name}.md", markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
