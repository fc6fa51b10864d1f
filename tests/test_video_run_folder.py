"""``wsl-video`` run folders: safe checkpoint loading, no silent overwrite, portable paths, training flags."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml
from hostile import hostile_checkpoint

from wsl_video.cli import main
from wsl_video.detections import load_detections

TINY = ["--iterations", "4", "--batch-size", "2", "--device", "cpu", "--quiet"]
SIM = ["--dataset", "thumos14-sim", "--sim", "videos=4", "--sim", "feature_dim=8"]


def _bad(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"wsl-video {argv[0]}: error:"), err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def wtalc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "thumos14"
    assert main(["make-sim", "--layout", "wtalc", "--videos", "6", "--feature-dim", "8", "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "sim"
    assert main(["train", *SIM, "--out", str(run), "--no-eval", *TINY]) == 0
    return run


# --- safe loading ---------------------------------------------------------------------------------------


def test_hostile_checkpoint_runs_nothing(sim_run, tmp_path, capsys):
    """detect and --resume on a checkpoint whose pickle would create a file: one-line error, no file."""
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    marker = tmp_path / "marker"
    hostile_checkpoint(run / "checkpoint.pt", marker, state)
    err = _bad(capsys, ["detect", "--run", str(run), "--output", str(tmp_path / "d.json"), "--quiet"],
               "checkpoint.pt")
    assert "refused" in err
    assert not marker.exists() and not (tmp_path / "d.json").exists()
    _bad(capsys, ["train", "--out", str(run), "--resume", "--iterations", "6", "--no-eval", "--quiet"],
         "checkpoint.pt", "refused")
    assert not marker.exists()
    _bad(capsys, ["plot", "--run", str(run), "--video", "video_test_0000001", "--out", str(tmp_path / "p.png")],
         "checkpoint.pt")
    assert not marker.exists()


def test_checkpoint_is_plain(sim_run):
    """Every value of a checkpoint loads with weights_only=True (tensors, numbers, strings, containers)."""
    state = torch.load(sim_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["iteration"] == 4 and isinstance(state["numpy_rng"], dict)


def test_old_checkpoint_loads_and_resumes(sim_run, tmp_path):
    """A checkpoint written the way earlier versions did (torch.save of the same dict) loads and resumes."""
    from wsl_video.run import load_run

    run = tmp_path / "old"
    shutil.copytree(sim_run, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    rng = np.random.default_rng(0)
    rng.integers(0, 10, size=3)
    old = {"iteration": state["iteration"], "model": state["model"], "optimizer": state["optimizer"],
           "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "config": state["config"],
           "classes": list(state["classes"]), "feature_dims": dict(state["feature_dims"])}
    torch.save(old, run / "checkpoint.pt")  # plain torch.save, no atomic writer, as before
    _, model, loaded = load_run(run)
    assert loaded["iteration"] == 4
    assert all(torch.equal(value, old["model"][key]) for key, value in model.state_dict().items())
    assert main(["train", "--out", str(run), "--resume", "--iterations", "6", "--no-eval", "--quiet"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 6


# --- no silent overwrite --------------------------------------------------------------------------------


def test_train_refuses_existing_run(sim_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    err = _bad(capsys, ["train", *SIM, "--out", str(run), "--no-eval", *TINY], str(run), "--resume", "--overwrite")
    assert "already holds a run" in err
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_train_refuses_unrelated_files(tmp_path, capsys):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        _bad(capsys, ["train", *SIM, "--out", str(folder), "--no-eval", *TINY, *extra], str(folder), "notes.txt")
    assert [path.name for path in folder.iterdir()] == ["notes.txt"]
    # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", *SIM, "--out", str(empty), "--no-eval", *TINY]) == 0


def test_overwrite_removes_the_old_run(wtalc_root, tmp_path, capsys):
    """--overwrite with --no-eval must not leave the old run's metrics next to the new config."""
    run = tmp_path / "run"
    data = ["--dataset", "thumos14", "--data-root", str(wtalc_root)]
    assert main(["train", *data, "--out", str(run), *TINY]) == 0
    assert (run / "metrics.json").is_file() and (run / "detections.json").is_file()
    assert main(["train", *data, "--out", str(run), "--no-eval", "--aggregator", "mean", "--overwrite", *TINY]) == 0
    assert sorted(path.name for path in run.iterdir()) == ["checkpoint.pt", "config.yaml", "train.log"]
    assert "mean" in (run / "train.log").read_text() and "maa" not in (run / "train.log").read_text()
    _bad(capsys, ["train", "--out", str(run), "--resume", "--overwrite", "--quiet"], "--resume", "--overwrite")


# --- portable runs --------------------------------------------------------------------------------------


def test_run_works_from_any_directory(wtalc_root, tmp_path, monkeypatch, capsys):
    """A run trained with a relative --data-root detects from another directory and after being copied."""
    monkeypatch.chdir(wtalc_root.parent)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "thumos14", "--data-root", wtalc_root.name, "--out", str(run), *TINY]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["data_root"] == str(wtalc_root)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    copy = tmp_path / "shared" / "run-copy"
    shutil.copytree(run, copy)
    assert main(["detect", "--run", str(copy), "--output", "d.json", "--quiet"]) == 0
    assert load_detections(elsewhere / "d.json") == load_detections(run / "detections.json")

    # data moved to another machine: --data-root points at it (relative to the working directory)
    moved = tmp_path / "moved" / "thumos14"
    shutil.copytree(wtalc_root, moved)
    assert main(["detect", "--run", str(copy), "--data-root", "../moved/thumos14", "--output", "m.json",
                 "--quiet"]) == 0
    assert load_detections(elsewhere / "m.json") == load_detections(run / "detections.json")
    gone = tmp_path / "gone-run"
    shutil.copytree(run, gone)
    config = yaml.safe_load((gone / "config.yaml").read_text())
    config["data"]["data_root"] = str(tmp_path / "nowhere")
    (gone / "config.yaml").write_text(yaml.safe_dump(config))
    _bad(capsys, ["detect", "--run", str(gone), "--output", "g.json", "--quiet"], "nowhere", "--data-root")


# --- training flags -------------------------------------------------------------------------------------


def test_weight_decay_and_sparsity_flags(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *SIM, "--out", str(run), "--no-eval", "--weight-decay", "0.01",
                 "--sparsity-weight", "0.2", *TINY]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert saved["weight_decay"] == 0.01 and saved["sparsity_weight"] == 0.2
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    resumed = ["train", "--out", str(run), "--resume", "--iterations", "6", "--no-eval", "--quiet"]
    assert main(resumed + ["--weight-decay", "0.05"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["weight_decay"] == 0.05
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # the optimiser follows the resumed config
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.05


def test_demo_reruns_in_its_own_folder(tmp_path):
    """The demo replaces its own run folders on a rerun (they are its outputs, not a user's run)."""
    argv = ["demo", "--out", str(tmp_path / "demo"), "--iterations", "2", "--batch-size", "2", "--aggregators", "maa",
            "--sim", "videos=4", "--sim", "feature_dim=8", "--plots", "0", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert main(argv) == 0
