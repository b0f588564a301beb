"""Measurements of a trained instance checkpoint: held-out AP, synonyms / shuffled names, real frames.

1. Held-out synthetic videos (generator seeds not used in training): COCO segm/bbox AP, AP50, AP75, TAPIS mAP@0.5.
2. Text (text-conditioned checkpoints): the class names replaced at inference by synonyms ("grasper" ->
   "grasping forceps", ...), scored against the same categories; and the names shuffled between classes
   (class i gets class i+1's name), scored by position (what each class meant) and by the new names.
3. Sim-to-real: class-agnostic AP50 (every model class counts as "instrument") on the real instance frames in
   ``../shared/data`` (CholecInstanceSeg, Endoscapes2023, EndoVis17); skipped when absent.
Results: ``benchmarks/results/instance_measure.{json,md}`` with the CPU model and flags.
Run: ``.venv/bin/python benchmarks/instance_measure.py RUN/best --heldout DATA``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SHARED = ROOT.parents[1] / "shared" / "data"

SYNONYMS = {
    "grasper": "grasping forceps",
    "bipolar_forceps": "bipolar coagulation forceps",
    "needle_driver": "needle holder",
    "scissors": "surgical shears",
    "clip_applier": "clip applicator",
    "suction_irrigator": "suction irrigation cannula",
}


def _ablation():
    """The sibling benchmark module (``cpu_info``, ``run_conditions``), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("abl", ROOT / "instance_ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def real_sets() -> dict[str, Any]:
    """Real instance frames as in-memory data sets with one category ``instrument`` (absent folders skipped)."""
    from PIL import Image

    from scopeseg.data.coco import CocoDataset

    out: dict[str, Any] = {}
    for name, pattern in (
        ("cholecinstanceseg_vid03_unclear", "images/*.png"),
        ("endoscapes2023_vid04_unclear", "images/*.jpg"),
    ):
        folder = SHARED / name
        if not folder.is_dir():
            continue
        ds = CocoDataset(root=folder)
        ds.add_category("instrument", id=1)
        for img in sorted(folder.glob(pattern)):
            inst = np.array(Image.open(folder / "masks_instance" / (img.stem + ".png")))
            iid = ds.add_image(f"images/{img.name}", inst.shape[0], inst.shape[1])
            for k in sorted(set(np.unique(inst)) - {0}):
                ds.add_annotation(iid, 1, inst == k)
        out[name] = ds
    folder = SHARED / "endovis17_unclear"
    if folder.is_dir():
        ds = CocoDataset(root=folder)
        ds.add_category("instrument", id=1)
        masks = [
            np.array(Image.open(folder / "masks" / f)) > 0
            for f in ("frame_left_instrument.png", "frame_right_instrument.png")
        ]
        iid = ds.add_image("images/frame.png", masks[0].shape[0], masks[0].shape[1])
        for m in masks:
            ds.add_annotation(iid, 1, m)
        out["endovis17_unclear"] = ds
    return out


def main() -> None:
    from scopeseg.data.coco import load_dataset
    from scopeseg.inference.instance import InstancePredictor, evaluate_instances

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a trained instance checkpoint folder (RUN/best)")
    ap.add_argument("--heldout", required=True, help="held-out synthetic data set")
    ap.add_argument("--out", default=str(RESULTS / "instance_measure"), help="results path without suffix")
    args = ap.parse_args()

    def predictor(classes=None):
        return InstancePredictor.from_pretrained(
            args.checkpoint, classes=classes, batch_size=4, min_score=0.0
        )

    base = predictor()
    classes = base.classes
    held = load_dataset(args.heldout)
    abl = _ablation()
    res: dict[str, Any] = {"info": {**abl.cpu_info(), "checkpoint": args.checkpoint, "heldout": args.heldout}}
    res["heldout"] = evaluate_instances(base, held)
    print("heldout", json.dumps(res["heldout"]), flush=True)
    if base.model.text_conditioned:
        syn = [SYNONYMS.get(c, c) for c in classes]
        res["synonyms"] = {
            "names": syn,
            **evaluate_instances(predictor(syn), held, dict(zip(syn, classes))),
        }
        shuffled = classes[1:] + classes[:1]
        p = predictor(shuffled)
        res["shuffled_by_position"] = {
            "names": shuffled,
            **evaluate_instances(p, held, dict(zip(shuffled, classes))),
        }
        res["shuffled_by_new_name"] = evaluate_instances(p, held)
        for k in ("synonyms", "shuffled_by_position", "shuffled_by_new_name"):
            print(k, json.dumps(res[k]), flush=True)
    res["real"] = {}
    agnostic = {c: "instrument" for c in classes}
    for name, ds in real_sets().items():
        res["real"][name] = evaluate_instances(base, ds, agnostic)
        print(name, json.dumps(res["real"][name]), flush=True)
    res["info"].update(abl.run_conditions())
    run = Path(args.checkpoint).parent / "result.json"  # the training run's budget, when it is a run's best/
    if run.is_file():
        res["info"]["training"] = {k: v for k, v in json.loads(run.read_text()).items() if k != "run_dir"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    lines = [
        f"Instance measurements of `{args.checkpoint}`; CPU {res['info']['cpu']} ({', '.join(res['info']['flags'])}), "
        f"{res['info']['torch_threads']} torch threads, load average {res['info']['load_average']}.",
        f"Training run: {json.dumps(res['info'].get('training', 'unknown'))}.",
        "",
        "| evaluation | segm AP | AP50 | AP75 | TAPIS mAP@0.5 |",
        "|---|---|---|---|---|",
    ]
    rows = [("held-out synthetic", res["heldout"])]
    rows += [(k, res[k]) for k in ("synonyms", "shuffled_by_position", "shuffled_by_new_name") if k in res]
    rows += [(f"real: {k} (class-agnostic)", v) for k, v in res["real"].items()]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['segm_AP']:.3f} | {r['segm_AP50']:.3f} | {r['segm_AP75']:.3f} | {r['tapis_map50']:.3f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
