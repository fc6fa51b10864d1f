"""Atomic writes (file modes as a plain ``open()`` gives them), safe checkpoint loading, JSON-ready values."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import hostile_checkpoint

from wsl.utils import io
from wsl.utils.io import atomic_save, atomic_write_json, atomic_write_text, atomic_writer, jsonable

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes (os.umask) on this platform only")


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_open_mode(path: Path) -> int:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("x")
    return _mode(path)


@posix_only
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_umask(tmp_path, umask, mask, expected):
    umask(mask)
    writers = {
        "text.txt": lambda path: atomic_write_text(path, "hello\n"),
        "data.json": lambda path: atomic_write_json(path, {"a": 1}),
        "ckpt.pt": lambda path: atomic_save({"w": torch.zeros(2)}, path),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert _mode(tmp_path / name) == expected, name
    with atomic_writer(tmp_path / "raw.bin", "wb") as handle:
        handle.write(b"\x00")
    assert _mode(tmp_path / "raw.bin") == expected
    assert _plain_open_mode(tmp_path / "plain.txt") == expected  # the reference: what open() gives


@posix_only
def test_existing_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "shared.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640  # as open(path, "w") would leave it


@posix_only
def test_commands_write_readable_files(tmp_path, umask):
    """The video demo writes every file (config, log, checkpoint, metrics, plots) with mode 0644 under umask 022."""
    from wsl_video.cli import main

    umask(0o022)
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--iterations", "2", "--batch-size", "2", "--aggregators", "maa",
            "--sim", "videos=4", "--sim", "feature_dim=8", "--plots", "1", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    files = [path for path in out.rglob("*") if path.is_file()]
    assert {path.suffix for path in files} >= {".yaml", ".log", ".pt", ".json", ".png", ".md"}
    assert {path.name: _mode(path) for path in files} == {path.name: 0o644 for path in files}


def test_atomic_writer_failure_leaves_target(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as handle:
            handle.write("half")
            raise RuntimeError("stop")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_load_checkpoint_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "iteration": 7, "rng": [torch.get_rng_state()],
             "numpy": np.random.default_rng(0).bit_generator.state, "names": ["a", "b"], "pair": (1, 2.5)}
    atomic_save(state, tmp_path / "c.pt")
    loaded = io.load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["numpy"] == state["numpy"] and loaded["names"] == ["a", "b"] and loaded["pair"] == (1, 2.5)


def test_load_checkpoint_numpy_arrays(tmp_path):
    """Checkpoints holding NumPy arrays (the legacy RNG state) load without arbitrary unpickling."""
    legacy = np.random.get_state()
    torch.save({"numpy": legacy, "table": np.arange(6, dtype=np.float32).reshape(2, 3)}, tmp_path / "np.pt")
    loaded = io.load_checkpoint(tmp_path / "np.pt")
    assert loaded["numpy"][0] == "MT19937" and np.array_equal(loaded["numpy"][1], legacy[1])
    assert loaded["table"].dtype == np.float32 and loaded["table"].shape == (2, 3)


def test_load_checkpoint_refuses_code(tmp_path):
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "evil.pt", marker, {"model": {"w": torch.zeros(1)}})
    with pytest.raises(ValueError) as error:
        io.load_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "io.open" in message, message
    assert not marker.exists()


def test_load_checkpoint_exception(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        io.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt") as error:
        io.load_checkpoint(tmp_path / "junk.pt")
    assert "\n" not in str(error.value)


def test_jsonable_round_trip(tmp_path):
    value = {
        1: np.float64(0.1) / 3, "a": (np.int64(3), np.bool_(True), None, "s"),
        "array": np.arange(4).reshape(2, 2), "tensor": torch.tensor([0.5, 1.5]), "scalar": torch.tensor(2),
        "nested": [{"x": np.float32(0.25)}], "plain": 1.5,
    }
    clean = jsonable(value)
    assert clean == {
        "1": 0.1 / 3, "a": [3, True, None, "s"], "array": [[0, 1], [2, 3]], "tensor": [0.5, 1.5], "scalar": 2,
        "nested": [{"x": 0.25}], "plain": 1.5,
    }
    assert type(clean["a"][0]) is int and type(clean["a"][1]) is bool and type(clean["1"]) is float
    atomic_write_json(tmp_path / "v.json", clean)
    assert json.loads((tmp_path / "v.json").read_text()) == clean
