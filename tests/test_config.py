"""Typed configs: override parsing, presets, one-line ConfigErrors naming the key and close matches."""

from __future__ import annotations

import pytest

from scopeseg.config import (
    BaseConfig,
    build_config,
    list_presets,
    load_preset,
    parse_overrides,
    parse_value,
    register_config,
)
from scopeseg.errors import ConfigError, ScopesegError


class _Optim(BaseConfig):
    name: str = "adamw"
    betas: list[float] = [0.9, 0.999]


@register_config("_test_task")
class _TestConfig(BaseConfig):
    epochs: int = 1
    lr: float = 1e-3
    size: list[int] = [64, 64]
    classes: list[str] = []
    data: str | None = None
    amp: bool = False
    optim: _Optim = _Optim()


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("3e-4", 3e-4), ("1E3", 1000.0), ("0.5", 0.5), ("-2", -2), ("true", True), ("null", None),
     ("None", None), ("[1, 2]", [1, 2]), ("[a,b]", ["a", "b"]), ("unet-effb2", "unet-effb2"),
     ("data/x.json", "data/x.json"), ("no", "no"), ("off", "off"), ("2024-01-01", "2024-01-01")],
)  # fmt: skip
def test_parse_value_types(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_overrides_typed():
    cfg = build_config(_TestConfig, overrides=["epochs=3", "lr=3e-4", "size=[32,48]", "classes=[grasper,hook]",
                                                "data=some/dir", "amp=true", "optim.betas=[0.5,0.9]"])  # fmt: skip
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.lr == pytest.approx(3e-4) and isinstance(cfg.lr, float)
    assert cfg.size == [32, 48] and cfg.classes == ["grasper", "hook"]
    assert cfg.data == "some/dir" and cfg.amp is True
    assert cfg.optim.betas == [0.5, 0.9] and cfg.optim.name == "adamw"


def test_yaml11_words_stay_strings_but_fill_bools():
    cfg = build_config(_TestConfig, overrides=["data=no", "amp=yes"])
    assert cfg.data == "no" and cfg.amp is True


def test_build_by_task_and_mapping_overrides():
    cfg = build_config(task="_test_task", overrides={"epochs": 2})
    assert isinstance(cfg, _TestConfig) and cfg.epochs == 2


def test_parse_overrides_nested_and_errors():
    assert parse_overrides(["a=1", "b.c=x", "b.d=2"]) == {"a": 1, "b": {"c": "x", "d": 2}}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_overrides(["=3"])
    with pytest.raises(ConfigError, match="already given a value"):
        parse_overrides(["a=1", "a.b=2"])


def test_unknown_key_names_key_and_close_match():
    with pytest.raises(ConfigError) as e:
        build_config(_TestConfig, overrides=["epoch=3"])
    msg = str(e.value)
    assert "'epoch'" in msg and "did you mean epochs" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=r"'optim\.nmae'.*did you mean name"):
        build_config(_TestConfig, overrides=["optim.nmae=sgd"])
    with pytest.raises(ConfigError, match="known keys"):
        build_config(_TestConfig, overrides=["zzzzzz=1"])


@pytest.mark.parametrize("item, key", [("epochs=three", "epochs"), ("lr=fast", "lr"), ("size=[a,b]", "size"),
                                       ("optim.betas=x", "optim.betas")])  # fmt: skip
def test_wrong_type_names_key(item, key):
    with pytest.raises(ConfigError) as e:
        build_config(_TestConfig, overrides=[item])
    assert f"'{key}" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ScopesegError)


def test_presets_shipped_and_loadable():
    presets = list_presets()
    assert presets, "no YAML presets shipped"
    for name, meta in presets.items():
        data = load_preset(name)
        assert data.get("task") == meta["task"] and meta["task"] != "?"


def test_unknown_preset_and_task():
    name = next(iter(list_presets()))
    with pytest.raises(ConfigError, match=f"did you mean {name}"):
        load_preset(name[:-1] + "x")
    with pytest.raises(ConfigError, match="unknown preset 'zzz-nope'"):
        build_config(_TestConfig, overrides=["preset=zzz-nope"])
    with pytest.raises(ConfigError, match="unknown task"):
        build_config(task="no-such-task")


def test_preset_file_path_and_malformed(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("task: _test_task\ndescription: test\nepochs: 7\n")
    cfg = build_config(preset=str(good), overrides=["lr=0.1"])
    assert isinstance(cfg, _TestConfig) and cfg.epochs == 7 and cfg.lr == 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_preset(str(bad))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("task: _test_task\nepochs: many\n")
    with pytest.raises(ConfigError, match="'epochs' in preset"):
        build_config(preset=str(wrong))
