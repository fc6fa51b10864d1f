"""Run folders: never mix two runs in one folder, and record paths that work from any directory.

A training command writes a run folder (``config.yaml``, ``checkpoint.pt``, ``train.log``, metrics,
...). :func:`check_run_dir` decides whether a run may start in a folder; :func:`absolute_path` and
:func:`recorded_path` make the paths a run records usable from another working directory or, with
an override flag, on another machine.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path
from typing import Iterable, List, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["absolute_path", "recorded_path", "check_run_dir", "remove_run_files"]


def absolute_path(path: PathLike | None) -> str | None:
    """``path`` as an absolute path (``~`` expanded, relative to the working directory).

    ``None`` and ``""`` (no path) are returned unchanged. Symbolic links are kept, not resolved.
    """
    if path is None or str(path) == "":
        return None if path is None else ""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def recorded_path(recorded: PathLike | None, override: PathLike | None = None, *, source: PathLike = "the run",
                  flag: str = "--data-root") -> str | None:
    """The path a command should use: ``override`` when given, else the one the run recorded.

    ``override`` (a flag given now) is taken relative to the working directory. A recorded path
    must exist: a run copied from another machine gets an error that names the path and ``flag``.

    Raises:
        FileNotFoundError: the recorded path does not exist here.
    """
    if override is not None and str(override) != "":
        return absolute_path(override)
    if recorded is None or str(recorded) == "":
        return None if recorded is None else ""
    path = absolute_path(recorded)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} (recorded in {source}) not found; pass {flag} to say where it is now")
    return path


def _is_output(path: Path, outputs: Iterable[str]) -> bool:
    """``path`` matches a file pattern of ``outputs`` (or a folder pattern, written with a trailing ``/``)."""
    name = path.name
    for pattern in outputs:
        if pattern.endswith("/"):
            if path.is_dir() and fnmatch.fnmatch(name, pattern[:-1]):
                return True
            continue
        # the temporary file an interrupted atomic write leaves is the run's too
        if path.is_file() and (fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name, f".{pattern}.*.tmp")):
            return True
    return False


def _names(paths: List[Path], limit: int = 4) -> str:
    names = sorted(path.name + ("/" if path.is_dir() else "") for path in paths)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_run_dir(out: PathLike, outputs: Iterable[str], *, resume: bool = False,
                  overwrite: bool = False) -> List[Path]:
    """Refuse to start a run in a folder that holds another run or unrelated files.

    Args:
        out: the run folder (it need not exist).
        outputs: file-name patterns (``fnmatch``) of everything a run writes in its folder; a pattern
            ending in ``/`` names a folder the run owns (removed with everything in it by ``overwrite``).
        resume: the run continues from the folder's own checkpoint (no check here).
        overwrite: replace the run in ``out``.

    Returns:
        The files of the old run that ``overwrite`` replaces; remove them (:func:`remove_run_files`)
        right before the new run writes its first file, so the folder never mixes two runs.

    Raises:
        ValueError: ``out`` already holds a run (and not ``overwrite``), holds files that are not a
            run's outputs (whatever ``overwrite`` says: only a run's own files are ever removed), is a
            file, or both ``resume`` and ``overwrite`` are set. The message names the folder.
    """
    out = Path(out)
    outputs = tuple(outputs)
    if resume and overwrite:
        raise ValueError(f"{out}: choose --resume (continue the run) or --overwrite (replace it), not both")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a run folder")
    if resume or not out.is_dir():
        return []
    entries = list(out.iterdir())
    run_files = [path for path in entries if _is_output(path, outputs)]
    others = [path for path in entries if path not in run_files]
    if others:
        if run_files:
            raise ValueError(f"{out} holds a run and files that are not its outputs ({_names(others)}); move them "
                             "or choose a new or empty folder (--overwrite removes only a run's own files)")
        raise ValueError(f"{out} is not empty and holds no run ({_names(others)}): choose a new or empty folder")
    if run_files and not overwrite:
        raise ValueError(f"{out} already holds a run ({_names(run_files)}): use --resume to continue it or "
                         "--overwrite to replace it")
    return run_files


def remove_run_files(paths: Iterable[PathLike]) -> None:
    """Delete the old run's files (and folders) that :func:`check_run_dir` returned (already gone is fine)."""
    for path in paths:
        path = Path(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
