"""What both commands share: the commented default configuration, the aggregator list, defaults in every help."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wsl.utils.cli import build_parser
from wsl_image import cli as image_cli
from wsl_video import cli as video_cli

REPO = Path(__file__).resolve().parents[1]
CLIS = {"wsl-video": video_cli, "wsl-image": image_cli}


def _key_lines(text: str) -> list[tuple[int, str]]:
    """(line number, dotted key) of every ``key:`` line of a commented YAML with one level of sections."""
    keys, section = [], None
    for number, line in enumerate(text.splitlines()):
        match = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_]*):", line)
        if not match:
            continue
        if not match.group(1):
            section = match.group(2)
        keys.append((number, match.group(2) if not match.group(1) else f"{section}.{match.group(2)}"))
    return keys


def _assert_commented(text: str) -> None:
    lines = text.splitlines()
    for number, key in _key_lines(text):
        assert number > 0 and lines[number - 1].strip().startswith("#"), f"no comment above {key!r}"


# ---------------------------------------------------------------- wsl-video config


def test_video_config_every_key_has_a_comment():
    from wsl_video import config

    keys = {f"{section}.{f.name}" for section, cls in config._SECTIONS.items() for f in dataclasses.fields(cls)}
    documented = {key for key in config.CONFIG_COMMENTS if "." in key}
    assert keys - documented == set(), f"config keys without a comment in CONFIG_COMMENTS: {keys - documented}"
    assert documented - keys == set(), f"comments of keys that do not exist: {documented - keys}"
    for key, text in config.CONFIG_COMMENTS.items():
        assert text.strip() and "\n" not in text, key


def test_video_config_command_round_trip(capsys, tmp_path):
    from wsl_video.commands.train import add_arguments, config_from_args
    from wsl_video.config import RunConfig, config_to_dict

    assert video_cli.main(["config"]) == 0
    text = capsys.readouterr().out
    _assert_commented(text)
    printed = {key for _, key in _key_lines(text) if "." in key}
    assert printed == {f"{s}.{k}" for s, keys in config_to_dict(RunConfig()).items() for k in keys}
    assert yaml.safe_load(text) == config_to_dict(RunConfig())
    # loads back through `train --config` unchanged
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    from_file = config_from_args(parser.parse_args(["--config", str(path), "--out", str(tmp_path / "run")]))
    plain = config_from_args(parser.parse_args(["--out", str(tmp_path / "run")]))
    assert config_to_dict(from_file) == config_to_dict(plain)


# ---------------------------------------------------------------- wsl-image config


def test_image_config_every_key_has_a_comment():
    from wsl_image import config

    keys = {f.name for f in dataclasses.fields(config.TrainConfig)}
    assert keys - set(config.CONFIG_COMMENTS) == set(), "config keys without a comment in CONFIG_COMMENTS"
    assert set(config.CONFIG_COMMENTS) - keys == set(), "comments of keys that do not exist"
    for key, text in config.CONFIG_COMMENTS.items():
        assert text.strip() and "\n" not in text, key


def test_image_config_command_round_trip(capsys, tmp_path):
    from wsl_image.commands.train import add_arguments, resolve_config
    from wsl_image.config import TrainConfig, load_config

    assert image_cli.main(["config"]) == 0
    text = capsys.readouterr().out
    _assert_commented(text)
    assert {key for _, key in _key_lines(text)} == {f.name for f in dataclasses.fields(TrainConfig)}
    assert yaml.safe_load(text) == TrainConfig().to_dict()
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    assert load_config(path) == TrainConfig()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(path), "--out", str(tmp_path / "run")])
    assert resolve_config(args) == TrainConfig(out=str(tmp_path / "run"))


def test_image_unknown_key_lists_known_options(tmp_path):
    from wsl_image.config import TrainConfig, load_config

    with pytest.raises(ValueError, match=r"unknown option\(s\) learning_rate.*known: .*\blr\b.*weight_decay"):
        TrainConfig.from_dict({"learning_rate": 0.1}, source="x.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="bad.yaml.*learning_rate.*known: .*cam_threshold"):
        load_config(path)


# ---------------------------------------------------------------- aggregators

PLUGIN_MODULE = '''
from wsl.aggregators import Aggregation, Aggregator


class Doubler(Aggregator):
    """Twice the mean: a minimal third-party aggregator."""

    def aggregate(self, x, mask):
        return Aggregation(2 * x.flatten(2).mean(2), None, None)
'''


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_aggregators_command(prog, capsys):
    import wsl
    from wsl.aggregators import MarginalizedAverage, MeanPool

    assert CLIS[prog].main(["aggregators"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0].rstrip(",") for line in lines]
    assert names == wsl.list_aggregators()
    by_name = dict(zip(names, lines))
    assert MarginalizedAverage.__doc__.strip().splitlines()[0] in by_name["maa"]
    assert MeanPool.__doc__.strip().splitlines()[0] in by_name["mean"]
    assert "gap" in by_name["mean"] and "stpn" in by_name["weighted_sum"]  # aliases shown


def test_aggregators_command_lists_plugins(tmp_path):
    """A real installed plugin distribution is listed with its docstring and origin."""
    (tmp_path / "wsl_demo_plugin").mkdir()
    (tmp_path / "wsl_demo_plugin" / "__init__.py").write_text(PLUGIN_MODULE)
    dist_info = tmp_path / "wsl_demo_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsl-demo-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[wsl.aggregators]\ndoubler = wsl_demo_plugin:Doubler\n")
    (dist_info / "RECORD").write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    both = ("from wsl_video.cli import main as video; from wsl_image.cli import main as image; "
            "assert video(['aggregators']) == 0; print('--'); assert image(['aggregators']) == 0")
    completed = subprocess.run([sys.executable, "-c", both], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    outputs = completed.stdout.split("--\n")
    assert len(outputs) == 2
    for output in outputs:  # wsl-video, then wsl-image
        line = next(line for line in output.splitlines() if line.startswith("doubler"))
        assert "Twice the mean: a minimal third-party aggregator." in line and "wsl-demo-plugin" in line


# ---------------------------------------------------------------- help states the defaults


def _numbers(text: str) -> list[float]:
    values = []
    for token in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text):
        try:
            values.append(float(token))
        except ValueError:
            pass
    return values


def _mentions(text: str, value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_mentions(text, item) for item in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return any(abs(number - value) <= 1e-12 * max(1.0, abs(value)) for number in _numbers(text))
    return str(value) in text


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_help_states_defaults(prog):
    module = CLIS[prog]
    parser = build_parser(prog, "", module.COMMANDS)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(module.COMMANDS)
    missing = []
    for name, subparser in subparsers.choices.items():
        formatter = subparser._get_formatter()
        for action in subparser._actions:
            default = action.default
            if isinstance(action, argparse._StoreFalseAction):  # "--no-x": its help says what the flag turns off
                continue
            if default is None or default is False or default == argparse.SUPPRESS or default == [] \
                    or not action.option_strings:  # (identity: a default of 0 must be stated too)
                continue
            text = formatter._expand_help(action) if action.help else ""
            if "default" not in text.lower() or not _mentions(text, default):
                missing.append(f"{prog} {name} {action.option_strings[-1]} (default {default!r}): {text!r}")
    assert not missing, "help texts that do not state the default:\n" + "\n".join(missing)
