"""Running a tuning study: storage, protocol, the trial loop that several processes share, outputs.

:func:`run_study` drives a :class:`TuneTask` (what a trial trains and how it is scored, given by
``wsl_video.tune`` and ``wsl_image.tune``) with Optuna:

* the study lives in an RDB storage (default ``sqlite:///OUT/study.db``); any number of processes,
  on one machine or several, may work on it, and a second run pointed at it continues it;
* ``trials`` is the size of the whole study: every process stops once the study has that many
  finished trials. On SQLite a lock file next to the database makes "count, then start a trial"
  atomic, so parallel processes never run more trials than asked;
* a trial whose process died (killed, machine lost) is marked failed, by its process id on the same
  machine or by Optuna's heartbeat elsewhere, and its settings are queued again, so an interrupted
  study resumes with the right number of trials;
* the TPE sampler is seeded per trial (:class:`~wsl.tuning.sampler.TrialSeededTPESampler`) and a
  percentile pruner stops trials whose intermediate held-out scores are in the worst quarter;
* each process writes ``best.yaml``, ``trials.csv`` and ``study.png`` when it stops (the last one to
  stop writes the complete study).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from wsl.tuning.report import step_text
from wsl.tuning.space import SearchSpace, format_value
from wsl.utils.errors import TrainingDiverged

__all__ = ["Evaluation", "TuneTask", "TuneOptions", "run_study", "STUDY_FILE", "BEST_FILE",
           "TRIALS_FILE", "PLOT_FILE", "TUNE_OUTPUTS", "open_storage"]

STUDY_FILE = "study.yaml"
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
PLOT_FILE = "study.png"
DEFAULT_DB = "study.db"
TRIALS_DIR = "trials"
TUNE_OUTPUTS = (BEST_FILE, TRIALS_FILE, PLOT_FILE, STUDY_FILE, DEFAULT_DB, f"{DEFAULT_DB}-journal",
                f"{DEFAULT_DB}-wal", f"{DEFAULT_DB}-shm", f"{DEFAULT_DB}.lock", f"{TRIALS_DIR}/")
HEARTBEAT_S = 30
GRACE_S = 120
PRUNE_PERCENTILE = 25.0
PRUNE_STARTUP_TRIALS = 4
_HOST = socket.gethostname()
_ALIVE = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


@dataclass
class Evaluation:
    """The outcome of one setting.

    Attributes:
        score: the held-out score of the best read-off settings (the trial's value).
        settings: those read-off settings (checkpoint and inference), name -> value.
        profile: every scored combination, ``[[settings, score], ...]`` (scores averaged over seeds).
        per_seed: the score of each seed at the best settings.
    """

    score: float
    settings: Dict[str, Any]
    profile: List[list]
    per_seed: List[float] = field(default_factory=list)


class TuneTask:
    """What a study tunes. Subclasses set the attributes and implement the methods below."""

    command: str = "tune"  # the command that runs it, for messages and best.yaml
    metric: str = "held-out score"  # label of the score
    metric_key: str = "score"  # column name in trials.csv
    scale: float = 1.0  # display factor (100 for fractions shown in %)
    unit: str = ""
    noun: str = "sample"
    space: SearchSpace
    study_name: str = "study"

    def protocol(self) -> Dict[str, Any]:
        """Everything that must agree between processes working on one study (JSON-able)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line about the data: fit and held-out sizes, seeds."""
        raise NotImplementedError

    def base_settings(self) -> Tuple[Dict[str, Any], List[int], List[Dict[str, Any]]]:
        """The base configuration as (train settings, checkpoints, inference grid), for ``baseline``."""
        raise NotImplementedError

    def evaluate(self, params: Dict[str, Any], checkpoints: Sequence[int], grid: Sequence[Dict[str, Any]],
                 work_dir: Path, report: Callable[[int, float, list], None] | None = None) -> Evaluation:
        """Train with ``params`` (in ``work_dir``) and score the held-out samples.

        ``report(step, best score at this step, profile so far)`` is called at every intermediate score;
        it raises ``optuna.TrialPruned`` to stop a hopeless trial.
        """
        raise NotImplementedError

    def pruner_warmup(self) -> int:
        """Steps before which no trial is pruned."""
        return 0

    def best_config_text(self, settings: Dict[str, Any], header: Sequence[str]) -> str:
        """``best.yaml``: a config for ``train --config`` with ``settings``, ``header`` lines as comments."""
        raise NotImplementedError

    def worker(self) -> Tuple[Callable[..., TuneTask], Dict[str, Any]]:
        """``(factory, kwargs)`` that rebuild this task in another process (picklable)."""
        raise NotImplementedError


@dataclass
class TuneOptions:
    """How to run a study (see ``docs/tuning.md``)."""

    out: str | Path
    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    sampler_seed: int = 0
    prune: bool = True
    jobs: int = 1
    overwrite: bool = False
    baseline: bool = False
    echo: Callable[[str], None] | None = print


# ---------------------------------------------------------------------------- storage
def _sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (absolute), None for other URLs."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError(f"cannot open the study storage {url}: an in-memory SQLite database cannot be shared; "
                         "name a file, e.g. sqlite:///study.db")
    return Path(os.path.abspath(os.path.expanduser(parsed.database)))


def _check_url(url: str) -> Path | None:
    try:
        return _sqlite_path(url)
    except ValueError:
        raise
    except Exception as error:  # sqlalchemy.exc.ArgumentError and friends
        raise ValueError(f"cannot open the study storage {url!r}: not a database URL ({error})") from None


def open_storage(url: str):
    """An Optuna RDB storage with heartbeats; ``ValueError`` naming the URL when it cannot be opened."""
    import optuna

    kwargs: Dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 300}}  # wait for the other processes' writes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot open the study storage {url}: {text}") from None


class _FileLock:
    """An exclusive ``flock`` on a file (no-op where ``fcntl`` is missing); ``release`` may be called twice."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handle = None

    def acquire(self) -> None:
        if self.path is None or self._handle is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        self._handle = open(self.path, "a+")  # noqa: SIM115 - held until release
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is None:
            return
        import fcntl

        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> _FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------- protocol
def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{prefix}{key}"
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".") or "protocol"


def _load_or_create_study(storage, name: str, protocol: Dict[str, Any], sampler, pruner, url: str):
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {name!r} in {url} minimizes its objective: it was not created by tune")
    recorded = study.user_attrs.get("protocol")
    if recorded is None:
        study.set_user_attr("protocol", protocol)
    else:
        difference = _first_difference(recorded, protocol)
        if difference is not None:
            def show(values):
                value = values
                for part in difference.split("."):
                    value = value.get(part, "(absent)") if isinstance(value, Mapping) else value
                return value

            raise ValueError(
                f"study {name!r} in {url} was run with another setup ({difference}: {show(recorded)!r} there, "
                f"{show(protocol)!r} here); give another --study-name or --storage to start a new study")
    return study


# ---------------------------------------------------------------------------- the loop
class _Surplus(Exception):
    """The study already had its trials when this one started (only without a lock, several machines)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _counts(trials) -> Dict[str, int]:
    counts = {"finished": 0, "running": 0, "waiting": 0}
    for trial in trials:
        state = trial.state.name
        if state in ("COMPLETE", "PRUNED"):
            counts["finished"] += 1
        elif state == "RUNNING":
            counts["running"] += 1
        elif state == "WAITING":
            counts["waiting"] += 1
    return counts


def _recover(study, target: int, out: Path) -> None:
    """Fail the running trials of dead processes on this machine; queue interrupted trials again."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # dead processes elsewhere (heartbeat)
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state == TrialState.RUNNING and attrs.get("host") == _HOST and "pid" in attrs:
            pid = int(attrs["pid"])
            if pid != os.getpid() and not _pid_alive(pid):
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    interrupted = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried
                   and not ({"error", "surplus"} & set(t.user_attrs))]
    counts = _counts(trials)
    room = target - counts["finished"] - counts["running"] - counts["waiting"]
    for trial in interrupted[:max(0, room)]:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    folder = out / TRIALS_DIR
    if folder.is_dir():  # work folders of trials that no longer run (an interrupted process's)
        running = {str(t.number) for t in trials if t.state == TrialState.RUNNING}
        for path in folder.iterdir():
            if path.name not in running and path.name != "baseline":
                shutil.rmtree(path, ignore_errors=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {format_value(value)}" for name, value in settings.items())


class _Worker:
    """One process's share of a study: the trial loop, progress lines, recovery."""

    def __init__(self, task: TuneTask, study, options: TuneOptions, out: Path, lock: _FileLock,
                 prefix: str = "") -> None:
        self.task = task
        self.study = study
        self.options = options
        self.out = out
        self.lock = lock
        self.prefix = prefix
        self.started = time.time()
        self.checkpoints = task.space.checkpoints(task.base_settings()[1][-1])
        self.grid = task.space.grid()
        self.ran = 0

    def echo(self, message: str) -> None:
        if self.options.echo is not None:
            self.options.echo(self.prefix + message)

    def objective(self, trial) -> float:
        import optuna

        self.lock.release()  # the trial exists: other processes may count it now
        trial.set_user_attr("host", _HOST)
        trial.set_user_attr("pid", os.getpid())
        alive = sorted(t.number for t in self.study.get_trials(deepcopy=False)
                       if t.state.name in _ALIVE)
        if trial.number in alive and alive.index(trial.number) >= self.options.trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus()
        params = self.task.space.suggest(trial)
        work = self.out / TRIALS_DIR / str(trial.number)

        def report(step: int, value: float, profile: list) -> None:
            trial.set_user_attr("profile", profile)
            trial.report(value, step)
            if self.options.prune and trial.should_prune():
                raise optuna.TrialPruned(f"held-out score {value:.4g} at step {step} is in the worst quarter")

        try:
            evaluation = self.task.evaluate(params, self.checkpoints, self.grid, work, report)
        except TrainingDiverged as error:  # a hopeless setting, not an error
            trial.set_user_attr("diverged", str(error))
            raise optuna.TrialPruned(str(error)) from None
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as error:
            trial.set_user_attr("error", str(error))
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        trial.set_user_attr("profile", evaluation.profile)
        trial.set_user_attr("settings", _plain(evaluation.settings))
        trial.set_user_attr("per_seed", evaluation.per_seed)
        return evaluation.score

    def progress(self, trial) -> None:
        trials = self.study.get_trials(deepcopy=False)
        counts = _counts(trials)
        task, scale, unit = self.task, self.task.scale, self.task.unit
        state = trial.state.name
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else 0.0
        if state == "COMPLETE":
            what = (f"trial {trial.number}: {scale * trial.value:.1f}{unit} "
                    f"({_settings_text(task.space.decode(trial.params) | trial.user_attrs.get('settings', {}))})")
        elif state == "PRUNED":
            where = " " + step_text(trial.last_step, task.space) if trial.last_step is not None else ""
            reason = " (diverged)" if "diverged" in trial.user_attrs else ""
            what = f"trial {trial.number}: pruned{where}{reason}"
        elif "surplus" in trial.user_attrs:
            what = f"trial {trial.number}: not run, the study already had {self.options.trials} trials"
        else:
            what = f"trial {trial.number}: {state.lower()}"
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        best = max(complete, key=lambda t: t.value) if complete else None
        best_text = f"best {scale * best.value:.1f}{unit} (trial {best.number})" if best else "no complete trial yet"
        durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                     if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete and t.datetime_start]
        remaining = max(0, self.options.trials - counts["finished"])
        workers = len({(t.user_attrs.get("host"), t.user_attrs.get("pid")) for t in trials
                       if t.state.name == "RUNNING"} | {(_HOST, os.getpid())})
        left = remaining * (sum(durations) / len(durations)) / workers if durations else math.nan
        if self.options.timeout is not None:
            left = min(left, max(0.0, self.options.timeout - (time.time() - self.started))) \
                if not math.isnan(left) else max(0.0, self.options.timeout - (time.time() - self.started))
        left_text = "" if math.isnan(left) or remaining == 0 else f", about {_duration(left)} left"
        self.echo(f"{what} in {_duration(seconds)} | {counts['finished']}/{self.options.trials} trials done, "
                  f"{best_text}{left_text}")

    def run(self) -> int:
        """Run trials until the study has ``options.trials`` finished ones or the timeout passes."""
        last: list = []
        while True:
            if self.options.timeout is not None and time.time() - self.started >= self.options.timeout:
                self.echo(f"timeout of {_duration(self.options.timeout)} reached: no new trial started")
                break
            self.lock.acquire()
            try:
                _recover(self.study, self.options.trials, self.out)
                counts = _counts(self.study.get_trials(deepcopy=False))
                if counts["finished"] + counts["running"] >= self.options.trials:
                    break
                last.clear()
                self.study.optimize(self.objective, n_trials=1, catch=(_Surplus,),
                                    callbacks=[lambda study, trial: last.append(trial)])
            finally:
                self.lock.release()
            self.ran += 1
            if last:
                self.progress(last[0])
                if "surplus" in last[0].user_attrs:
                    break
        return self.ran


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _sampler_and_pruner(task: TuneTask, options: TuneOptions):
    import optuna

    from wsl.tuning.sampler import TrialSeededTPESampler

    sampler = TrialSeededTPESampler(options.sampler_seed, n_startup_trials=max(4, min(10, options.trials // 4)))
    pruner = (optuna.pruners.PercentilePruner(PRUNE_PERCENTILE, n_startup_trials=PRUNE_STARTUP_TRIALS,
                                              n_warmup_steps=task.pruner_warmup())
              if options.prune else optuna.pruners.NopPruner())
    return sampler, pruner


def _worker_process(factory: Callable[..., TuneTask], kwargs: Dict[str, Any], options: Dict[str, Any],
                    url: str, name: str, index: int) -> int:
    """Entry point of the extra processes of ``jobs``: rebuild the task, join the study, run trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = factory(**kwargs)
    options = TuneOptions(**options)
    storage = open_storage(url)
    sampler, pruner = _sampler_and_pruner(task, options)
    study = _load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
    lock = _FileLock(_lock_path(url))
    return _Worker(task, study, options, Path(options.out), lock, prefix=f"[process {index}] ").run()


def _worker_main(factory, kwargs, options, url, name, index, errors) -> None:
    """A process started by ``jobs``: bad input goes back to the parent as one line."""
    import sys

    try:
        _worker_process(factory, kwargs, options, url, name, index)
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        errors.put(str(error))
        sys.exit(2)


def _lock_path(url: str) -> Path | None:
    path = _sqlite_path(url)
    return None if path is None else path.with_name(path.name + ".lock")


# ---------------------------------------------------------------------------- outputs
def write_outputs(task: TuneTask, study, out: Path, url: str, name: str) -> Dict[str, Any]:
    """``best.yaml`` (when a trial completed), ``trials.csv`` and ``study.png``; returns a summary."""
    from wsl.tuning.report import plot_study, write_trials_csv

    trials = study.get_trials(deepcopy=False)
    write_trials_csv(out / TRIALS_FILE, trials, task.space, task.metric_key)
    baseline = study.user_attrs.get("baseline")
    counts = _counts(trials)
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
        "settings: " + _settings_text(settings),
    ]
    if baseline is not None:
        header.append(f"base settings on the same held-out samples: {scale * baseline['score']:.2f}{unit}")
    from wsl.utils.io import atomic_write_text

    atomic_write_text(out / BEST_FILE, task.best_config_text(settings, header))
    summary.update(best_trial=best.number, best_score=float(best.value), best_settings=_plain(settings),
                   per_seed=per_seed)
    return summary


# ---------------------------------------------------------------------------- entry point
def _read_record(out: Path) -> Dict[str, Any] | None:
    from wsl.utils.io import read_yaml

    path = out / STUDY_FILE
    if not path.is_file():
        return None
    try:
        record = read_yaml(path)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _check_out(out: Path, url: str, name: str, overwrite: bool, database: Path | None) -> Tuple[bool, List[Path]]:
    """``(continuing, files to remove)``: refuse a folder with another study's outputs or foreign files."""
    from wsl.utils.runs import check_run_dir

    patterns = TUNE_OUTPUTS
    if database is not None and database.parent == out:  # a SQLite storage kept in the folder is its own
        patterns += tuple(database.name + suffix for suffix in ("", "-journal", "-wal", "-shm", ".lock"))
    outputs = check_run_dir(out, patterns, overwrite=True)  # raises on files that are not tune's
    if not outputs:
        return False, []
    record = _read_record(out)
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


def run_study(task: TuneTask, options: TuneOptions) -> Dict[str, Any]:
    """Run (or continue) the study of ``task`` in ``options.out``; returns a summary of the outputs.

    Raises:
        ValueError: bad options, an unusable storage URL, a study of the same name set up differently,
            or an output folder holding another study's outputs or unrelated files. Nothing is written
            when the input is bad.
    """
    import optuna

    from wsl.utils.io import atomic_write_text
    from wsl.utils.runs import absolute_path, remove_run_files

    if not isinstance(options.trials, int) or options.trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {options.trials!r}")
    if options.timeout is not None and not options.timeout > 0:
        raise ValueError(f"--timeout must be positive (seconds), got {options.timeout!r}")
    if not isinstance(options.jobs, int) or options.jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {options.jobs!r}")
    out = Path(absolute_path(options.out))
    url = options.storage or f"sqlite:///{out / DEFAULT_DB}"
    name = options.study_name or task.study_name
    db_path = _check_url(url)
    continuing, stale = _check_out(out, url, name, options.overwrite, db_path)
    inside = db_path is not None and db_path.parent == out
    if db_path is not None and not inside and not db_path.parent.is_dir():
        raise ValueError(f"cannot open the study storage {url}: folder {db_path.parent} not found")
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    record = (f"# written by {task.command}; run it again with the same storage and study name to continue "
              f"the study\ncommand: {task.command}\nstorage: '{url}'\nstudy: '{name}'\n")
    lock = _FileLock(_lock_path(url))
    created_out = not out.exists()
    try:
        sampler, pruner = _sampler_and_pruner(task, options)
        if not inside:  # an outside storage is checked before anything is written here
            with lock:
                storage = open_storage(url)
                study = _load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
            remove_run_files(stale)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / STUDY_FILE, record)
        else:  # the record first, so that a process joining this folder sees whose outputs it holds
            remove_run_files(stale)
            out.mkdir(parents=True, exist_ok=True)
            had_record = (out / STUDY_FILE).is_file()
            atomic_write_text(out / STUDY_FILE, record)
            try:
                with lock:
                    storage = open_storage(url)
                    study = _load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
            except ValueError:
                if created_out:
                    shutil.rmtree(out, ignore_errors=True)
                elif not had_record:
                    (out / STUDY_FILE).unlink(missing_ok=True)
                raise
        worker = _Worker(task, study, options, out, lock)
        trials = study.get_trials(deepcopy=False)
        counts = _counts(trials)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        best = max(complete, key=lambda t: t.value) if complete else None
        worker.echo(f"study '{name}' in {url}: {'continuing, ' if trials else ''}{counts['finished']}/"
                    f"{options.trials} trials done"
                    + (f", best {task.scale * best.value:.1f}{task.unit} (trial {best.number})" if best else "")
                    + f"; {task.describe()}")
        for line in task.space.describe():
            worker.echo(f"  {line}")
        if options.baseline and "baseline" not in study.user_attrs:
            params, checkpoints, grid = task.base_settings()
            evaluation = task.evaluate(params, checkpoints, grid, out / TRIALS_DIR / "baseline")
            shutil.rmtree(out / TRIALS_DIR / "baseline", ignore_errors=True)
            study.set_user_attr("baseline", {"score": evaluation.score, "settings": _plain(evaluation.settings),
                                             "per_seed": evaluation.per_seed})
            worker.echo(f"base settings: {task.scale * evaluation.score:.1f}{task.unit} "
                        f"({_settings_text(params | evaluation.settings)})")
        processes: list = []
        try:
            if options.jobs > 1:
                import multiprocessing

                context = multiprocessing.get_context("spawn")
                errors = context.SimpleQueue()
                factory, kwargs = task.worker()
                plain = {k: v for k, v in vars(options).items() if k != "echo"} | {"jobs": 1, "out": str(out)}
                plain["echo"] = print if options.echo is not None else None
                for index in range(options.jobs - 1):
                    process = context.Process(target=_worker_main, name=f"tune-process-{index + 2}",
                                              args=(factory, kwargs, plain, url, name, index + 2, errors))
                    process.start()
                    processes.append(process)
            worker.run()
            for process in processes:
                process.join()
            failed = [p for p in processes if p.exitcode != 0]
            if failed:
                message = errors.get() if not errors.empty() else f"exit status {failed[0].exitcode}"
                raise ValueError(f"{failed[0].name}: {message}")
        except BaseException:
            for process in processes:  # stop the other processes of this command; their trials run again later
                if process.is_alive():
                    process.terminate()
            raise
        finally:
            for process in processes:
                process.join()
            with lock:
                if processes:
                    _recover(study, options.trials, out)
                summary = write_outputs(task, study, out, url, name)
        summary["continued"] = continuing
        return summary
    finally:
        optuna.logging.set_verbosity(previous_verbosity)


def protocol_hash(values: Any) -> str:
    """A short stable digest of a JSON-able value (held-out lists in the protocol)."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:12]
