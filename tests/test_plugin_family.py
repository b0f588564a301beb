"""Families are found, not listed: a toy family installed from a temporary folder (module + dist-info entry
point, touching no file of the package) trains through ``scopeseg train preset=...`` and reloads; the generic
registry refuses clashes, suggests close names and names a plugin that cannot be imported."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scopeseg import registry as R
from scopeseg.errors import ConfigError

TOY_MODULE = '''
"""A toy family from outside scopeseg: model factory, training task and presets, registered on import."""

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from scopeseg import load_dataset
from scopeseg.config import register_presets
from scopeseg.models.base import ScopesegModel
from scopeseg.models.registry import register_model
from scopeseg.train.loop import (
    TrainerOptions, configure_adamw, create_task_model, fit_and_release, make_loader, prepare_run_dir,
    register_task,
)


class ToyNet(ScopesegModel):
    family = "toy"
    exportable = True

    def __init__(self, width):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 1, 3, padding=1)
        )

    def forward(self, x):
        return self.net(x)

    def example_inputs(self, batch=1):
        return (torch.rand(batch, 3, 32, 32),)


@register_model("toy-net", family="toy", tiny={"width": 2})
def toy_net(width: int = 8) -> ToyNet:
    """Two 3x3 convolutions: foreground logits of an RGB image."""
    return ToyNet(width)


class ToyTrainConfig(TrainerOptions):
    model: str = "toy-net"
    width: int = 8
    data: str | None = None


class Pairs(torch.utils.data.Dataset):
    def __init__(self, path):
        ds = load_dataset(path)
        self.items = []
        for image_id in sorted(ds.images):
            mask = sum(ds.mask(a) for a in ds.annotations.values() if a["image_id"] == image_id) > 0
            image = torch.from_numpy(ds.load_image(image_id)).permute(2, 0, 1).float() / 255
            self.items.append((image, torch.from_numpy(mask[None]).float()))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class ToyData(L.LightningDataModule):
    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.pairs = cfg, Pairs(cfg.data)

    def train_dataloader(self):
        return make_loader(self.pairs, self.cfg, shuffle=True)

    def val_dataloader(self):
        return make_loader(self.pairs, self.cfg, shuffle=False)


class ToyModule(L.LightningModule):
    def __init__(self, model, cfg):
        super().__init__()
        self.model, self.cfg = model, cfg

    def training_step(self, batch, _):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self.model(x), y)
        self.log("train_loss", loss, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        p = (self.model(x) > 0).float()
        dice = (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        self.log("val_dice", dice, on_epoch=True, batch_size=len(x))

    def configure_optimizers(self):
        return configure_adamw(self.model.parameters(), self.cfg, int(self.trainer.estimated_stepping_batches))


@register_task("toy", config=ToyTrainConfig)
def train_toy(cfg: ToyTrainConfig) -> dict:
    run_dir = prepare_run_dir(cfg, "toy")
    L.seed_everything(cfg.seed, verbose=False)
    model = create_task_model(cfg.model, "toy", width=cfg.width)
    released = fit_and_release(ToyModule(model, cfg), ToyData(cfg), model, cfg, run_dir, "toy family")
    return {"run_dir": str(run_dir), "best": released["best"]}


register_presets("toyseg", Path(__file__).parent / "presets")
'''

TOY_PRESET = """\
task: toy
description: toy family from a plugin (tests)
width: 4
epochs: 30
batch_size: 4
lr: 0.05
schedule: none
accelerator: cpu
log_every: 1
"""


def _install_toy_family(site: Path) -> None:
    """A plugin as pip would leave it: the package and a dist-info whose entry point names its module."""
    pkg = site / "toyseg_family"
    (pkg / "presets").mkdir(parents=True)
    (pkg / "__init__.py").write_text(TOY_MODULE)
    (pkg / "presets" / "toy-tiny.yaml").write_text(TOY_PRESET)
    info = site / "toyseg_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyseg-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[scopeseg.plugins]\ntoy = toyseg_family\n")


def _disc_data(folder: Path) -> Path:
    from scopeseg import CocoDataset
    from scopeseg.io import write_image

    rng = np.random.default_rng(0)
    ds = CocoDataset()
    cat = ds.add_category("disc")
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(8):
        cy, cx, r = rng.uniform(10, 22, 2).tolist() + [rng.uniform(5, 9)]
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = np.full((32, 32, 3), 40, np.uint8)
        img[m] = (220, 180, 90)
        write_image(folder / f"{i}.png", img)
        ds.add_annotation(ds.add_image(f"{i}.png", 32, 32), cat, m)
    ds.save(folder / "annotations.json")
    return folder


def _run(args: list[str], site: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


RELOAD = """
import json, sys
import torch
from scopeseg import load_dataset
from scopeseg.models import load_model, list_models
model = load_model(sys.argv[1])
ds = load_dataset(sys.argv[2])
inter = total = 0.0
with torch.no_grad():
    for image_id in sorted(ds.images):
        x = torch.from_numpy(ds.load_image(image_id)).permute(2, 0, 1).float()[None] / 255
        p = (model(x)[0, 0] > 0).numpy()
        m = sum(ds.mask(a) for a in ds.annotations.values() if a["image_id"] == image_id) > 0
        inter += (p & m).sum(); total += p.sum() + m.sum()
print(json.dumps({"type": type(model).__name__, "config": model.config, "dice": 2 * inter / total,
                  "toy_models": list_models(family="toy")}))
"""


def test_toy_family_from_a_plugin_trains_through_the_cli_and_reloads(tmp_path):
    site = tmp_path / "site"
    _install_toy_family(site)
    data = _disc_data(tmp_path / "data")
    out = tmp_path / "run"
    listed = _run([sys.executable, "-m", "scopeseg", "presets", "--task", "toy"], site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:2] == ["toy-tiny", "toy"]
    res = _run([sys.executable, "-m", "scopeseg", "train", "preset=toy-tiny", f"data={data}", f"out={out}"],
               site, tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"best checkpoint: {out / 'best'}" in res.stdout
    saved = json.loads((out / "best" / "config.json").read_text())
    assert saved["name"] == "toy-net" and saved["family"] == "toy" and saved["width"] == 4
    reload = _run([sys.executable, "-c", RELOAD, str(out / "best"), str(data)], site, tmp_path)
    assert reload.returncode == 0, reload.stderr[-3000:]
    got = json.loads(reload.stdout)
    assert got["type"] == "ToyNet" and got["config"]["width"] == 4 and got["toy_models"] == ["toy-net"]
    assert got["dice"] > 0.8, got  # the toy net learned the bright discs
    src = Path(R.__file__).parent  # the package itself knows nothing of the toy family
    assert not any("toyseg" in p.read_text() for p in src.rglob("*.py"))


def test_broken_plugin_is_named_in_one_line(tmp_path):
    site = tmp_path / "site"
    info = site / "broken_family-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[scopeseg.plugins]\nbroken = broken_family\n")
    (site / "broken_family.py").write_text("import a_module_that_is_not_installed\n")
    res = _run([sys.executable, "-m", "scopeseg", "train", "preset=nothing-like-this"], site, tmp_path)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "plugin 'broken'" in err[0] and "a_module_that_is_not_installed" in err[0]


def test_registry_refuses_clashes_and_suggests_names(tmp_path, monkeypatch):
    reg: R.Registry[str] = R.Registry("widget", ConfigError)

    def widget_a():
        pass

    def widget_b():
        pass

    reg.register("alpha", widget_a)
    reg.register("alpha", widget_a)  # the same definition again (a module re-import) is fine
    with pytest.raises(ConfigError, match="widget 'alpha' is registered twice"):
        reg.register("alpha", widget_b)
    reg.register("beta", widget_b)
    monkeypatch.setattr(R, "_searched", {R.PLUGIN_GROUP})  # no installed plugin gets imported here
    with pytest.raises(ConfigError, match="unknown widget 'alpah'; did you mean alpha"):
        reg.get("alpah")
    with pytest.raises(ConfigError, match="unknown widget 'zzz'; widgets: alpha, beta"):
        reg.get("zzz")
    assert reg.names("b*") == ["beta"] and "alpha" in reg and reg.get("beta") is widget_b


def test_discovery_walks_a_package_tree_and_propagates_import_errors(tmp_path, monkeypatch):
    pkg = tmp_path / "walked_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("FOUND = []\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from walked_pkg import FOUND\nFOUND.append('leaf')\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not searched')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(R, "_searched", {R.PLUGIN_GROUP})
    reg: R.Registry[str] = R.Registry("thing", ConfigError, packages=("walked_pkg",))
    assert reg.names() == []
    import walked_pkg

    assert walked_pkg.FOUND == ["leaf"]
    (pkg / "sub" / "bad.py").write_text("import not_installed_anywhere\n")
    importlib.invalidate_caches()
    monkeypatch.setattr(R, "_searched", {R.PLUGIN_GROUP})
    with pytest.raises(ModuleNotFoundError, match="not_installed_anywhere"):
        R.Registry("other", ConfigError, packages=("walked_pkg.sub",)).names()
