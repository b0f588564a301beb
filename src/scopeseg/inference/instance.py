"""Instance ``Predictor`` (Mask2Former family) and ``scopeseg predict`` for instance checkpoints.

Pre-processing is the training one (resize to the model's ``input_size`` with INTER_AREA, [0, 1]); masks
are resized back to each image. Outputs in ``OUT``: ``predicted/`` (data set of instance masks with scores),
``results.json`` (COCO results: RLE, bbox, score, category_id) and ``tapis_predictions.json`` (the
TAPIS/LEMIS per-frame format: ``{file_name: {"instances": [{"bbox", "instruments_score_dist", "segment",
"score", "category_id"}]}}``, read by the ``tapis-map50`` protocol). ``classes=`` replaces the class names of
a text-conditioned model (the names are embedded with MiniLM; same number of classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from ..config import BaseConfig
from ..data.coco import CocoDataset
from ..errors import ConfigError, DataError, ModelError
from ..io import check_output, is_image, read_image, write_json
from ..models.instance.mask2former import OUTPUT_NAMES
from ..models.instance.postprocess import Instance, instances_from_outputs
from ..progress import track
from .predictions import PredictionWriter, batched, model_categories
from .predictors import register_predictor

TAPIS_FILE = "tapis_predictions.json"
SCORE_KEY = "instruments_score_dist"


class InstancePredictConfig(BaseConfig):
    """Settings of ``scopeseg predict`` for an instance (Mask2Former) checkpoint."""

    batch_size: int = Field(2, ge=1)
    classes: list[str] | str | None = None  # new class names of a text-conditioned model (same number)
    topk: int | None = Field(None, ge=1)  # instances kept per image (None: the model's own)
    min_score: float = Field(0.05, ge=0.0, le=1.0)  # drop instances scored below this
    images: bool = True  # store the images (links; video frames as JPEG) in the predicted data set
    threads: int | None = Field(None, ge=1)
    engine: Literal["torch", "onnx"] = (
        "torch"  # onnx: exported in memory at the model's input size, run by ORT
    )
    stride: int = Field(1, ge=1)  # videos: every stride-th frame
    max_frames: int | None = Field(None, ge=1)  # videos: stop after this many frames


def parse_classes(value: Any) -> list[str] | None:
    """``classes=a,b,c`` or a YAML list."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    names = [str(v).strip() for v in value]
    if not names or any(not n for n in names):
        raise ConfigError(f"classes={value!r}: give non-empty names separated by commas")
    return names


@register_predictor("instance")
class InstancePredictor:
    """Batched instance prediction with a torch Mask2Former; ``predict(images) -> [[Instance, ...], ...]``."""

    def __init__(
        self,
        model: torch.nn.Module,
        batch_size: int = 2,
        topk: int | None = None,
        min_score: float = 0.05,
    ):
        self.model = model.eval()
        cfg = model.config
        self.input_size = tuple(cfg.get("input_size") or (160, 256))
        self.batch_size = batch_size
        self.topk = topk or int(cfg.get("topk", 20))
        self.min_score = min_score
        #: what runs the network: the torch model itself, or ``OnnxInstanceRunner`` (engine=onnx)
        self.runner: Any = self.model

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
        classes: Sequence[str] | None = None,
        **kw: Any,
    ) -> InstancePredictor:
        from ..models.checkpoints import load_model

        if engine not in ("torch", "onnx") or precision != "fp32":
            raise ConfigError(
                f"instance models run with engine=torch|onnx precision=fp32 (got {engine}/{precision})"
            )
        if threads:
            torch.set_num_threads(threads)
        model = load_model(path)
        if getattr(model, "family", None) != "instance":
            raise ModelError(f"{path} holds a {getattr(model, 'family', '?')} model, not an instance model")
        predictor = cls(model, **kw)
        if classes:
            predictor.set_classes(classes)
        if engine == "onnx":
            predictor.runner = OnnxInstanceRunner(predictor.model, threads)
        return predictor

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    def set_classes(self, names: Sequence[str]) -> None:
        """Embed new class names (MiniLM, the model's text encoder) and use them from now on."""
        from ..models.instance.text import text_encoder

        if not getattr(self.model, "text_conditioned", False):
            raise ConfigError(
                "classes= needs a text-conditioned model (lemis-*, text=additive|cross_attention)"
            )
        names = list(names)
        if len(names) != len(self.model.classes):
            raise ConfigError(
                f"classes= gives {len(names)} names; the model has {len(self.model.classes)} classes"
            )
        kind = str(self.model.config.get("text_encoder", "minilm"))
        self.model.set_class_embeddings(names, text_encoder(kind).embed(names))

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list[list[Instance]]:
        import cv2

        h, w = self.input_size
        out: list[list[Instance]] = []
        for chunk in batched(images, self.batch_size):
            x = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in chunk])
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
            logits, masks, quality, boxes = self.runner(x)
            for b, im in enumerate(chunk):
                out.append(
                    instances_from_outputs(
                        logits[b],
                        masks[b],
                        quality[b] if self.model.quality_head else None,
                        boxes[b] if self.model.box_head else None,
                        (h, w),
                        im.shape[:2],
                        self.topk,
                        self.min_score,
                    )
                )
        return out


def export_onnx(model: torch.nn.Module, path: str | Path, opset: int = 17) -> Path:
    """ONNX file of an instance model at its ``input_size`` (legacy exporter, static shapes), written atomically.

    Inputs ``pixels`` (B, 3, H, W) RGB in [0, 1]; outputs ``logits``, ``masks``, ``quality``, ``boxes`` (the
    torch ``forward``). The class-name table is a constant of the graph: new names need a new export.
    """
    import warnings

    from ..io import atomic_path

    h, w = tuple(model.config.get("input_size") or (160, 256))
    x = torch.rand(1, 3, h, w)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["pixels"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"pixels": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
        )
    return Path(path)


class OnnxInstanceRunner:
    """The model exported to ONNX (in memory) and run by ONNX Runtime; called like the torch model."""

    def __init__(self, model: torch.nn.Module, threads: int | None = None):
        import tempfile

        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="scopeseg-instance-") as tmp:
            path = export_onnx(model, Path(tmp) / "model.onnx")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            self.session = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.session.run(None, {"pixels": x.numpy().astype(np.float32)})
        return tuple(torch.from_numpy(o) for o in outs)


def tapis_entry(instances: list[Instance], category_ids: list[int], n_categories: int) -> dict[str, Any]:
    """One frame in the TAPIS/LEMIS per-frame format: the score distribution lists categories 1..n by id
    (TAPIS indexes it by ``category_id - 1``); categories the model does not predict score 0."""
    from ..data import rle as rle_utils

    items = []
    for x in instances:
        r = rle_utils.encode(x.mask)
        dist = [0.0] * n_categories
        for k, s in enumerate(x.score_dist):
            dist[category_ids[k] - 1] = round(float(s), 6)
        items.append(
            {
                "bbox": [round(v, 2) for v in x.box],
                SCORE_KEY: dist,
                "segment": r,
                "score": round(x.score, 6),
                "category_id": category_ids[x.label],
            }
        )
    return {"instances": items}


def _inputs(path: Path, kind: str) -> tuple[list[tuple[str, Any, int | None]], CocoDataset | None]:
    if kind == "image":
        return [(path.name, path, None)], None
    if kind == "folder":
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p))
        if not files:
            raise DataError("no images in folder", path)
        return [(p.relative_to(path).as_posix(), p, None) for p in files], None
    gt = CocoDataset.load(path)
    return [(gt.images[i]["file_name"], gt.image_path(i), i) for i in gt.images], gt


def predict_instances(
    predictor: InstancePredictor,
    input_path: str | Path,
    out: str | Path,
    cfg: InstancePredictConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict an image, folder, COCO data set or video into ``out`` (appears whole; ``overwrite`` to replace)."""
    from .semantic_files import input_kind

    cfg = cfg or InstancePredictConfig()
    kind = input_kind(input_path)
    if kind == "stream":
        raise DataError(
            "instance prediction reads images, folders, data sets and video files, not streams", input_path
        )
    path, out = Path(input_path), Path(out)
    check_output(out, overwrite)
    gt = None
    if kind == "video":
        frames = _video_frames(path, cfg)
        items: list[tuple[str, Any, int | None]] = [
            (f"{path.stem}/{i:06d}.jpg", img, None) for i, img in frames
        ]
    else:
        items, gt = _inputs(path, kind)
    cats = model_categories(predictor.classes, gt)
    cat_ids = [c["id"] for c in cats]
    n_cats = max([*cat_ids, *(gt.categories if gt is not None else [])])
    tapis: dict[str, Any] = {}
    n_inst = 0
    with PredictionWriter(out, cats, cfg.images, overwrite) as w:
        vid = w.add_video(path.stem) if kind == "video" else None
        for chunk in track(list(batched(items, predictor.batch_size)), "predicting"):
            pixels = [src if isinstance(src, np.ndarray) else read_image(src) for _, src, _ in chunk]
            for (name, src, gid), img, inst in zip(chunk, pixels, predictor.predict(pixels)):
                extra: dict[str, Any] = {"video_id": vid} if vid is not None else {}
                if isinstance(src, np.ndarray):
                    iid = w.add_image(name, img.shape[0], img.shape[1], pixels=img, id=gid, **extra)
                else:
                    iid = w.add_image(name, img.shape[0], img.shape[1], source=src, id=gid, **extra)
                for x in inst:
                    w.add_mask(iid, cat_ids[x.label], x.mask, x.score)
                tapis[name] = tapis_entry(inst, cat_ids, n_cats)
                n_inst += len(inst)
        write_json(w.view(TAPIS_FILE), tapis)
    return {
        "kind": kind,
        "images": len(items),
        "instances": n_inst,
        **w.paths(),
        "tapis": str(out / TAPIS_FILE),
    }


def _video_frames(path: Path, cfg: InstancePredictConfig) -> list[tuple[int, np.ndarray]]:
    from ..video_io import iter_frames

    frames = []
    for i, img in iter_frames(path, stride=cfg.stride):
        frames.append((i, img))
        if cfg.max_frames and len(frames) >= cfg.max_frames:
            break
    if not frames:
        raise DataError("video has no frames", path)
    return frames


def predict_model(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    cfg: InstancePredictConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``scopeseg predict`` for an instance checkpoint: inputs and OUT are checked before the model loads."""
    from .semantic_files import input_kind

    cfg = cfg or InstancePredictConfig()
    input_kind(input_path)
    check_output(out, overwrite)
    predictor = InstancePredictor.from_pretrained(
        model,
        engine=cfg.engine,
        threads=cfg.threads,
        classes=parse_classes(cfg.classes),
        batch_size=cfg.batch_size,
        topk=cfg.topk,
        min_score=cfg.min_score,
    )
    return predict_instances(predictor, input_path, out, cfg, overwrite)


def evaluate_instances(
    predictor: InstancePredictor, gt: CocoDataset, category_names: dict[str, str] | None = None
) -> dict[str, Any]:
    """COCO segm/bbox AP, AP50, AP75 and TAPIS mAP@0.5 of ``predictor`` on a data set, in memory.

    Model classes map to GT categories by name (``category_names``: model class -> GT name, for renamed classes);
    instances of classes with no GT category are dropped. Why here: benchmarks and measurements score the same
    post-processed instances ``scopeseg predict`` writes.
    """
    from ..data import rle as rle_utils
    from ..metrics.instances import coco_evaluate, voc_instance_map

    by_name = {c["name"]: cid for cid, c in gt.categories.items()}
    names = [(category_names or {}).get(n, n) for n in predictor.classes]
    cat_of = {k: by_name[n] for k, n in enumerate(names) if n in by_name}
    if not cat_of:
        raise DataError(f"no model class {names} is a category of the data set", gt.path)
    gt_dict = gt.to_dict()
    n_cats = max(gt.categories)
    dts, frames = [], {}
    ids = list(gt.images)
    for chunk in batched(ids, predictor.batch_size):
        for iid, inst in zip(chunk, predictor.predict([gt.load_image(i) for i in chunk])):
            items, seen = [], set()
            for (
                x
            ) in inst:  # best first: a query's lower-scored class mapped to the same category is a duplicate
                if x.label not in cat_of or (x.query, cat_of[x.label]) in seen:
                    continue
                seen.add((x.query, cat_of[x.label]))
                r = rle_utils.encode(x.mask)
                dts.append(
                    {
                        "image_id": iid,
                        "category_id": cat_of[x.label],
                        "segmentation": r,
                        "bbox": x.box,
                        "score": x.score,
                    }
                )
                dist = [0.0] * n_cats
                for k, s in enumerate(x.score_dist):
                    if k in cat_of:
                        dist[cat_of[k] - 1] = max(dist[cat_of[k] - 1], float(s))  # several classes -> one
                items.append({SCORE_KEY: dist, "segment": r})
            frames[gt.images[iid]["file_name"]] = {"instances": items}
    out: dict[str, Any] = {"images": len(ids), "detections": len(dts)}
    for iou_type in ("segm", "bbox"):
        named = coco_evaluate(gt_dict, dts, iou_type)["named"]
        for k in ("AP", "AP50", "AP75"):
            out[f"{iou_type}_{k}"] = named[k]
    out["tapis_map50"] = voc_instance_map(gt_dict, frames)["map"]
    return out
