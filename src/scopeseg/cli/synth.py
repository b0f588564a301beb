"""``scopeseg synth`` (synthetic scope videos) and ``scopeseg preview`` (masks overlaid on frames/videos)."""

from __future__ import annotations

from collections import Counter

from ..config import parse_fractions
from ..errors import ConfigError
from . import arg, command


def parse_splits(text: str | None) -> dict[str, float] | None:
    """``--splits train=0.75,val=0.25`` -> ``{"train": 0.75, "val": 0.25}`` (None when not given)."""
    return parse_fractions(text, "--splits") if text else None


@arg("out", help="output folder (created; an earlier synthetic data set there is replaced)")
@arg("--videos", type=int, default=8, help="number of videos (default 8)")
@arg("--frames", type=int, default=60, help="frames per video (default 60)")
@arg("--size", default="480x736", help="frame size HEIGHTxWIDTH (default 480x736)")
@arg("--seed", type=int, default=0, help="data set seed; video k is the same whatever --videos is")
@arg(
    "--difficulty",
    type=float,
    default=0.5,
    help="0..1: blur, smoke, lighting and glare strength (default 0.5)",
)
@arg("--format", dest="image_format", choices=["jpg", "png"], default="jpg", help="frame image format")
@arg("--no-polyps", action="store_true", help="no polyp blobs")
@arg("--splits", default=None, help="assign splits by video, e.g. train=0.75,val=0.25")
@command("synth", help="generate synthetic endoscopy videos with exact instance masks (COCO-video + mp4)")
def _synth(args) -> int:
    from ..config import validate_config
    from ..data.synthetic import SynthConfig, generate

    data = {
        "videos": args.videos,
        "frames": args.frames,
        "size": args.size,
        "seed": args.seed,
        "difficulty": args.difficulty,
        "image_format": args.image_format,
        "splits": parse_splits(args.splits),
    }
    if args.no_polyps:
        data["polyp_prob"] = 0.0
    cfg = validate_config(SynthConfig, data, "scopeseg synth options")
    ds = generate(args.out, cfg)
    per_cat = Counter(a["category_id"] for a in ds.annotations.values())
    print(
        f"{len(ds.videos)} videos, {len(ds.images)} frames ({cfg.size[0]}x{cfg.size[1]}), "
        f"{len(ds.annotations)} instance masks -> {ds.root}"
    )
    for cid, c in sorted(ds.categories.items()):
        print(f"  {c['name']:<18} {per_cat.get(cid, 0):>6}")
    if cfg.splits:
        print("  splits: " + ", ".join(f"{k}={len(v)} frames" for k, v in sorted(ds.splits().items())))
    return 0


@arg("data", help="data set folder or COCO JSON")
@arg("out", help="output folder for preview.jpg and <video>_overlay.mp4")
@arg("--max-frames", type=int, default=16, help="frames in the preview grid (default 16)")
@arg("--no-video", action="store_true", help="skip the overlay videos")
@command("preview", help="preview a data set: grid of frames with masks overlaid, overlay mp4 per video")
def _preview(args) -> int:
    from ..viz import preview

    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    res = preview(args.data, args.out, max_frames=args.max_frames, video=not args.no_video)
    print(f"preview: {res['preview']}")
    for p in res["videos"]:
        print(f"video:   {p}")
    return 0
