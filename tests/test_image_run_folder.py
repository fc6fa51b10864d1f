"""``wsl-image`` run folders: safe checkpoint loading, no silent overwrite, portable paths."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import sys

import numpy as np
import pytest
import torch
import yaml
from hostile import hostile_checkpoint

from wsl_image.cli import main
from wsl_image.sim import make_cub_sim

torch.set_num_threads(1)

TINY = ["--backbone", "test_resnet", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--device", "cpu",
        "--grid", "4", "--quiet"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "sim"
    make_cub_sim(out, seed=3, num_classes=2, train_per_class=2, test_per_class=2, val_per_class=1, image_size=48,
                 clutter=1)
    return out


@pytest.fixture(scope="module")
def trained(sim, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(run), "--epochs", "1", *TINY]) == 0
    return run


def _error(capsys, argv, *fragments):
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"wsl-image {argv[0]}: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _image(tmp_path):
    import cv2

    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((20, 20, 3), 128, np.uint8))
    return path


# --- safe loading ---------------------------------------------------------------------------------------


def test_hostile_checkpoint_runs_nothing(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    marker = tmp_path / "marker"
    hostile_checkpoint(run / "checkpoint.pt", marker, state)
    _error(capsys, ["evaluate", "--run", str(run), "--quiet"], "checkpoint.pt", "refused")
    assert not marker.exists()
    _error(capsys, ["localize", "--run", str(run), str(_image(tmp_path)), "--out", str(tmp_path / "loc")],
           "checkpoint.pt", "refused")
    assert not marker.exists() and not (tmp_path / "loc").exists()
    _error(capsys, ["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"], "checkpoint.pt", "refused")
    assert not marker.exists()


def test_checkpoint_is_plain(trained):
    state = torch.load(trained / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and len(state["rng"]) == 1


def test_old_checkpoint_loads_and_resumes(trained, tmp_path):
    """A checkpoint with NumPy arrays in its RNG state, as earlier versions wrote it, loads and resumes."""
    run = tmp_path / "old"
    shutil.copytree(trained, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    np.random.seed(5)
    random.seed(5)
    old_rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    assert isinstance(old_rng["numpy"][1], np.ndarray)
    torch.save({**state, "rng": [old_rng]}, run / "checkpoint.pt")
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2


# --- no silent overwrite --------------------------------------------------------------------------------


def test_train_refuses_existing_run(sim, trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    argv = ["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(run), "--epochs", "1", *TINY]
    line = _error(capsys, argv, str(run), "--resume", "--overwrite")
    assert "already holds a run" in line
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    for extra in ([], ["--overwrite"]):
        argv = ["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(folder), "--epochs", "1", *TINY]
        _error(capsys, argv + extra, str(folder), "thesis.tex")
    assert [path.name for path in folder.iterdir()] == ["thesis.tex"]


def test_overwrite_removes_the_old_run(sim, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    assert (run / "eval_test.json").is_file()
    argv = ["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(run), "--epochs", "1",
            "--aggregator", "mean", "--overwrite", *TINY]
    assert main(argv) == 0
    assert not (run / "eval_test.json").exists()
    assert json.loads((run / "metrics.json").read_text())["aggregator"] == "mean"
    assert "maa" not in (run / "train.log").read_text()


# --- portable runs --------------------------------------------------------------------------------------


def test_run_works_from_any_directory(sim, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(sim)
    run = tmp_path / "run"
    argv = ["train", "--data-root", "CUB_200_2011", "--metadata", "metadata/CUB", "--out", str(run), "--epochs", "1"]
    assert main(argv + TINY) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data_root"] == str(sim / "CUB_200_2011") and saved["metadata"] == str(sim / "metadata" / "CUB")
    assert saved["out"] == str(run)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    copy = tmp_path / "copies" / "run"
    shutil.copytree(run, copy)
    assert main(["evaluate", "--run", str(copy), "--quiet"]) == 0
    trained = json.loads((run / "metrics.json").read_text())
    assert json.loads((copy / "eval_test.json").read_text())["top1_loc"] == pytest.approx(trained["top1_loc"])

    moved = tmp_path / "moved"
    shutil.copytree(sim, moved)
    assert main(["evaluate", "--run", str(copy), "--data-root", "../moved/CUB_200_2011", "--metadata",
                 "../moved/metadata/CUB", "--quiet"]) == 0
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data_root"] = str(tmp_path / "nowhere")
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    _error(capsys, ["evaluate", "--run", str(copy), "--quiet"], "nowhere", "--data-root")


# --- permissions ----------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes (os.umask) on this platform only")
def test_outputs_readable_under_umask_022(sim, tmp_path):
    previous = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert main(["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(run), "--epochs", "1",
                     *TINY]) == 0
        assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
        assert main(["localize", "--run", str(run), str(_image(tmp_path)), "--out", str(tmp_path / "loc")]) == 0
    finally:
        os.umask(previous)
    written = [path for folder in (run, tmp_path / "loc") for path in folder.iterdir()]
    assert {path.suffix for path in written} >= {".yaml", ".log", ".pt", ".json", ".png"}
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {p.name: 0o644 for p in written}
