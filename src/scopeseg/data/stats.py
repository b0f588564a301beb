"""Statistics of a record set: counts per split / category / video, image sizes, mask areas.

Computed from the tables and the RLE run lengths alone (no mask decoding), so a summary of a large data set
costs about as much as loading it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from . import rle as rle_utils
from .ops import splits
from .records import RecordSet, is_rle_str


def summary(ds: RecordSet) -> dict[str, Any]:
    """Counts per split / category / video, image sizes and a mask-area histogram (no mask decoding).

    Areas come from the RLE run lengths (pycocotools ``area``); histogram bins are powers of 4 pixels.
    """
    cats = {
        cid: {"id": cid, "name": c.get("name"), "annotations": 0, "images": 0}
        for cid, c in ds.categories.items()
    }
    for cid, iids in ds.images_by_category.items():
        if cid in cats:
            cats[cid]["images"] = len(iids)
    per_cat = Counter(a.get("category_id") for a in ds.annotations.values())
    for cid, n in per_cat.items():
        if cid in cats:
            cats[cid]["annotations"] = n
    per_split = {}
    for name, iids in sorted(splits(ds).items()):
        per_split[name] = {
            "images": len(iids),
            "annotations": sum(len(ds.anns_by_image.get(i, ())) for i in iids),
            "videos": len({ds.images[i].get("video_id") for i in iids} - {None}),
        }
    videos = []
    for vid, v in ds.videos.items():
        frames = ds.frames_by_video.get(vid, [])
        vsplits = sorted({str(ds.images[i].get("split", "all")) for i in frames})
        videos.append(
            {
                "id": vid,
                "name": v.get("name"),
                "frames": len(frames),
                "annotations": sum(len(ds.anns_by_image.get(i, ())) for i in frames),
                "split": ",".join(vsplits),
            }
        )
    sizes = Counter(f"{im.get('height')}x{im.get('width')}" for im in ds.images.values())
    rles = [s for s in (a.get("segmentation") for a in ds.annotations.values()) if is_rle_str(s)]
    areas = rle_utils.areas(rles)
    top = int(areas.max()) if areas.size else 1
    edges = [0, 1]
    while edges[-1] <= top:
        edges.append(edges[-1] * 4)
    counts = np.histogram(areas, bins=edges)[0] if areas.size else np.zeros(len(edges) - 1, int)
    return {
        "path": str(ds.path) if ds.path else None,
        "images": len(ds.images),
        "annotations": len(ds.annotations),
        "categories": list(cats.values()),
        "videos": videos,
        "splits": per_split,
        "image_sizes": dict(sizes.most_common()),
        "mask_area": {
            "bin_edges": edges,
            "counts": [int(c) for c in counts],
            "min": int(areas.min()) if areas.size else None,
            "median": float(np.median(areas)) if areas.size else None,
            "max": int(areas.max()) if areas.size else None,
            "empty": int((areas == 0).sum()),
        },
    }
