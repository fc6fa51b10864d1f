"""Run-folder helpers: which folders a run may start in, and paths that work from any directory."""

from __future__ import annotations

import os

import pytest

from wsl.utils.runs import absolute_path, check_run_dir, recorded_path, remove_run_files

OUTPUTS = ("config.yaml", "checkpoint.pt", "eval_*.json")


def test_new_or_empty_folder(tmp_path):
    assert check_run_dir(tmp_path / "new", OUTPUTS) == []
    assert check_run_dir(tmp_path, OUTPUTS) == []


def test_existing_run(tmp_path):
    for name in ("config.yaml", "checkpoint.pt", "eval_test.json", ".checkpoint.pt.abc123.tmp"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ValueError, match="already holds a run .*--resume.*--overwrite"):
        check_run_dir(tmp_path, OUTPUTS)
    assert check_run_dir(tmp_path, OUTPUTS, resume=True) == []
    stale = check_run_dir(tmp_path, OUTPUTS, overwrite=True)
    assert sorted(path.name for path in stale) == [".checkpoint.pt.abc123.tmp", "checkpoint.pt", "config.yaml",
                                                    "eval_test.json"]
    assert len(list(tmp_path.iterdir())) == 4  # checking removes nothing
    remove_run_files(stale)
    remove_run_files(stale)  # already gone is fine
    assert list(tmp_path.iterdir()) == []


def test_folder_outputs(tmp_path):
    """A pattern ending in / names a folder the run owns: it counts as the run's, and overwrite removes it."""
    outputs = OUTPUTS + ("trials/",)
    (tmp_path / "config.yaml").write_text("x")
    (tmp_path / "trials" / "0").mkdir(parents=True)
    (tmp_path / "trials" / "0" / "checkpoint.pt").write_text("x")
    with pytest.raises(ValueError, match="already holds a run"):
        check_run_dir(tmp_path, outputs)
    stale = check_run_dir(tmp_path, outputs, overwrite=True)
    assert sorted(path.name for path in stale) == ["config.yaml", "trials"]
    remove_run_files(stale)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "trials").write_text("a file, not the run's folder")
    with pytest.raises(ValueError, match="holds no run"):
        check_run_dir(tmp_path, outputs, overwrite=True)
    (tmp_path / "trials").unlink()
    (tmp_path / "config.yaml").mkdir()  # a folder where the run writes a file is not the run's
    with pytest.raises(ValueError, match="holds no run"):
        check_run_dir(tmp_path, outputs, overwrite=True)


def test_exception(tmp_path):
    (tmp_path / "config.yaml").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "figures").mkdir()
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="figures/, notes.txt") as error:
            check_run_dir(tmp_path, OUTPUTS, overwrite=overwrite)
        assert str(tmp_path) in str(error.value)
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(ValueError, match="holds no run"):
        check_run_dir(tmp_path, OUTPUTS, overwrite=True)
    with pytest.raises(ValueError, match="not both"):
        check_run_dir(tmp_path, OUTPUTS, resume=True, overwrite=True)
    with pytest.raises(ValueError, match="is a file"):
        check_run_dir(tmp_path / "notes.txt", OUTPUTS)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figures", "notes.txt"]


def test_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_path("data/x") == str(tmp_path / "data" / "x")
    assert absolute_path(tmp_path / "y") == str(tmp_path / "y")
    assert absolute_path("~") == os.path.expanduser("~")
    assert absolute_path(None) is None and absolute_path("") == ""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "data", target_is_directory=True)
    assert absolute_path("link") == str(link)  # links are kept, not resolved


def test_recorded_path(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    assert recorded_path(str(tmp_path / "data")) == str(tmp_path / "data")
    assert recorded_path(str(tmp_path / "gone"), "..") == str(tmp_path)  # the override, from the cwd
    assert recorded_path(None) is None
    with pytest.raises(FileNotFoundError, match=r"gone \(recorded in run/config.yaml\).*--metadata"):
        recorded_path(str(tmp_path / "gone"), source="run/config.yaml", flag="--metadata")
