"""RunFolder: a run's file names, its log, its checkpoint and the checks before a run starts in it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from wsl.utils.runs import RunFolder, RunLog

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_smoke(tmp_path):
    folder = RunFolder(tmp_path / "run", ("detections.json",))
    assert folder.outputs == ("config.yaml", "checkpoint.pt", "train.log", "metrics.json", "detections.json")
    assert folder.config_path == tmp_path / "run" / "config.yaml"
    assert folder.checkpoint_path.name == "checkpoint.pt" and folder.log_path.name == "train.log"
    assert folder.metrics_path.name == "metrics.json" and folder.file("detections.json").parent == folder.path
    assert folder.check() == [] and not folder.path.exists()  # checking writes nothing
    folder.start()
    assert folder.path.is_dir()
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "rng": np.arange(3, dtype=np.uint32), "step": 7,
             "names": ["a", "b"]}
    folder.save_checkpoint(state)
    loaded = folder.load_checkpoint()
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["step"] == 7
    np.testing.assert_array_equal(loaded["rng"], state["rng"])
    assert loaded["names"] == ["a", "b"]
    assert [path.name for path in folder.path.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    folder.write_json("detections.json", {"results": {}})
    folder.require("checkpoint.pt", "detections.json")


def test_log(tmp_path):
    echoed = []
    log = RunFolder(tmp_path).log(echoed.append)
    log("first")
    log("second")
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert [re.fullmatch(rf"{STAMP} (.*)", line).group(1) for line in lines] == ["first", "second"]
    assert echoed == ["first", "second"]
    resumed = RunFolder(tmp_path, log_separator="  ").log(append=True)
    resumed("third")
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert len(lines) == 3 and re.fullmatch(rf"{STAMP}  third", lines[2])
    RunLog(tmp_path / "train.log")("fresh")  # not appending: a new log
    assert len((tmp_path / "train.log").read_text().splitlines()) == 1


def test_overwrite_and_resume(tmp_path):
    folder = RunFolder(tmp_path, ("eval_*.json",))
    for name in ("config.yaml", "checkpoint.pt", "eval_test.json"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ValueError, match="already holds a run"):
        folder.check()
    assert folder.check(resume=True) == []
    stale = folder.check(overwrite=True)
    assert sorted(path.name for path in stale) == ["checkpoint.pt", "config.yaml", "eval_test.json"]
    assert len(list(tmp_path.iterdir())) == 3  # removed only when the run starts
    folder.start(stale)
    assert list(tmp_path.iterdir()) == []


def test_exception(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"run directory not found: .*run$"):
        folder.require("config.yaml")
    folder.start()
    with pytest.raises(FileNotFoundError, match=r"cannot resume: no checkpoint at .*checkpoint\.pt"):
        folder.check(resume=True)
    with pytest.raises(FileNotFoundError, match=r"config\.yaml is missing: not a trained run directory"):
        folder.require("config.yaml")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        folder.load_checkpoint()
    folder.save_checkpoint({"w": torch.zeros(100)})
    folder.checkpoint_path.write_bytes(folder.checkpoint_path.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match=r"checkpoint\.pt: not a readable checkpoint"):
        folder.load_checkpoint()

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Payload()}, folder.checkpoint_path)
    with pytest.raises(ValueError, match="refused to load"):
        folder.load_checkpoint()
    (folder.path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        folder.check(overwrite=True)
    with pytest.raises(ValueError, match="not both"):
        folder.check(resume=True, overwrite=True)
