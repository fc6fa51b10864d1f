"""wsl.utils.config: dataclass configurations from YAML / command-line values, one style for both tools."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from wsl.utils.config import (
    coerce_value,
    load_yaml_mapping,
    save_yaml,
    sections_from_dict,
    update_from_dict,
)


@dataclass
class Optim:
    lr: float = 0.1
    steps: int = 10
    amp: bool = True
    name: str = "sgd"
    betas: List[float] | None = None
    extra: Dict[str, Any] = field(default_factory=dict)
    root: str | None = None


@dataclass
class Whole:
    optim: Optim = field(default_factory=Optim)
    other: Optim = field(default_factory=Optim)


def test_smoke(tmp_path):
    optim = update_from_dict(Optim(), {"lr": "1e-3", "steps": 8.0, "betas": (0.9, 0.99), "root": tmp_path})
    assert optim == Optim(lr=0.001, steps=8, betas=[0.9, 0.99], root=str(tmp_path))
    assert type(optim.steps) is int and type(optim.lr) is float
    whole = sections_from_dict(Whole(), {"optim": {"steps": "3"}, "other": None}, "x.yaml")
    assert whole == Whole(optim=Optim(steps=3))
    assert sections_from_dict(Whole(), None) == Whole()
    path = tmp_path / "sub" / "config.yaml"
    values = dataclasses.asdict(Whole(optim=Optim(lr=5e-4, extra={"hidden": 8})))
    save_yaml(values, path)
    assert load_yaml_mapping(path) == values
    assert list(yaml.safe_load(path.read_text())["optim"]) == [f.name for f in dataclasses.fields(Optim)]
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # atomic: no temporary file left
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_mapping(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("value, annotation, expected", [
    ("0.5", "float", 0.5), (3, "float | None", 3.0), (None, "float | None", None), ("12", "int", 12),
    (4.0, "int | None", 4), (False, "bool", False), (Path("a/b"), "str", "a/b"), ((1, 2), "List[float]", [1, 2]),
    ({"a": 1}, "Dict[str, Any] | None", {"a": 1}), ([1], "Any", [1]),
])
def test_coerce(value, annotation, expected):
    result = coerce_value(value, annotation, "key")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value, annotation, kind", [
    ("fast", "float", "float"), (2.5, "int", "int"), (True, "int", "int"), (True, "float | None", "float or null"),
    ("yes", "bool", "bool"), (3, "str", "str"), ([1], "dict", "dict"), ("1,2", "List[float] | None", "list or null"),
    (None, "int", "int"),
])
def test_coerce_exception(value, annotation, kind):
    with pytest.raises(ValueError, match=rf"^option train\.key must be of type {kind}, got "):
        coerce_value(value, annotation, "train.key")


def test_exception(tmp_path):
    with pytest.raises(ValueError, match=r"^x\.yaml: unknown option\(s\) learning_rate, stepz \(known: amp, betas"):
        update_from_dict(Optim(), {"stepz": 1, "learning_rate": 0.1}, "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: option lr must be of type float, got 'fast'$"):
        update_from_dict(Optim(), {"lr": "fast"}, "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: expected a mapping of option: value, got list$"):
        update_from_dict(Optim(), [1], "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: unknown option\(s\) optim\.stepz \(known: optim\.amp, "):
        sections_from_dict(Whole(), {"optim": {"stepz": 1}}, "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: unknown section\(s\) optimiser \(known: optim, other\)$"):
        sections_from_dict(Whole(), {"optimiser": {}}, "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: section 'optim' must be a mapping$"):
        sections_from_dict(Whole(), {"optim": 3}, "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: expected a mapping of sections \['optim', 'other'\], got str$"):
        sections_from_dict(Whole(), "optim", "x.yaml")
    with pytest.raises(ValueError, match=r"^x\.yaml: option optim\.steps must be of type int, got 2\.5$"):
        sections_from_dict(Whole(), {"optim": {"steps": 2.5}}, "x.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load_yaml_mapping(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml_mapping(tmp_path / "missing.yaml")


def test_both_tools_read_their_files(tmp_path):
    """The video config (sections) and the image config (flat) read YAML and flag values the same way."""
    from wsl_image.config import TrainConfig
    from wsl_image.config import load_config as load_image
    from wsl_video.config import RunConfig, config_from_dict, save_config
    from wsl_video.config import load_config as load_video

    (tmp_path / "video.yaml").write_text("train:\n  lr: 1e-3\n  iterations: '40'\n")
    video = load_video(tmp_path / "video.yaml")
    assert video.train.lr == 0.001 and video.train.iterations == 40
    save_config(video, tmp_path / "round.yaml")
    assert load_video(tmp_path / "round.yaml") == video
    (tmp_path / "image.yaml").write_text("lr: 1e-3\nepochs: '2'\n")
    image = load_image(tmp_path / "image.yaml")
    assert image.lr == 0.001 and image.epochs == 2 and image == TrainConfig(lr=0.001, epochs=2)
    with pytest.raises(ValueError, match=r"^v\.yaml: unknown option\(s\) train\.epochs \(known: train\."):
        config_from_dict({"train": {"epochs": 3}}, source="v.yaml")
    with pytest.raises(ValueError, match=r"^i\.yaml: unknown option\(s\) iterations \(known: "):
        TrainConfig.from_dict({"iterations": 3}, source="i.yaml")
    assert config_from_dict({}) == RunConfig()
