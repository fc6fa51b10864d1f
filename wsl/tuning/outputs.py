"""What a study leaves in its output folder: ``best.yaml``, ``trials.csv``, ``study.png``, ``study.yaml``.

The folder follows the run-folder rules (:func:`wsl.utils.runs.check_run_dir`): it may hold only a
study's outputs, and those of another study are replaced only with ``overwrite``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

from wsl.tuning.task import TuneTask
from wsl.tuning.trials import TRIALS_DIR, plain, settings_text, trial_counts

__all__ = ["STUDY_FILE", "BEST_FILE", "TRIALS_FILE", "PLOT_FILE", "DEFAULT_DB", "TUNE_OUTPUTS", "write_outputs",
           "read_record", "check_out"]

STUDY_FILE = "study.yaml"
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
PLOT_FILE = "study.png"
DEFAULT_DB = "study.db"
TUNE_OUTPUTS = (BEST_FILE, TRIALS_FILE, PLOT_FILE, STUDY_FILE, DEFAULT_DB, f"{DEFAULT_DB}-journal",
                f"{DEFAULT_DB}-wal", f"{DEFAULT_DB}-shm", f"{DEFAULT_DB}.lock", f"{TRIALS_DIR}/")


def write_outputs(task: TuneTask, study, out: Path, url: str, name: str) -> Dict[str, Any]:
    """``best.yaml`` (when a trial completed), ``trials.csv`` and ``study.png``; returns a summary."""
    from wsl.tuning.report import plot_study, write_trials_csv

    trials = study.get_trials(deepcopy=False)
    write_trials_csv(out / TRIALS_FILE, trials, task.space, task.metric_key)
    baseline = study.user_attrs.get("baseline")
    counts = trial_counts(trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    summary: Dict[str, Any] = {"study": name, "storage": url, "finished": counts["finished"],
                               "complete": len(complete), "baseline": baseline}
    best = max(complete, key=lambda t: t.value) if complete else None
    scale, unit = task.scale, task.unit
    title = (f"study '{name}': {counts['finished']} finished trials, "
             + (f"best {scale * best.value:.1f}{unit} (trial {best.number})" if best else "none complete"))
    importances = plot_study(out / PLOT_FILE, trials, task.space, title=title, metric=task.metric, scale=scale,
                             unit=unit, baseline=None if baseline is None else baseline["score"])
    summary["importances"] = importances
    if best is None:
        (out / BEST_FILE).unlink(missing_ok=True)
        return summary
    settings = task.space.fixed("train") | task.space.decode(best.params) | best.user_attrs.get("settings", {})
    per_seed = best.user_attrs.get("per_seed") or []
    header = [
        f"chosen by {task.command}: trial {best.number} of study '{name}' ({url}), "
        f"{counts['finished']} finished trials",
        f"{task.metric}: {scale * best.value:.2f}{unit}"
        + (f" (per seed: {', '.join(f'{scale * v:.2f}' for v in per_seed)})" if len(per_seed) > 1 else ""),
        task.describe(),
        "settings: " + settings_text(settings),
    ]
    if baseline is not None:
        header.append(f"base settings on the same held-out samples: {scale * baseline['score']:.2f}{unit}")
    from wsl.utils.io import atomic_write_text

    atomic_write_text(out / BEST_FILE, task.best_config_text(settings, header))
    summary.update(best_trial=best.number, best_score=float(best.value), best_settings=plain(settings),
                   per_seed=per_seed)
    return summary


def read_record(out: Path) -> Dict[str, Any] | None:
    """The ``study.yaml`` of ``out`` (storage and study name), None when missing or unreadable."""
    from wsl.utils.io import read_yaml

    path = out / STUDY_FILE
    if not path.is_file():
        return None
    try:
        record = read_yaml(path)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def check_out(out: Path, url: str, name: str, overwrite: bool, database: Path | None) -> Tuple[bool, List[Path]]:
    """``(continuing, files to remove)``: refuse a folder with another study's outputs or foreign files.

    ``database``: the SQLite file of the storage; when it lies in ``out`` its companions are outputs too.
    """
    from wsl.utils.runs import check_run_dir

    patterns = TUNE_OUTPUTS
    if database is not None and database.parent == out:  # a SQLite storage kept in the folder is its own
        patterns += tuple(database.name + suffix for suffix in ("", "-journal", "-wal", "-shm", ".lock"))
    outputs = check_run_dir(out, patterns, overwrite=True)  # raises on files that are not tune's
    if not outputs:
        return False, []
    record = read_record(out)
    same = record is not None and record.get("storage") == url and record.get("study") == name
    if overwrite:
        return False, outputs
    if same:
        return True, []
    if record is None:
        held = "the outputs of a study"
    else:
        held = f"the outputs of study {record.get('study')!r} in {record.get('storage')}"
    raise ValueError(f"{out} holds {held}: give the same --storage and --study-name to continue it, "
                     "--overwrite to replace it, or choose a new folder")
