"""Run folders: never mix two runs in one folder, and record paths that work from any directory.

A training command writes a run folder (``config.yaml``, ``checkpoint.pt``, ``train.log``, metrics,
...). :class:`RunFolder` is that folder for both tools: its file names, its log (:class:`RunLog`), its
checkpoint (written atomically, read with ``weights_only=True``) and the check that decides whether a run
may start in it (:func:`check_run_dir`). :func:`absolute_path` and :func:`recorded_path` make the paths a
run records usable from another working directory or, with an override flag, on another machine.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, List, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["absolute_path", "recorded_path", "check_run_dir", "remove_run_files", "RunFolder", "RunLog"]


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


class RunLog:
    """``train.log``: one time-stamped line per message, the file rewritten atomically on every line (it is small).

    Args:
        path: the log file.
        echo: also called with every message (printing), or None.
        append: keep the lines the file already holds (a resumed run); otherwise start empty.
        separator: between the time stamp and the message.
    """

    def __init__(self, path: PathLike, echo: Callable[[str], None] | None = None, *, append: bool = False,
                 separator: str = " ") -> None:
        self.path = Path(path)
        self.lines: List[str] = (self.path.read_text(encoding="utf-8").splitlines()
                                 if append and self.path.is_file() else [])
        self.echo = echo
        self.separator = separator

    def __call__(self, message: str) -> None:
        from wsl.utils.io import atomic_write_text

        self.lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}{self.separator}{message}")
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")
        if self.echo is not None:
            self.echo(message)


class RunFolder:
    """The folder of one training run: its file names, log, checkpoint and the start checks.

    Args:
        path: the folder (it need not exist yet).
        outputs: file-name patterns of everything the run writes there (see :func:`check_run_dir`); the
            config, checkpoint, log and metrics files are always among them.
        log_separator: between time stamp and message in ``train.log``.

    A run starts with :meth:`check` (before anything is written: nothing is removed yet) and :meth:`start`
    (removes the old run's files that ``overwrite`` replaces and creates the folder).
    """

    CONFIG = "config.yaml"
    CHECKPOINT = "checkpoint.pt"
    LOG = "train.log"
    METRICS = "metrics.json"

    def __init__(self, path: PathLike, outputs: Sequence[str] = (), *, log_separator: str = " ") -> None:
        self.path = Path(path)
        own = (self.CONFIG, self.CHECKPOINT, self.LOG, self.METRICS)
        self.outputs = own + tuple(name for name in outputs if name not in own)
        self.log_separator = log_separator

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of the run's file ``name``."""
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint_path(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    def check(self, *, resume: bool = False, overwrite: bool = False) -> List[Path]:
        """Whether a run may start here (:func:`check_run_dir`); returns the old run's files to replace.

        Raises:
            ValueError: as :func:`check_run_dir`.
            FileNotFoundError: ``resume`` and the folder has no checkpoint.
        """
        stale = check_run_dir(self.path, self.outputs, resume=resume, overwrite=overwrite)
        if resume and not self.checkpoint_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {self.checkpoint_path}")
        return stale

    def start(self, stale: Iterable[PathLike] = ()) -> None:
        """Remove ``stale`` (what :meth:`check` returned) and create the folder: the run writes from here on."""
        remove_run_files(stale)
        self.path.mkdir(parents=True, exist_ok=True)

    def require(self, *names: str) -> None:
        """Raise ``FileNotFoundError`` naming the folder or the first of ``names`` it lacks."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory not found: {self.path}")
        for name in names:
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"{self.path / name} is missing: not a trained run directory")

    def log(self, echo: Callable[[str], None] | None = None, *, append: bool = False) -> RunLog:
        """The run's :class:`RunLog` (``append``: keep the earlier lines of a resumed run)."""
        return RunLog(self.log_path, echo, append=append, separator=self.log_separator)

    def save_checkpoint(self, state: Any) -> None:
        """Write ``checkpoint.pt`` atomically (the file is always either the old or the new checkpoint)."""
        from wsl.utils.io import atomic_save

        atomic_save(state, self.checkpoint_path)

    def load_checkpoint(self, map_location: Any = "cpu") -> Any:
        """Read ``checkpoint.pt`` with ``weights_only=True`` (:func:`wsl.utils.io.load_checkpoint`)."""
        from wsl.utils.io import load_checkpoint

        return load_checkpoint(self.checkpoint_path, map_location=map_location)

    def write_json(self, name: str, value: Any) -> None:
        """Write ``value`` as the run's JSON file ``name`` atomically."""
        from wsl.utils.io import atomic_write_json

        atomic_write_json(self.path / name, value)
