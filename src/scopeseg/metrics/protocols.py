"""Named evaluation protocols: a bundle of metrics, their conventions and the rules that change numbers.

Why: a number is only comparable when its convention travels with it. Each protocol states, for every metric
it reports, which reference it reproduces and with which tolerance / empty rule (``conventions``), and
``scopeseg evaluate GT PRED protocol=NAME`` writes them next to the numbers. A new convention = one entry here.
Pixel protocols score matched label-map pairs: ``run_protocol`` reads them from files (``metrics.inputs``) and
``score_pairs`` takes them from memory (training validation, the training report, the demo, tune-threshold), so
both give the same number by one code path. COCO AP and TAPIS mAP read their files themselves.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..io import read_json
from .endovis import endovis_scores
from .inputs import Pair, _label_values, input_kind, load_pairs, read_predicted_dataset
from .instances import check_frame_instances, coco_evaluate, parse_frame_predictions, voc_instance_map
from .medsam import medsam_case
from .overlap import EMPTY_RULES, dice, iou, per_class_dice, per_class_iou, precision, recall
from .semantic import SemanticAccumulator
from .surface import monai_asd, monai_hausdorff, monai_nsd, surface_distances
from .video import davis_jf, video_overlap


@dataclass
class EvalResult:
    """Aggregates, one row per item, and the convention of every number (for metrics.json and the report)."""

    protocol: str
    metrics: dict[str, Any]
    items: list[dict[str, Any]]
    conventions: dict[str, str]
    params: dict[str, Any]
    primary: list[str] = field(default_factory=list)  # per-item columns shown as distributions / worst cases
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    #: a few worst items' 2D label maps (and image path if known) for report overlays: key -> (gt, pred, image)
    examples: dict[str, tuple[np.ndarray, np.ndarray, Any]] = field(default_factory=dict)

    def attach_examples(self, pairs: list[Pair], k: int = 6) -> EvalResult:
        """Keep the ``k`` worst 2D items (by the first primary column) for the report's overlays."""
        if not self.primary or not pairs:
            return self
        col, higher = self.primary[0], self.higher_is_better.get(self.primary[0], True)
        by_key = {p.key: p for p in pairs if p.gt.ndim == 2}

        def badness(r: dict[str, Any]) -> float:
            v = r.get(col)
            if not isinstance(v, (int, float)) or math.isnan(v):
                return math.inf  # undefined scores (both empty) are not worth a picture
            return v if higher else -v

        for r in sorted((r for r in self.items if r.get("item") in by_key), key=badness)[:k]:
            p = by_key[r["item"]]
            self.examples[p.key] = (p.gt, p.pred, p.extra.get("image_path"))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "params": self.params,
            "metrics": self.metrics,
            "conventions": self.conventions,
            "num_items": len(self.items),
        }


#: a pixel protocol's scorer: (matched label-map pairs, class table {label value: name}, typed params)
PairScorer = Callable[[list[Pair], dict[int, str], dict[str, Any]], EvalResult]
#: a protocol that reads its inputs itself: (ground-truth path, predictions path, typed params)
FileScorer = Callable[[Path, Path, dict[str, Any]], EvalResult]


@dataclass(frozen=True)
class Protocol:
    """A named protocol: typed defaults and exactly one scorer (of label-map pairs, or of files)."""

    name: str
    description: str
    defaults: dict[str, Any]
    score: PairScorer | None = None
    files: FileScorer | None = None


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(name: str, description: str, **defaults: Any):
    """Register ``fn(pairs, classes, params) -> EvalResult`` as pixel protocol ``name`` with typed defaults."""

    def deco(fn: PairScorer):
        PROTOCOLS[name] = Protocol(name, description, defaults, score=fn)
        return fn

    return deco


def register_file_protocol(name: str, description: str, **defaults: Any):
    """Register ``fn(gt, pred, params) -> EvalResult`` as protocol ``name`` that reads its own input files."""

    def deco(fn: FileScorer):
        PROTOCOLS[name] = Protocol(name, description, defaults, files=fn)
        return fn

    return deco


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; choose one of {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


#: parameters whose default (None) does not show their type
_PARAM_TYPES: dict[str, Any] = {"spacing": tuple[float, ...] | None}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Type a parameter like its default; text goes through ``config.parse_value``, the one key=value parser.

    Why: ``scopeseg evaluate GT PRED tolerance=1.5`` and ``scopeseg train lr=3e-4`` read the same text the
    same way (``null`` / ``~`` = None; ``none`` is a word), then pydantic checks the type as in every config.
    """
    from pydantic import TypeAdapter, ValidationError

    from ..config import parse_value

    if isinstance(value, str):
        value = parse_value(value.strip())
    given = value
    kind = _PARAM_TYPES.get(key, Any if default is None else type(default))
    if key == "spacing" and isinstance(value, str):  # 0.5,0.5 or 0.5x0.5 (one value per axis)
        value = [s for s in value.replace("x", ",").split(",") if s]
    elif key == "spacing" and isinstance(value, (int, float)):
        value = (value,)
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as e:
        hint = " (write null for no value)" if given == "none" else ""
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{key}={given!r}: expected {name}: {e.errors()[0]['msg']}{hint}") from None


def protocol_params(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The protocol's defaults updated with ``overrides`` (strings are converted to the default's type)."""
    proto = get_protocol(name)
    params = dict(proto.defaults)
    for k, v in (overrides or {}).items():
        if k not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConfigError(f"protocol {name!r} has no parameter {k!r} (parameters: {known})")
        params[k] = _coerce(k, v, proto.defaults[k])
    return params


def run_protocol(name: str, gt: str | Path, pred: str | Path, **overrides: Any) -> EvalResult:
    """Evaluate ``pred`` against ``gt`` (files) under protocol ``name``.

    Why: pixel protocols read the pairs (``load_pairs``) and hand them to the scorer ``score_pairs`` uses.
    """
    proto = get_protocol(name)
    params = protocol_params(name, overrides)
    if proto.files is not None:
        return proto.files(Path(gt), Path(pred), params)
    pairs, classes = file_pairs(gt, pred, params)
    return proto.score(pairs, classes, params)


def file_pairs(gt: str | Path, pred: str | Path, params: dict[str, Any]) -> tuple[list[Pair], dict[int, str]]:
    """The label-map pairs and class table a pixel protocol scores for files (``params`` typed)."""
    selected = bool(params.get("categories"))  # the caller named the GT categories a one-class model predicts
    pairs, info = load_pairs(gt, pred, params.get("score_thr", 0.5), other_categories=selected)
    if selected:
        pairs = _keep_gt_categories(pairs, Path(gt), _selectors(params["categories"]))
    return pairs, info["classes"]


def score_pairs(
    protocol: str, pairs: Iterable[Pair], classes: dict[int, str] | None = None, **overrides: Any
) -> EvalResult:
    """Score in-memory label-map pairs under pixel protocol ``protocol`` (``classes``: label value -> name).

    Why: training validation, the training report, the demo and tune-threshold give exactly the numbers
    ``scopeseg evaluate`` gives on the same masks. Without ``classes`` the label values seen name the classes.
    """
    proto = get_protocol(protocol)
    if proto.score is None:
        raise ConfigError(
            f"protocol {protocol!r} scores files (ground truth and COCO results), not label-map pairs; "
            "run it with scopeseg evaluate"
        )
    params = protocol_params(protocol, overrides)
    if params.get("categories"):
        raise ConfigError(
            "categories= selects categories of a COCO ground truth read from files; "
            "in-memory pairs are scored as given (build their label maps from the categories you want)"
        )
    pairs = list(pairs)
    if not pairs:
        raise DataError("no label-map pairs to score")
    if classes is None:
        classes = {v: f"class {v}" for v in _label_values(pairs)}
    return proto.score(pairs, classes, params)


def _selectors(value: Any) -> list[str]:
    """``categories`` as a list of names / ``supercategory:NAME`` (a string goes through the key=value parser)."""
    if isinstance(value, str):
        from ..config import parse_value

        value = parse_value(value)
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _keep_gt_categories(pairs: list[Pair], gt: Path, selectors: list[str]) -> list[Pair]:
    """Ground-truth label maps with only the selected categories kept (the rest becomes background).

    Why: a binary model trained with ``categories=[...]`` predicts exactly those; scoring it against every
    object of the ground truth would count the others as its misses.
    """
    if input_kind(gt, "ground truth") != "coco":
        raise ConfigError(
            f"categories={','.join(selectors)} needs a COCO ground truth (names and supercategories); "
            f"{gt} is a mask or npz folder"
        )
    from ..data.coco import CocoDataset
    from ..data.datasets import resolve_categories

    ds = CocoDataset.load(gt)
    cmap = ds.class_map()
    keep = np.array(sorted(cmap[c] for c in resolve_categories(ds, selectors)))
    return [replace(p, gt=np.where(np.isin(p.gt, keep), p.gt, 0).astype(p.gt.dtype)) for p in pairs]


def _nanmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def _summary(items: list[dict], cols: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in cols:
        vals = [r[c] for r in items if c in r]
        out[f"mean_{c}"] = _nanmean(vals)
        n_nan = int(sum(1 for v in vals if isinstance(v, float) and math.isnan(v)))
        if n_nan:
            out[f"nan_{c}"] = n_nan
    return out


# ------------------------------------------------------------------------------------------ binary
@register_protocol(
    "binary",
    "per-image foreground Dice, IoU, precision, recall, NSD, HD at a percentile and ASSD (any label > 0)",
    tolerance=2.0,
    percentile=95.0,
    convention="deepmind",
    empty="nan",
    spacing=None,
    score_thr=0.5,
    surface=True,
    categories=None,
)
def _binary(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    return binary_result(binary_rows(pairs, p), p).attach_examples(pairs)


def binary_rows(pairs: list[Pair], p: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-image rows of the binary protocol (the part workers compute for their units)."""
    if p["convention"] not in ("deepmind", "monai"):
        raise ConfigError(f"convention={p['convention']!r}: choose deepmind or monai")
    if p["empty"] not in EMPTY_RULES:
        raise ConfigError(f"empty={p['empty']!r}: choose one of {', '.join(EMPTY_RULES)}")
    hd = f"hd{p['percentile']:g}"
    rows = []
    for pr in pairs:
        g, q = pr.gt > 0, pr.pred > 0
        sp = p["spacing"] or pr.spacing
        row = {"item": pr.key, "dice": dice(q, g, p["empty"]), "iou": iou(q, g, p["empty"])}
        row["precision"] = precision(q, g, p["empty"])
        row["recall"] = recall(q, g, p["empty"])
        if p["surface"] and p["convention"] == "deepmind":
            sd = surface_distances(q, g, sp)
            row["nsd"] = sd.nsd(p["tolerance"])
            row[hd] = sd.hausdorff(p["percentile"])
            row["assd"] = sd.assd()
        elif p["surface"]:
            row["nsd"] = monai_nsd(q, g, p["tolerance"], sp)
            row[hd] = monai_hausdorff(q, g, sp, p["percentile"])
            row["assd"] = monai_asd(q, g, sp, symmetric=True)
        rows.append(row)
    return rows


def binary_result(rows: list[dict[str, Any]], p: dict[str, Any]) -> EvalResult:
    """The binary protocol's aggregates (nan-means over the rows, in their order) and conventions."""
    hd = f"hd{p['percentile']:g}"
    overlap = ["dice", "iou", "precision", "recall"]
    metrics = _summary(rows, overlap)
    fg = "label > 0" + (f" of categories {', '.join(_selectors(p['categories']))}" if p["categories"] else "")
    conventions = {
        "dice/iou/precision/recall": f"per image, foreground = {fg}; empty rule '{p['empty']}': {EMPTY_RULES[p['empty']]}",
    }
    if p["surface"]:
        conv = p["convention"]
        surf = (
            "DeepMind surface-distance (corner surfels weighted by contour length / area)"
            if conv == "deepmind"
            else "MONAI default (edge voxels = mask minus erosion, weight 1, euclidean)"
        )
        metrics.update(_summary(rows, ["nsd", hd, "assd"]))
        metrics[f"mean_{hd}_finite"] = _nanmean([r[hd] for r in rows if math.isfinite(r[hd])])
        metrics[f"n_{hd}_inf"] = sum(1 for r in rows if math.isinf(r[hd]))
        conventions.update(
            {
                "nsd": f"{surf}; tolerance {p['tolerance']:g} (spacing units); both empty -> NaN, one empty -> 0",
                hd: f"{surf}; {p['percentile']:g}th percentile, symmetric (max of both directions); one empty -> inf",
                "assd": f"{surf}; mean of the two one-sided mean distances"
                + (" (pooled for MONAI)" if conv == "monai" else ""),
            }
        )
    conventions["means"] = "nan-means over images (NaN items counted in nan_*)" + (
        "; inf HD kept (mean_*_finite excludes it)"
        if p["surface"]
        else "; surface metrics off (surface=false)"
    )
    return EvalResult(
        "binary",
        metrics,
        rows,
        conventions,
        p,
        ["dice", "nsd", hd] if p["surface"] else ["dice"],
        {"dice": True, "iou": True, "nsd": True, hd: False, "assd": False, "precision": True, "recall": True},
    )


# ------------------------------------------------------------------------------------- medsam-laptop
@register_protocol(
    "medsam-laptop",
    "MedSAM laptop challenge: multi-class DSC and NSD (tol 2, DeepMind), NSD only when DSC > 0.2",
    variant="cvpr24",
    tolerance=2.0,
)
def _medsam(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    if p["variant"] not in ("cvpr24", "cvpr25"):
        raise ConfigError(f"variant={p['variant']!r}: choose cvpr24 or cvpr25")
    rows = []
    for pr in pairs:
        r = medsam_case(pr.pred, pr.gt, pr.spacing, p["variant"], p["tolerance"])
        rows.append({"item": pr.key, "dsc": r["dsc"], "nsd": r["nsd"], "num_classes": len(r["classes"])})
    classes = (
        "classes 1..gt.max()"
        if p["variant"] == "cvpr24"
        else "classes = labels present in GT (sorted unique minus first)"
    )
    return EvalResult(
        "medsam-laptop",
        _summary(rows, ["dsc", "nsd"]),
        rows,
        {
            "dsc": f"MedSAM {p['variant']} scorer: mean over {classes} of DeepMind Dice (both empty -> NaN propagates)",
            "nsd": f"DeepMind NSD, tolerance {p['tolerance']:g}, computed only when the case DSC > 0.2 (else 0); "
            "2D cases scored as (H, W, 1) volumes with spacing 1; 3D with the npz spacing",
            "means": "means over cases (nan-mean; NaN cases counted in nan_*)",
        },
        p,
        ["dsc", "nsd"],
        {"dsc": True, "nsd": True},
    ).attach_examples(pairs)


# ------------------------------------------------------------------------------------------ endovis
@register_protocol(
    "endovis",
    "EndoVis instrument types: challenge IoU, IoU, mcIoU (TAPIS and MATIS variants)",
    num_classes=0,
    score_thr=0.5,
)
def _endovis(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    n = p["num_classes"] or (max(classes) if classes else 0)
    if n <= 0:
        raise DataError("no instrument classes found; pass num_classes=N")
    preds, gts = [pr.pred for pr in pairs], [pr.gt for pr in pairs]
    tapis = endovis_scores(preds, gts, n, "tapis")
    matis = endovis_scores(preds, gts, n, "matis")
    names = [classes.get(c, f"class {c}") for c in range(1, n + 1)]
    rows = [
        {"item": pr.key, "challenge_iou": c, "iou": f}
        for pr, c, f in zip(pairs, tapis["frame_challenge_iou"], tapis["frame_iou"])
    ]
    metrics = {
        "challenge_iou": tapis["challenge_iou"],
        "iou": tapis["iou"],
        "mciou_tapis": tapis["mciou"],
        "mciou_matis": matis["mciou"],
        "per_class_iou": dict(zip(names, tapis["per_class_iou"])),
    }
    return EvalResult(
        "endovis",
        metrics,
        rows,
        {
            "challenge_iou": "per frame: mean IoU over classes present in the GT; frames with empty GT skipped",
            "iou": "per frame: mean IoU over classes present in GT or prediction; frames with neither skipped",
            "mciou_tapis": "per class: mean of its frame IoUs where it appears; classes never seen left out (TAPIS)",
            "mciou_matis": "as mciou_tapis but a class never seen counts as 0 (MATIS compute_all_iou.py)",
            "inputs": f"classes 1..{n}; COCO results painted by ascending score (score >= {p['score_thr']:g})",
        },
        p,
        ["challenge_iou", "iou"],
        {"challenge_iou": True, "iou": True},
    ).attach_examples(pairs)


# ----------------------------------------------------------------------------------------- semantic
@register_protocol(
    "semantic",
    "mmsegmentation-style mIoU / mDice / aAcc over the data set (ignore index), plus per-image mIoU",
    num_classes=0,
    ignore_index=255,
    score_thr=0.5,
)
def _semantic(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    acc, rows = semantic_rows(pairs, classes, p)
    return semantic_result(acc, rows, classes, p).attach_examples(pairs)


def semantic_classes(classes: dict[int, str], p: dict[str, Any]) -> int:
    """Number of classes (background included) the semantic protocol scores."""
    labels = [c for c in classes if c != p["ignore_index"]]
    return p["num_classes"] or ((max(labels) if labels else 0) + 1)


def semantic_rows(
    pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]
) -> tuple[SemanticAccumulator, list[dict[str, Any]]]:
    """Summed class areas and per-image rows of the semantic protocol (what workers compute per unit)."""
    n = semantic_classes(classes, p)
    acc = SemanticAccumulator(n, p["ignore_index"])
    rows = []
    fg = slice(1, None) if n > 1 else slice(None)
    for pr in pairs:
        acc.update(pr.pred, pr.gt)
        ious = per_class_iou(pr.pred, pr.gt, n, "nan", p["ignore_index"])
        dices = per_class_dice(pr.pred, pr.gt, n, "nan", p["ignore_index"])
        rows.append({"item": pr.key, "miou": _nanmean(list(ious[fg])), "mdice": _nanmean(list(dices[fg]))})
    return acc, rows


def semantic_result(
    acc: SemanticAccumulator, rows: list[dict[str, Any]], classes: dict[int, str], p: dict[str, Any]
) -> EvalResult:
    """The semantic protocol's data-set metrics from summed areas, plus the means of the per-image rows."""
    n = acc.num_classes
    r = acc.result()
    names = ["background"] + [classes.get(c, f"class {c}") for c in range(1, n)]
    metrics = {
        "miou": r["miou"],
        "mdice": r["mdice"],
        "aacc": r["aacc"],
        "macc": r["macc"],
        "per_class_iou": dict(zip(names, r["per_class_iou"])),
        "per_class_dice": dict(zip(names, r["per_class_dice"])),
        "mean_image_miou": _summary(rows, ["miou"])["mean_miou"],
        "mean_image_mdice": _summary(rows, ["mdice"])["mean_mdice"],
    }
    return EvalResult(
        "semantic",
        metrics,
        rows,
        {
            "miou/mdice/aacc": f"mmsegmentation IoUMetric: areas summed over the data set, {n} classes incl. "
            f"background, GT == {p['ignore_index']} ignored, classes absent everywhere NaN and left out (fractions)",
            "per-image miou/mdice": "per image: nan-mean IoU / Dice over foreground classes present in GT or "
            "prediction",
        },
        p,
        ["miou"],
        {"miou": True},
    )


# --------------------------------------------------------------------------------------------- coco
@register_file_protocol(
    "coco",
    "COCO AP (segm and/or bbox) with faster-coco-eval: the 12 pycocotools stats and per-category AP",
    iou_type="segm",
)
def _coco(gt: Path, pred: Path, p: dict[str, Any]) -> EvalResult:
    from ..data.coco import CocoDataset

    pk = input_kind(pred, "predictions")
    if input_kind(gt, "ground truth") != "coco" or pk not in ("results", "dataset"):
        raise DataError(
            "the coco protocol needs COCO ground truth and COCO results JSON or a predicted data set", pred
        )
    ds = CocoDataset.load(gt)
    types = ["segm", "bbox"] if p["iou_type"] == "both" else [p["iou_type"]]
    if any(t not in ("segm", "bbox") for t in types):
        raise ConfigError(f"iou_type={p['iou_type']!r}: choose segm, bbox or both")
    gt_dict = ds.to_dict()
    dts = read_predicted_dataset(ds, pred) if pk == "dataset" else read_json(pred)
    metrics: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for t in types:
        r = coco_evaluate(gt_dict, dts, t, dt_source=str(pred))
        metrics.update({f"{t}_{k}": v for k, v in r["named"].items()})
        for cat, ap in r["per_category_ap"].items():
            rows.setdefault(cat, {"item": cat})[f"{t}_AP"] = ap
    return EvalResult(
        "coco",
        metrics,
        list(rows.values()),
        {
            "AP*/AR*": "COCO (pycocotools definition, computed by faster-coco-eval): 101-point interpolated AP "
            "averaged over IoU 0.50:0.95, area ranges and maxDets 1/10/100; -1 = undefined",
            "per-category AP": "AP@[.5:.95], all areas, maxDets 100, per category (items table)",
        },
        p,
        [f"{t}_AP" for t in types],
        {f"{t}_AP": True for t in types},
    )


# -------------------------------------------------------------------------------------- tapis-map50
@register_file_protocol(
    "tapis-map50",
    "TAPIS VOC-style mask mAP@0.5 over class-score distributions (not COCO AP50)",
    score_key="instruments_score_dist",
    iou_threshold=0.5,
)
def _tapis(gt: Path, pred: Path, p: dict[str, Any]) -> EvalResult:
    from ..data.records import resolve_data_path

    json_path, _ = resolve_data_path(gt)
    coco_gt = read_json(json_path)
    try:
        preds = parse_frame_predictions(read_json(pred))
    except DataError as e:
        raise DataError(str(e), pred) from None
    cats = coco_gt.get("instruments_categories") or coco_gt.get("categories") or []
    sizes = {im["file_name"]: (int(im["height"]), int(im["width"])) for im in coco_gt.get("images", [])}
    check_frame_instances(preds, sizes, len(cats), pred, p["score_key"])
    known = set(sizes)
    unknown = [k for k in preds if k not in known]
    if preds and len(unknown) == len(preds):
        raise DataError(
            f"no prediction frame name matches a ground-truth file_name (e.g. {unknown[0]!r})", pred
        )
    r = voc_instance_map(coco_gt, preds, p["score_key"], p["iou_threshold"])
    rows = [{"item": k, "AP": v} for k, v in r["per_class_ap"].items()]
    return EvalResult(
        "tapis-map50",
        {"map": r["map"], "per_class_ap": r["per_class_ap"], "unmatched_prediction_frames": len(unknown)},
        rows,
        {
            "map": f"TAPIS instance_segmentation_eval (TF object-detection PASCAL evaluator): every instance scored "
            f"for every class with {p['score_key']}, greedy per-image matching at mask IoU >= {p['iou_threshold']:g}, "
            "all-point interpolated AP, nan-mean over classes with GT",
        },
        p,
        ["AP"],
        {"AP": True},
    )


# -------------------------------------------------------------------------------------------- video
@register_protocol(
    "video",
    "per-frame and per-video Dice/IoU and DAVIS-2017 J&F (objects = label values)",
    skip_first_last=True,
    bound_th=0.008,
    empty="nan",
    score_thr=0.5,
)
def _video(pairs: list[Pair], classes: dict[int, str], p: dict[str, Any]) -> EvalResult:
    return video_result(*video_rows(pairs, p), p)


def video_rows(pairs: list[Pair], p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float], list[float]]:
    """Per-video rows and the per-object J / F means of every video (what workers compute per unit)."""
    videos: dict[str, list[Pair]] = {}
    for pr in pairs:
        videos.setdefault(pr.video or "video", []).append(pr)
    rows, jm, fm = [], [], []
    for name, frames in videos.items():
        frames.sort(key=lambda x: (x.frame is None, x.frame if x.frame is not None else 0, x.key))
        shapes = {f.gt.shape for f in frames}
        if len(shapes) != 1:
            raise DataError(f"video {name!r} has frames of different sizes {sorted(shapes)}")
        g = np.stack([f.gt for f in frames])
        q = np.stack([f.pred for f in frames])
        ov = video_overlap(q > 0, g > 0, p["empty"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            skip = p["skip_first_last"] and len(frames) > 2
            jf = davis_jf(q, g, skip_first_last=skip, bound_th=p["bound_th"])
        jm += [o["J_mean"] for o in jf["objects"].values()]
        fm += [o["F_mean"] for o in jf["objects"].values()]
        rows.append(
            {
                "item": name,
                "frames": len(frames),
                "mean_frame_dice": ov["mean_frame_dice"],
                "mean_frame_iou": ov["mean_frame_iou"],
                "video_dice": ov["video_dice"],
                "J&F": jf["J&F"],
                "J": jf["J_mean"],
                "F": jf["F_mean"],
            }
        )
    return rows, jm, fm


def video_result(
    rows: list[dict[str, Any]], jm: list[float], fm: list[float], p: dict[str, Any]
) -> EvalResult:
    """The video protocol's aggregates: J and F nan-means over all objects of all videos, means of rows."""
    j, f = _nanmean(jm), _nanmean(fm)
    metrics = {"J&F": (j + f) / 2, "J": j, "F": f}
    metrics.update(_summary(rows, ["mean_frame_dice", "mean_frame_iou", "video_dice"]))
    return EvalResult(
        "video",
        metrics,
        rows,
        {
            "J&F": f"DAVIS 2017 evaluation: J = region IoU (empty union -> 1), F = boundary F (seg2bmap, disk radius "
            f"ceil({p['bound_th']:g} x diagonal)); per object mean over frames"
            + (" without the first and last" if p["skip_first_last"] else "")
            + "; J&F = (mean J_M + mean F_M) / 2 over all objects (label values) of all videos",
            "dice/iou": f"foreground (label > 0) per frame, empty rule '{p['empty']}'; video_dice over the whole clip",
        },
        p,
        ["J&F", "mean_frame_dice"],
        {"J&F": True, "mean_frame_dice": True},
    )


__all__ = [
    "PROTOCOLS",
    "EvalResult",
    "Protocol",
    "get_protocol",
    "protocol_params",
    "run_protocol",
    "score_pairs",
]
