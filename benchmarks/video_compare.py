"""Video object segmentation side by side: box tracker (real LiteMedSAM), memory head (1b), SAM2 (1a).

Part 1, held-out synthetic scope videos (``scopeseg synth`` with a seed no training run uses), ground-truth
prompts per instrument (first visible frame; kinds box / points / mask): DAVIS-2017 J&F, mean per-frame Dice
and IoU through the metrics engine's ``video`` protocol (``inference.video_objects.evaluate_tracking``).
Part 2, real consecutive laparoscopic frames (``../shared/data/cholecseg8k_clip``, CholecSeg8k, CC BY-NC-SA
4.0): the binary instrument mask as one object, first-frame GT box, Dice per frame.
Part 3 (``--parts speed``): frames/s at 512x512 per path and engine (one process each). RSS after 100 vs 2,000
frames: ``benchmarks/video_rss.py``. Part 4 (``--unet CKPT``): a semantic model per frame, no prompts.

Run (each part through the shared lock on this machine):
``flock /tmp/heavy.lock .venv/bin/python benchmarks/video_compare.py --models tracker=litemedsam,memory=RUN/best``
-> benchmarks/results/video_compare.{json,md} (merged with earlier parts). CPU flags and load average recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL = ROOT.parent / "shared" / "data" / "cholecseg8k_clip"
HELD_OUT_SEED = 777  # training data sets use other seeds (preset default 0)


def cpu_line() -> dict:
    from scopeseg.runtime import cpu_class, cpu_flags, cpu_info

    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma", "sse4")))
    return {
        "cpu": cpu_info().get("model", "?"),
        "class": cpu_class(),
        "flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
        "load_avg": os.getloadavg()[0],
    }


def make_synth(folder: Path, videos: int, frames: int, size: str) -> Path:
    if (folder / "annotations.json").is_file():
        return folder
    subprocess.run(
        [str(ROOT / ".venv/bin/scopeseg"), "-q", "synth", str(folder), f"videos={videos}", f"frames={frames}",
         f"size={size}", f"seed={HELD_OUT_SEED}"],
        check=True,
    )  # fmt: skip
    return folder


#: ``--encoder-cache FILE``: frozen-encoder embeddings keyed by the prepared pixels' SHA-1, shared by every path
ENCODER_CACHE: dict | None = None


class CachedEncoder:
    """An engine whose ``encode`` looks the embedding up by the pixels first (accuracy runs only: the tracker and
    the memory head share LiteMedSAM's frozen encoder, so each frame is encoded once; frames/s are then void)."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, k):
        return getattr(self.engine, k)

    def encode(self, pixels):
        import hashlib

        import torch

        key = hashlib.sha1(np.ascontiguousarray(pixels).tobytes()).hexdigest()
        if key not in ENCODER_CACHE:
            e = self.engine.encode(pixels)
            e = e if isinstance(e, torch.Tensor) else torch.from_numpy(np.asarray(e))
            ENCODER_CACHE[key] = e.float().contiguous()
        return ENCODER_CACHE[key].clone()


def load_propagator(spec: str, engine: str):
    from scopeseg.inference.video_objects import TrackConfig
    from scopeseg.inference.video_objects import load_propagator as load

    prop = load(spec, TrackConfig(engine=engine))
    if ENCODER_CACHE is not None:
        st = prop.stepper
        if hasattr(st, "encoder"):
            st.encoder = CachedEncoder(st.encoder)
        elif hasattr(st, "predictor"):
            st.predictor.engine = CachedEncoder(st.predictor.engine)
    return prop


def synthetic_part(models: dict[str, str], data: Path, kinds: list[str], engine: str, max_frames: int | None):
    from scopeseg.inference.video_objects import evaluate_tracking

    rows = []
    for label, spec in models.items():
        prop = load_propagator(spec, engine)
        for kind in kinds:
            t0 = time.time()
            res = evaluate_tracking(prop, data, mode="first", kind=kind, max_frames=max_frames)
            m = res["metrics"]
            rows.append(
                {
                    "model": label,
                    "source": spec,
                    "prompt": kind,
                    "J&F": m["J&F"],
                    "J": m["J"],
                    "F": m["F"],
                    "mean_frame_dice": m.get("mean_mean_frame_dice"),
                    "mean_frame_iou": m.get("mean_mean_frame_iou"),
                    "frames_per_second": None if ENCODER_CACHE is not None else res["frames_per_second"],
                    "seconds": round(time.time() - t0, 1),
                    "load_avg": os.getloadavg()[0],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def unet_synthetic(unet: str, data: Path, engine: str, max_frames: int | None) -> dict:
    """The semantic model per frame (no prompts, no memory), scored through the same ``video`` protocol.

    A binary instrument model has no object identity: its mask and the ground truth are both taken as one object,
    the union of the instruments, so its J&F is a union J&F (the "mean frame Dice" column, the union's Dice per
    frame, is the one computed alike for every row).
    """
    from scopeseg.data.coco import load_dataset
    from scopeseg.data.video import iter_videos, object_tracks
    from scopeseg.inference.semantic import Predictor
    from scopeseg.inference.video_objects import DatasetFrames, instrument_categories
    from scopeseg.metrics.inputs import Pair
    from scopeseg.metrics.protocols import score_pairs

    pred = Predictor.from_pretrained(unet, engine=engine)
    ds = load_dataset(data)
    cats = instrument_categories(ds)
    pairs, t0, n = [], time.time(), 0
    for vid, ids in iter_videos(ds):
        ids = ids[:max_frames] if max_frames else ids
        tracks = object_tracks(ds, ids, cats)
        name = str(ds.videos.get(vid, {}).get("name", vid))
        frames = DatasetFrames(ds, vid)
        frames.ids = ids
        for t, iid in enumerate(ids):
            gt = np.zeros(ds._image_hw(iid), np.int32)
            for anns in tracks.values():
                if iid in anns:
                    gt[ds.mask(anns[iid])] = 1
            lab = (pred.predict([frames[t]])[0] > 0).astype(np.int32)
            pairs.append(Pair(f"{name}/{t}", gt, lab, video=name, frame=t))
            n += 1
    m = score_pairs("video", pairs).metrics
    sec = time.time() - t0
    return {"model": "unet per frame (union)", "source": unet, "prompt": "none", "J&F": m["J&F"], "J": m["J"],
            "F": m["F"], "mean_frame_dice": m.get("mean_mean_frame_dice"), "mean_frame_iou": m.get("mean_mean_frame_iou"),
            "frames_per_second": round(n / sec, 3), "seconds": round(sec, 1), "load_avg": os.getloadavg()[0]}  # fmt: skip


def unet_real(unet: str, engine: str) -> dict:
    """The semantic model per frame on the real clip: Dice per frame against the binary instrument mask."""
    from scopeseg.inference.semantic import Predictor
    from scopeseg.io import read_image
    from scopeseg.metrics.overlap import dice

    pred = Predictor.from_pretrained(unet, engine=engine)
    images = sorted((REAL / "images").glob("*.png"))
    t0 = time.time()
    d = []
    for p in images:
        gt = read_image(REAL / "masks" / p.name, mode="unchanged") > 0
        d.append(float(dice(pred.predict([read_image(p)])[0] > 0, gt, "one")))
    return {"model": "unet per frame", "source": unet, "frames": len(d), "dice_per_frame": [round(v, 4) for v in d],
            "mean_dice": float(np.mean(d)), "mean_dice_after_first": float(np.mean(d[1:])),
            "seconds": round(time.time() - t0, 1)}  # fmt: skip


def real_part(models: dict[str, str], engine: str):
    from scopeseg.data.video import gt_prompt
    from scopeseg.inference.tracking import Prompt
    from scopeseg.io import read_image
    from scopeseg.metrics.overlap import dice

    images = sorted((REAL / "images").glob("*.png"))
    frames = [read_image(p) for p in images]
    gts = [read_image(REAL / "masks" / p.name, mode="unchanged") > 0 for p in images]
    prompts = {0: {1: Prompt(**gt_prompt(gts[0], "box"))}}
    rows = []
    for label, spec in models.items():
        prop = load_propagator(spec, engine)
        t0 = time.time()
        d = [0.0] * len(frames)
        for t, masks in prop.propagate(frames, prompts, "forward", [1]):
            d[t] = float(dice(masks.get(1, np.zeros_like(gts[t])), gts[t], "one"))
        rows.append(
            {
                "model": label,
                "source": spec,
                "frames": len(frames),
                "dice_per_frame": [round(v, 4) for v in d],
                "mean_dice": float(np.mean(d)),
                "mean_dice_after_first": float(np.mean(d[1:])),
                "seconds": round(time.time() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def speed_worker(spec: str, engine: str, n: int, size: int) -> dict:
    """Frames/s of one path on a synthetic n-frame 512x512 stream, and RSS after it (one process per path)."""
    from scopeseg.inference.tracking import Prompt

    prop = load_propagator(spec, engine)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)

    class Frames:
        def __len__(self):
            return n

        def __getitem__(self, t):
            f = base.copy()
            x = 100 + (t % 50) * 2
            f[150:300, x : x + 120] = 230
            return f

    prompts = {0: {1: Prompt(box=(100, 150, 220, 300))}}
    t0 = time.perf_counter()
    rss_at = {}
    for t, _ in prop.propagate(Frames(), prompts, "forward", [1]):
        if t == 0:
            t0 = time.perf_counter()
        if t + 1 in (100, n):
            rss_at[t + 1] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if t + 1 == 100:
                with open("/proc/self/status") as fh:
                    rss_at["current_100"] = next(
                        int(x.split()[1]) / 1024 for x in fh if x.startswith("VmRSS")
                    )
    with open("/proc/self/status") as fh:
        rss_at[f"current_{n}"] = next(int(x.split()[1]) / 1024 for x in fh if x.startswith("VmRSS"))
    sec = time.perf_counter() - t0
    return {"model": spec, "engine": engine, "frames": n, "fps": (n - 1) / sec, "rss_mb": rss_at}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--models", default="tracker=litemedsam", help="label=model,... (model: name or checkpoint)"
    )
    ap.add_argument("--synth", default=str(ROOT / "runs" / "video_heldout"))
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="256x320")
    ap.add_argument("--kinds", default="box")
    ap.add_argument("--engine", default="torch")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--parts", default="synthetic,real", help="synthetic, real, speed")
    ap.add_argument("--speed-frames", type=int, default=100)
    ap.add_argument("--unet", default=None, help="a semantic checkpoint: adds the per-frame UNet rows")
    ap.add_argument("--name", default="video_compare")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--encoder-cache",
        default=None,
        help="safetensors file of frozen-encoder embeddings (read, extended, written): accuracy parts only",
    )
    args = ap.parse_args()
    global ENCODER_CACHE
    if args.encoder_cache:
        from safetensors.torch import load_file

        ENCODER_CACHE = load_file(args.encoder_cache) if Path(args.encoder_cache).is_file() else {}
    if args.worker:
        print(json.dumps(speed_worker(args.worker, args.engine, args.speed_frames, 512)))
        return
    models = dict(m.split("=", 1) for m in args.models.split(",")) if args.models else {}
    out_json = RESULTS / f"{args.name}.json"
    doc = json.loads(out_json.read_text()) if out_json.is_file() else {}
    doc.setdefault("runs", []).append({"cpu": cpu_line(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    parts = args.parts.split(",")
    if "synthetic" in parts:
        data = make_synth(Path(args.synth), args.videos, args.frames, args.size)
        rows = synthetic_part(models, data, args.kinds.split(","), args.engine, args.max_frames)
        if args.unet:
            rows.append(unet_synthetic(args.unet, data, args.engine.split("+")[0], args.max_frames))
            print(json.dumps(rows[-1]), flush=True)
        doc.setdefault("synthetic", {}).update({f"{r['model']}/{r['prompt']}": r for r in rows})
        doc["synthetic_data"] = {
            "videos": args.videos,
            "frames": args.frames,
            "size": args.size,
            "seed": HELD_OUT_SEED,
        }
    if "real" in parts and REAL.is_dir():
        rows = real_part(models, args.engine)
        if args.unet:
            rows.append(unet_real(args.unet, args.engine.split("+")[0]))
            print(json.dumps(rows[-1]), flush=True)
        doc.setdefault("real", {}).update({r["model"]: r for r in rows})
    if "speed" in parts:
        for label, spec in models.items():
            for engine in args.engine.split("+"):
                cmd = [sys.executable, __file__, "--worker", spec, "--engine", engine,
                       "--speed-frames", str(args.speed_frames)]  # fmt: skip
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    print(f"{label}/{engine}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                row = json.loads(res.stdout.strip().splitlines()[-1])
                row["load_avg"] = os.getloadavg()[0]
                print(json.dumps(row), flush=True)
                doc.setdefault("speed", {})[f"{label}/{engine}/{args.speed_frames}"] = row
                save(doc, out_json)  # each row as it comes: a timeout keeps what ran
    if ENCODER_CACHE:
        from safetensors.torch import save_file

        save_file(ENCODER_CACHE, args.encoder_cache)
        doc["runs"][-1]["encoder_cache"] = (
            "embeddings shared across paths: frames/s of this run's accuracy parts are void"
        )
    save(doc, out_json)
    print(f"-> {out_json}")


def save(doc: dict, out_json: Path) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=2))
    write_markdown(doc, out_json.with_suffix(".md"))


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def write_markdown(doc: dict, path: Path) -> None:
    lines = ["# Video object segmentation: tracker vs memory head vs SAM2", ""]
    cpu = doc["runs"][-1]["cpu"]
    lines.append(f"CPU: {cpu['cpu']} ({cpu['class']}; {' '.join(cpu['flags'])}), {cpu['cores']} cores")
    if doc.get("synthetic"):
        s = doc.get("synthetic_data", {})
        lines += ["", f"## Held-out synthetic videos ({s.get('videos')} x {s.get('frames')} frames, {s.get('size')}, "
                  f"seed {s.get('seed')}), GT prompt on each instrument's first visible frame", "",
                  "| model | prompt | J&F | J | F | mean frame Dice | frames/s | load |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in doc["synthetic"].values():
            lines.append(
                f"| {r['model']} | {r['prompt']} | {r['J&F']:.3f} | {r['J']:.3f} | {r['F']:.3f} | "
                f"{r['mean_frame_dice']:.3f} | {_num(r['frames_per_second'])} | {r['load_avg']:.1f} |"
            )
    if doc.get("real"):
        lines += ["", "## CholecSeg8k clip (12 consecutive real frames, first-frame GT box, instrument mask)", "",
                  "| model | mean Dice | mean Dice frames 1.. | Dice per frame |", "|---|---|---|---|"]  # fmt: skip
        for r in doc["real"].values():
            lines.append(
                f"| {r['model']} | {r['mean_dice']:.3f} | {r['mean_dice_after_first']:.3f} | "
                f"{', '.join(f'{v:.2f}' for v in r['dice_per_frame'])} |"
            )
    if doc.get("rss"):
        lines += ["", "## Peak RSS of whole `scopeseg track` runs, 512x512 video, tiny models (code path only)", "",
                  "| path | frames | peak RSS MB | seconds |", "|---|---|---|---|"]  # fmt: skip
        for r in doc["rss"]:
            lines.append(f"| {r['model']} | {r['frames']} | {r['peak_rss_mb']} | {r['seconds']} |")
    if doc.get("speed"):
        lines += ["", "## Speed at 512x512 and memory", "", "| path | engine | frames | frames/s | RSS MB |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in doc["speed"].values():
            lines.append(f"| {r['model']} | {r['engine']} | {r['frames']} | {r['fps']:.2f} | {r['rss_mb']} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
