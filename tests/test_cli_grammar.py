"""One command-line grammar for both tools: errors in one line with a suggestion, --version, --device, --threads,
--out, the generic commands registered once, and the renamed options' old spellings."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wsl.utils import cli
from wsl.utils.cli import build_parser
from wsl_image import cli as image_cli
from wsl_video import cli as video_cli

REPO = Path(__file__).resolve().parents[1]
CLIS = {"wsl-video": video_cli, "wsl-image": image_cli}
# the commands that run torch models on the CPU (training, inference, feature extraction)
CPU_HEAVY = {"wsl-video": {"train", "detect", "demo", "tune", "extract", "localize"},
             "wsl-image": {"train", "evaluate", "localize", "demo", "tune"}}


def _subparsers(prog: str) -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(prog, "", CLIS[prog].COMMANDS)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def _run(prog: str, capsys, *argv: str) -> tuple[int, str, str]:
    status = CLIS[prog].main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------- errors: one line, "did you mean"


def test_bad_choice_is_one_line_with_suggestion(capsys):
    status, out, err = _run("wsl-video", capsys, "train", "--dataset", "thumos", "--out", "x")
    assert status == 2 and out == ""
    assert err == ("wsl-video train: error: argument --dataset: invalid choice: 'thumos' (choose from 'thumos14', "
                   "'activitynet', 'activitynet1.2', 'thumos14-sim', 'custom'); did you mean 'thumos14'?\n")
    status, out, err = _run("wsl-image", capsys, "train", "--out", "x", "--optimizer", "adam")
    assert status == 2
    assert err == ("wsl-image train: error: argument --optimizer: invalid choice: 'adam' (choose from 'sgd', "
                   "'adamw'); did you mean 'adamw'?\n")


def test_unknown_command_suggests_the_closest(capsys):
    status, _, err = _run("wsl-image", capsys, "trian")
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("wsl-image: error: argument COMMAND: invalid choice: 'trian' (choose from 'train', ")
    assert err.endswith("; did you mean 'train'?\n")
    status, _, err = _run("wsl-video", capsys, "zzz")  # nothing close: no suggestion
    assert status == 2 and "did you mean" not in err and len(err.splitlines()) == 1


def test_missing_and_unknown_options_are_one_line(capsys):
    status, _, err = _run("wsl-video", capsys, "detect", "--run", "r")
    assert (status, err) == (2, "wsl-video detect: error: the following arguments are required: --out\n")
    status, _, err = _run("wsl-image", capsys, "train", "--out", "x", "--wieght-decay", "3")
    assert (status, err) == (2, "wsl-image train: error: unrecognized arguments: --wieght-decay 3; did you mean "
                                "'--weight-decay'?\n")
    status, _, err = _run("wsl-video", capsys, "train", "--out", "x", "--bogus")
    assert (status, err) == (2, "wsl-video train: error: unrecognized arguments: --bogus\n")


def test_unknown_aggregator_suggests_the_closest():
    import wsl

    with pytest.raises(ValueError, match=r"unknown aggregator 'maaa'; did you mean 'maa'\? available: "):
        wsl.build_aggregator("maaa", channels=8)


def test_console_script_exit_status():
    """The installed entry point: status 2 and one line on stderr, from a fresh interpreter."""
    completed = subprocess.run([sys.executable, "-m", "wsl_video", "plot", "--run", "r", "--video", "v", "--out",
                                "p.png", "--subset", "tests"], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr == ("wsl-video plot: error: argument --subset: invalid choice: 'tests' (choose from "
                                "'train', 'test'); did you mean 'test'?\n")


# ---------------------------------------------------------------- --version


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_version(prog, capsys):
    status, out, err = _run(prog, capsys, "--version")
    assert (status, out, err) == (0, f"{prog} 0.1.0\n", "")


# ---------------------------------------------------------------- --device


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_device_is_the_same_option_everywhere(prog):
    with_device = 0
    for name, parser in _subparsers(prog).items():
        action = _option(parser, "--device")
        if action is None:
            continue
        with_device += 1
        assert action.type is cli.device_type, f"{prog} {name}"
        assert action.default in ("auto", None), f"{prog} {name}: default {action.default!r}"  # None: the config's
        assert "(default: auto)" in (action.help or ""), f"{prog} {name}"
        for value in ("auto", "cpu", "cuda", "cuda:1"):
            assert action.type(value) == value
    assert with_device >= 5
    assert _option(_subparsers("wsl-video")["plot"], "--device").default == "auto"


def test_device_bad_value(capsys):
    status, _, err = _run("wsl-image", capsys, "evaluate", "--run", "r", "--device", "metal")
    assert status == 2
    assert err == ("wsl-image evaluate: error: argument --device: invalid device 'metal' (choose from auto, cpu, cuda, "
                   "cuda:N)\n")
    status, _, err = _run("wsl-video", capsys, "detect", "--run", "r", "--out", "d.json", "--device", "cdua")
    assert status == 2 and err.endswith("(choose from auto, cpu, cuda, cuda:N); did you mean 'cuda'?\n")


def test_image_commands_accept_a_second_gpu():
    parsers = _subparsers("wsl-image")
    args = parsers["localize"].parse_args(["--run", "r", "a.jpg", "--out", "o", "--device", "cuda:1"])
    assert args.device == "cuda:1"
    args = parsers["train"].parse_args(["--out", "o", "--device", "cuda:1"])
    assert args.device == "cuda:1"


# ---------------------------------------------------------------- --threads


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_threads_on_every_cpu_heavy_command(prog):
    parsers = _subparsers(prog)
    have = {name for name, parser in parsers.items() if _option(parser, "--threads") is not None}
    assert have == CPU_HEAVY[prog]
    for name in have:
        action = _option(parsers[name], "--threads")
        assert action.default is None and "min(4, half the CPU cores)" in action.help, name
        assert parsers[name].parse_args(_required(prog, name) + ["--threads", "3"]).threads == 3


def _required(prog: str, name: str) -> list[str]:
    return {"localize": ["--run", "r", "--out", "o", "v"], "detect": ["--run", "r", "--out", "o"],
            "extract": ["--out", "o"], "train": ["--out", "o"], "tune": ["--out", "o"],
            "evaluate": ["--run", "r"]}.get(name, [])


def test_threads_bad_value(capsys):
    status, _, err = _run("wsl-video", capsys, "train", "--out", "x", "--threads", "0")
    assert (status, err) == (2, "wsl-video train: error: argument --threads: expected a positive integer, got '0'\n")


def test_default_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, expected in ((1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert cli.default_threads() == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cli.default_threads() == 3  # the user's setting wins
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert cli.default_threads() == 4


THREADS_COMMAND = '''
import torch
from wsl.utils.cli import add_threads_argument

HELP = "report the torch threads"


def add_arguments(parser):
    add_threads_argument(parser)


def run(args):
    print(torch.get_num_threads())
'''


def test_threads_are_applied_before_the_command_runs(tmp_path):
    (tmp_path / "threads_command.py").write_text(THREADS_COMMAND)
    code = ("from wsl.utils.cli import run_cli; import sys, os; "
            "status = run_cli('wsl-video', '', {'threads': 'threads_command'}, sys.argv[1:]); "
            "print(os.environ['OMP_NUM_THREADS']); sys.exit(status)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    env.pop("OMP_NUM_THREADS", None)
    for argv, expected in ((["threads", "--threads", "3"], "3\n3\n"), (["threads"], None)):
        completed = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                                   timeout=120)
        assert completed.returncode == 0, completed.stderr
        if expected is None:  # the default: min(4, half the cores), also passed on to child processes
            count = min(4, max(1, len(os.sched_getaffinity(0)) // 2))
            expected = f"{count}\n{count}\n"
        assert completed.stdout == expected


# ---------------------------------------------------------------- --out, renamed options and their old spellings


def test_out_names_every_output():
    for prog in CLIS:
        for name, parser in _subparsers(prog).items():
            flags = {flag for action in parser._actions for flag in action.option_strings
                     if flag not in getattr(action, "aliases", ())}
            assert "--output" not in flags, f"{prog} {name}"
    assert _option(_subparsers("wsl-video")["detect"], "--out").required


@pytest.mark.parametrize(("prog", "command", "new", "old", "argv"), [
    ("wsl-video", "detect", "--out", "--output", ["--run", "r"]),
    ("wsl-video", "evaluate", "--out", "--output", ["--ground-truth", "g", "--predictions", "p"]),
    ("wsl-video", "demo", "--sparsity-weight", "--sparsity", []),
])
def test_old_spelling_still_works_unlisted(prog, command, new, old, argv, capsys):
    parser = _subparsers(prog)[command]
    help_text = parser.format_help()
    assert new in help_text and f"{old} " not in help_text and f"{old}," not in help_text
    dest = _option(parser, new).dest
    assert getattr(parser.parse_args(argv + [new, "0.5"]), dest) in ("0.5", 0.5)
    args = parser.parse_args(argv + [old, "0.5"])
    value = getattr(args, dest)
    assert value in ("0.5", 0.5)
    assert capsys.readouterr().err == f"{prog} {command}: warning: {old} is deprecated; use {new}\n"


def test_sparsity_weight_is_one_spelling():
    for prog in CLIS:
        for name, parser in _subparsers(prog).items():
            shown = {flag for action in parser._actions for flag in action.option_strings
                     if flag not in getattr(action, "aliases", ())}
            assert "--sparsity" not in shown, f"{prog} {name}"
    demo = _subparsers("wsl-video")["demo"]
    from wsl_video.commands.demo import demo_settings

    args = demo.parse_args(["--sparsity-weight", "0.25", "--iterations", "5", "--weight-decay", "0"])
    assert demo_settings("maa", args) == {"iterations": 5, "weight_decay": 0.0, "sparsity": 0.25}


def test_sim_means_simulator_settings_in_both_demos():
    for prog in CLIS:
        action = _option(_subparsers(prog)["demo"], "--sim")
        assert action.metavar == "KEY=VALUE" and isinstance(action, argparse._AppendAction), prog


def test_image_demo_sim_errors(capsys, tmp_path):
    out = ["--out", str(tmp_path / "demo")]
    status, _, err = _run("wsl-image", capsys, "demo", "--sim", str(tmp_path), *out)
    assert (status, err) == (2, f"wsl-image demo: error: --sim expects KEY=VALUE (a cub-sim setting), got "
                                f"'{tmp_path}'; an existing cub-sim folder is given with --sim-root\n")
    status, _, err = _run("wsl-image", capsys, "demo", "--sim", "num_clases=3", *out)
    assert status == 2
    assert err == ("wsl-image demo: error: --sim: unknown cub-sim setting 'num_clases'; did you mean 'num_classes'? "
                   "(known: num_classes, train_per_class, test_per_class, val_per_class, image_size, clutter, "
                   "body_cue)\n")
    status, _, err = _run("wsl-image", capsys, "demo", "--sim", "clutter=1", "--sim-root", str(tmp_path), *out)
    assert (status, err) == (2, "wsl-image demo: error: --sim sets up the cub-sim the demo makes; it cannot "
                                "change the one of --sim-root\n")
    assert not (tmp_path / "demo").exists()


# ---------------------------------------------------------------- generic commands, defined once


def test_generic_commands_are_registered_once_for_both_tools():
    for name, module in cli.GENERIC_COMMANDS.items():
        assert module.startswith("wsl.commands.")
        assert video_cli.COMMANDS[name] == image_cli.COMMANDS[name] == module
    for tool in ("wsl_video", "wsl_image"):
        for name in ("config", "aggregators"):
            assert not (REPO / tool / "commands" / f"{name}.py").exists()


def test_generic_config_prints_each_tools_own(capsys):
    from wsl_image.config import config_yaml as image_yaml
    from wsl_video.config import config_yaml as video_yaml

    assert _run("wsl-video", capsys, "config")[:2] == (0, video_yaml())
    assert _run("wsl-image", capsys, "config")[:2] == (0, image_yaml())


# ---------------------------------------------------------------- defects


def _digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_image_train_refuses_zero_epochs(tmp_path, capsys):
    status, out, err = _run("wsl-image", capsys, "train", "--out", str(tmp_path / "run"), "--epochs", "0")
    assert (status, out, err) == (2, "", "wsl-image train: error: epochs must be a positive integer, got 0\n")
    assert not (tmp_path / "run").exists()


def test_npy_errors_do_not_advise_unpickling(tmp_path):
    from wsl_video.data.files import read_npy

    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x00\x01 not an array" * 20)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path in (garbage, objects):
        with pytest.raises(ValueError) as caught:
            read_npy(path)
        assert str(caught.value) == (f"{path}: not a numeric .npy array (no .npy header, or an array of Python "
                                     "objects)")
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((30, 4), np.float32))
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated.npy: not a numeric .npy array \(corrupt or unreadable: "):
        read_npy(truncated)
    message = str(pytest.raises(ValueError, read_npy, garbage).value)
    assert "pickle" not in message and "allow_pickle" not in message


# ---------------------------------------------------------------- pictures


def test_border_box_is_visible():
    from wsl_image.overlay import GREEN, RED, draw_boxes, figure6_tile

    image = np.full((112, 112, 3), 128, np.uint8)
    drawn = draw_boxes(image, [[0, 0, 112, 112]], RED)
    for edge in (drawn[0], drawn[-1], drawn[:, 0], drawn[:, -1]):  # every side of the image shows the box
        assert (edge == RED).all(axis=-1).mean() > 0.9
    tile = figure6_tile(image, np.zeros((112, 112)), np.array([[0, 0, 112, 112]]), np.array([[0, 0, 111, 111]]))
    for edge in (tile[0], tile[:, 0], tile[-1], tile[:, -1]):  # the truth on the border, the prediction inside it
        assert (np.abs(edge.astype(int) - RED).sum(-1) < 60).mean() > 0.9
    assert ((np.abs(tile[3].astype(int) - GREEN).sum(-1) < 60).mean() > 0.9)


def test_grid_labels_rows_and_explains_colours():
    from wsl_image.overlay import legend_band, make_grid

    tiles = [np.full((40, 40, 3), 128, np.uint8)] * 4
    plain = make_grid(tiles, columns=2)
    labelled = make_grid(tiles, columns=2, row_labels=["MAAN (maa)", "CAM (mean)"], legend=True)
    band = legend_band(labelled.shape[1])
    assert labelled.shape[0] == plain.shape[0] + band.shape[0] and labelled.shape[1] > plain.shape[1]
    left = labelled.shape[1] - plain.shape[1]
    top = band.shape[0]
    for row in range(2):  # each row's label is written left of its tiles
        strip = labelled[top + 4 + row * 44: top + 4 + row * 44 + 40, :left]
        assert (strip < 100).any(), row
    assert np.array_equal(labelled[:top], band)
    with pytest.raises(ValueError, match="2 rows but 1 row labels"):
        make_grid(tiles, columns=2, row_labels=["one"])


def test_single_overlay_is_enlarged():
    from wsl_image.overlay import enlarge

    image = np.zeros((112, 100, 3), np.uint8)
    big, heatmap, (boxes,) = enlarge(image, np.zeros((112, 100)), [np.array([[10.0, 20.0, 30.0, 40.0]])])
    assert big.shape == (336, 300, 3) and heatmap.shape == (336, 300)
    assert boxes.tolist() == [[30.0, 60.0, 90.0, 120.0]]
    same, _, _ = enlarge(np.zeros((224, 300, 3), np.uint8), np.zeros((224, 300)), [])
    assert same.shape == (224, 300, 3)


def test_unknown_backbone_suggests_the_closest():
    from wsl_image.model import create_backbone

    with pytest.raises(ValueError) as caught:
        create_backbone("resnet5")
    assert str(caught.value) == "unknown timm backbone 'resnet5'; did you mean 'resnet50'? (see timm.list_models())"
