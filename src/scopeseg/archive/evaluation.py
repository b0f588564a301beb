"""``scopeseg evaluate GT PRED runner=ray``: units (a video, or a shard of images) scored by workers, then
combined into exactly the numbers of the single-process protocol.

Why: a worker returns the protocol's sufficient statistics for its unit (per-image rows, per-object J / F
means, summed class areas), computed by the protocol's own functions (``metrics.protocols``); the driver
puts them back in the ground truth's order and aggregates them with the protocol's own aggregation, so the
result is the one ``run_protocol`` gives, not a mean of means.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ScopesegError
from ..io import read_json, write_json
from ..metrics.inputs import Pair, input_kind
from ..metrics.instances import check_detections
from ..metrics.protocols import (
    EvalResult,
    binary_result,
    binary_rows,
    file_pairs,
    get_protocol,
    protocol_params,
    semantic_classes,
    semantic_result,
    semantic_rows,
    video_result,
    video_rows,
)
from ..metrics.semantic import SemanticAccumulator
from .runner import MANIFEST, Job, Runner, Unit, import_ray, register_job, run_job

#: images without a video are scored in shards of this many
SHARD = 256

Measure = Callable[[list[Pair], dict[int, str], dict[str, Any]], dict[str, Any]]
Finish = Callable[[list[dict[str, Any]], dict[int, str], dict[str, Any]], EvalResult]
#: protocol -> (what a worker computes for a unit, how the driver combines the units)
UNIT_SCORERS: dict[str, tuple[Measure, Finish]] = {}


def _unit_scorer(name: str, measure: Measure):
    def deco(finish: Finish) -> Finish:
        UNIT_SCORERS[name] = (measure, finish)
        return finish

    return deco


def _rows(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for part in parts for r in part["rows"]]


@_unit_scorer("binary", lambda pairs, classes, p: {"rows": binary_rows(pairs, p)})
def _binary(parts: list[dict[str, Any]], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    return binary_result(_rows(parts), p)


def _semantic_measure(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> dict[str, Any]:
    acc, rows = semantic_rows(pairs, classes, p)
    return {"rows": rows, "areas": [acc.inter, acc.area_pred, acc.area_gt]}


@_unit_scorer("semantic", _semantic_measure)
def _semantic(parts: list[dict[str, Any]], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    acc = SemanticAccumulator(semantic_classes(classes, p), p["ignore_index"])
    for part in parts:  # integer areas: the sum is exact in any order
        inter, area_pred, area_gt = (np.asarray(a, np.int64) for a in part["areas"])
        acc.inter += inter
        acc.area_pred += area_pred
        acc.area_gt += area_gt
    return semantic_result(acc, _rows(parts), classes, p)


def _video_measure(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> dict[str, Any]:
    rows, jm, fm = video_rows(pairs, p)
    return {"rows": rows, "J": jm, "F": fm}


@_unit_scorer("video", _video_measure)
def _video(parts: list[dict[str, Any]], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    jm = [v for part in parts for v in part["J"]]
    fm = [v for part in parts for v in part["F"]]
    return video_result(_rows(parts), jm, fm, p)


@register_job("evaluate")
class EvaluateJob(Job):
    """Scores one unit: its ground truth and predictions (sent with the unit) through the protocol's reader."""

    writes = False

    def run(self, unit: Unit, out: Path | None) -> dict[str, Any]:
        protocol, params = self.settings["protocol"], self.settings["params"]
        with tempfile.TemporaryDirectory(prefix="scopeseg-unit-") as d:
            gt = write_json(Path(d) / "gt.json", unit.data["gt"])
            if unit.data["pred_kind"] == "dataset":
                pred = write_json(Path(d) / "pred" / "annotations.json", unit.data["pred"]).parent
            else:
                pred = write_json(Path(d) / "results.json", unit.data["pred"])
            try:
                pairs, classes = file_pairs(gt, pred, params)
            except ScopesegError as e:  # name the user's files, not this unit's temp copies
                text = str(e).replace(str(pred), unit.data["pred_source"]).replace(str(gt), unit.source)
                raise type(e)(text) from None
            part = UNIT_SCORERS[protocol][0](pairs, classes, params)
        return {"part": part, "classes": classes}


def evaluation_units(gt: str | Path, pred: str | Path, protocol: str) -> tuple[list[Unit], dict[str, int]]:
    """One unit per video of a COCO ground truth (images without a video: shards of ``SHARD``), each carrying
    its ground truth and predictions (a predicted data set folder or COCO results JSON), in ground-truth
    order; and each image's position in the ground truth by its item key (file name without suffix)."""
    from ..data.coco import CocoDataset

    if input_kind(gt, "ground truth") != "coco":
        raise ConfigError("runner=ray evaluates a COCO ground truth (a data set folder or JSON)")
    archive = is_predict_archive(pred)
    pk = "dataset" if archive else input_kind(pred, "predictions")
    if pk not in ("dataset", "results"):
        raise ConfigError(
            "runner=ray evaluates a predicted data set folder, COCO results JSON or a predicted archive"
        )
    ds = CocoDataset.load(gt)
    groups: dict[str, list[int]] = {}
    loose: list[int] = []
    for iid, im in ds.images.items():
        vid = im.get("video_id")
        if vid is None:
            loose.append(iid)
        else:
            groups.setdefault(str(ds.videos.get(vid, {}).get("name", vid)), []).append(iid)
    step = len(loose) or 1 if protocol == "video" else SHARD  # the video protocol groups them as one video
    for i in range(0, len(loose), step):
        groups[f"images-{i // step:05d}"] = loose[i : i + step]
    if archive:

        def pred_of(ids: list[int]) -> Any:
            return archive_unit_predictions(ds, ids, Path(pred))
    elif pk == "dataset":
        pds = CocoDataset.load(pred, files=False)

        def pred_of(ids: list[int]) -> Any:
            return pds.subset(ids).to_dict()
    else:
        sizes = {iid: (int(im["height"]), int(im["width"])) for iid, im in ds.images.items()}
        by_image: dict[int, list[dict[str, Any]]] = {}
        for d in check_detections(read_json(pred), sizes, None, pred):
            by_image.setdefault(d["image_id"], []).append(d)

        def pred_of(ids: list[int]) -> Any:
            return [d for i in ids for d in by_image.get(i, [])]

    units = [
        Unit(
            name,
            str(gt),
            {
                "gt": ds.subset(ids).to_dict(),
                "pred": pred_of(ids),
                "pred_kind": pk,
                "pred_source": f"{pred} ({name})",
            },
        )
        for name, ids in groups.items()
    ]
    keys = (str(Path(str(im.get("file_name", iid))).with_suffix("")) for iid, im in ds.images.items())
    return units, {k: i for i, k in enumerate(keys)}


def is_predict_archive(path: str | Path) -> bool:
    """Whether ``path`` is the OUT of ``scopeseg predict MODEL ARCHIVE OUT`` (a job manifest of ``predict``)."""
    f = Path(path) / MANIFEST
    return f.is_file() and read_json(f, expect=dict).get("job") == "predict"


def archive_unit_predictions(ds: Any, ids: list[int], out: Path) -> dict[str, Any]:
    """The predicted data set of one ground-truth video from a predicted archive, in the ground truth's ids.

    Why: ``OUT/<video>/predicted`` numbers its own frames; its frames are matched to the ground truth's by the
    video's name and ``frame_index`` (frames the ground truth lacks are left out) and its categories by name
    (``model_categories``: the ids predicting the ground-truth data set itself would give).
    """
    from ..data.coco import CocoDataset
    from ..inference.predictions import model_categories

    video = ds.videos.get(ds.images[ids[0]].get("video_id"), {}).get("name")
    folder = out / str(video) / "predicted"
    if video is None or not (folder / "annotations.json").is_file():
        raise DataError(f"no prediction of video {video!r} in the archive (see {MANIFEST})", out)
    pds = CocoDataset.load(folder, files=False)
    frames = {int(ds.images[i]["frame_index"]): i for i in ids if ds.images[i].get("frame_index") is not None}
    names = [c["name"] for c in pds.categories.values()]
    cats = {old: c for old, c in zip(pds.categories, model_categories(names, ds))}
    images, anns = [], []
    for pid, im in pds.images.items():
        gid = frames.get(int(im.get("frame_index", -1)))
        if gid is None:
            continue
        frame = {k: v for k, v in im.items() if k != "video_id"}  # the archive's own video table stays behind
        images.append({**frame, "id": gid, "file_name": ds.images[gid]["file_name"]})
        anns += [
            {**a, "id": len(anns) + k + 1, "image_id": gid, "category_id": cats[a["category_id"]]["id"]}
            for k, a in enumerate(pds.image_anns(pid))
        ]
    categories = [{"id": c["id"], "name": c["name"]} for c in cats.values()]
    return {"images": images, "annotations": anns, "categories": categories}


def evaluate_units(
    gt: str | Path,
    pred: str | Path,
    protocol: str = "binary",
    runner: Runner = "ray",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    **overrides: Any,
) -> EvalResult:
    """Score ``pred`` against ``gt`` unit by unit on ``runner`` and combine the units' statistics exactly.

    A unit that fails fails the evaluation (numbers over part of the data would mislead), naming the unit.
    """
    if runner == "ray":
        import_ray()  # a missing extra is named before any work
    get_protocol(protocol)
    if protocol not in UNIT_SCORERS:
        raise ConfigError(
            f"protocol {protocol!r} is scored in one process; runner=ray supports {', '.join(UNIT_SCORERS)}"
        )
    params = protocol_params(protocol, overrides)
    units, order = evaluation_units(gt, pred, protocol)
    if not units:
        raise DataError("ground truth has no images to score", gt)
    report = run_job(
        "evaluate", {"protocol": protocol, "params": params}, units, None, runner, address, workers, threads
    )
    if report.failed:
        name, err = next(iter(report.failed.items()))
        raise DataError(f"{len(report.failed)} of {len(units)} units failed, e.g. unit {name}: {err}", pred)
    parts = [report.results[u.name]["part"] for u in units]
    # rows back in ground-truth order (a stable sort: per-video rows keep the units' order, which is the
    # videos' first appearance), so every mean sums the same numbers in the same order as one process
    rows = sorted(_rows(parts), key=lambda r: order.get(r["item"], len(order)))
    parts = [{**part, "rows": rows if i == 0 else []} for i, part in enumerate(parts)]
    return UNIT_SCORERS[protocol][1](parts, report.results[units[0].name]["classes"], params)
