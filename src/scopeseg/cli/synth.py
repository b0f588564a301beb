"""``scopeseg synth`` (synthetic scope videos) and ``scopeseg preview`` (masks overlaid on frames/videos)."""

from __future__ import annotations

from collections import Counter

from ..errors import ConfigError
from . import arg, build_config_of, command, config_keys


@arg("out", help="output folder (created; an earlier data set there is replaced with --overwrite)")
@arg("--overwrite", action="store_true", help="replace an earlier data set at OUT (once the new one is done)")
@command(
    "synth",
    help="generate synthetic endoscopy videos with exact instance masks (COCO-video + mp4)",
    keys=config_keys("scopeseg.data.synthetic", "SynthConfig"),
)
def _synth(args) -> int:
    from ..data.synthetic import SynthConfig, generate

    cfg = build_config_of(SynthConfig, args.overrides, "synth")
    ds = generate(args.out, cfg, overwrite=args.overwrite)
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
@arg("--overwrite", action="store_true", help="replace an existing OUT (once the new preview is done)")
@command(
    "preview", help="preview a data set: grid of frames with masks overlaid, overlay mp4 per video", data=True
)
def _preview(args) -> int:
    from ..data.preview import preview

    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    res = preview(
        args.data, args.out, max_frames=args.max_frames, video=not args.no_video, overwrite=args.overwrite
    )
    print(f"preview: {res['preview']}")
    for p in res["videos"]:
        print(f"video:   {p}")
    return 0
