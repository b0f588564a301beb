"""``scopeseg track``: prompted video object segmentation (box tracker, memory head, SAM2) of a video file."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys


@arg(
    "model",
    help="litemedsam / mobilesam (box tracker), or a video-family checkpoint folder (memory head, SAM2)",
)
@arg(
    "video",
    help="a video file (mp4, avi, ...), or an archive: a folder of videos (one unit per video, runner=local|ray, "
    "resumable; prompts from <video>.prompts.json beside each video, else prompt= / prompts=)",
)
@arg("out", help="output folder: predicted/ (COCO-video, RLE), results.json, <video>_overlay.mp4")
@arg("--overwrite", action="store_true", help="replace an existing OUT (only once tracking succeeded)")
@command(
    "track",
    help="follow prompted objects through a video (prompt=f0:box:x0,y0,x1,y1, repeatable, or prompts=JSON)",
    keys=config_keys("scopeseg.inference.video_objects", "TrackConfig"),
)
def _track(args) -> int:
    from ..inference.video_objects import TrackConfig, track

    # prompt= may be given several times: collected into one list (the parser keeps the last of a key)
    specs = [o.partition("=")[2] for o in args.overrides if o.startswith("prompt=")]
    rest = [o for o in args.overrides if not o.startswith("prompt=")]
    cfg = build_config_of(TrackConfig, rest, "track")
    if specs:
        cfg = cfg.model_copy(update={"prompt": specs})
    from ..archive.track import is_archive, track_archive

    if is_archive(args.video):
        report = track_archive(args.model, args.video, args.out, cfg, args.overwrite)
        for k, v in report.summary().items():
            print(f"{k}: {v}")
        return report.exit_code
    res = track(args.model, args.video, args.out, cfg, args.overwrite)
    print(
        f"{res['objects']} objects over {res['frames']} frames ({res['direction']}, {res['model']}, "
        f"{res['fps']} frames/s) -> {res['predicted']}, {res['results']}"
        + (f", {res['overlay_video']}" if "overlay_video" in res else "")
    )
    return 0
