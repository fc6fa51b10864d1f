"""Running trials: the loop that the processes sharing a study run, and resumption after a kill.

Each process runs trials until the study has ``options.trials`` finished ones. Before each trial it
takes the storage's lock (:func:`wsl.tuning.storage.study_lock`), fails the trials of dead processes and
queues their recorded settings again (:func:`recover`), counts, and starts one trial; the lock is
released as soon as the trial exists, so the other processes count it. A trial that still finds the
study full (possible only without a lock, on a server database) is marked ``surplus`` and not run.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

from wsl.tuning.options import TuneOptions
from wsl.tuning.report import step_text
from wsl.tuning.space import format_value
from wsl.tuning.storage import load_or_create_study, open_storage, study_lock
from wsl.tuning.task import TuneTask
from wsl.utils.errors import TrainingDiverged
from wsl.utils.lock import FileLock

__all__ = ["TRIALS_DIR", "PRUNE_PERCENTILE", "PRUNE_STARTUP_TRIALS", "TrialRunner", "recover", "trial_counts",
           "sampler_and_pruner", "run_worker_process"]

TRIALS_DIR = "trials"
PRUNE_PERCENTILE = 25.0
PRUNE_STARTUP_TRIALS = 4
_HOST = socket.gethostname()
_ALIVE = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


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


def trial_counts(trials) -> Dict[str, int]:
    """``{"finished", "running", "waiting"}``: how many trials are complete or pruned, running, queued."""
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


def recover(study, storage, target: int, out: Path) -> None:
    """Fail the running trials of dead processes; queue the settings of interrupted trials again.

    A running trial of a process on this machine whose process id is gone is failed at once; one of
    another machine once its heartbeat is older than the grace period. Each interrupted trial (failed,
    not by an error) is queued again with its recorded settings while the study has room for it
    (``retry_of`` names it), and the work folders of trials that no longer run are removed.

    Args:
        study: the study, loaded from ``storage`` (an Optuna ``BaseStorage``).
        target: the number of finished trials the study is to have.
        out: the output folder (its ``trials/`` work folders).
    """
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # dead processes elsewhere (heartbeat)
    trials = study.get_trials(deepcopy=False)
    study_id = None
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state == TrialState.RUNNING and attrs.get("host") == _HOST and "pid" in attrs:
            pid = int(attrs["pid"])
            if pid != os.getpid() and not _pid_alive(pid):
                if study_id is None:
                    study_id = storage.get_study_id_from_name(study.study_name)
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    interrupted = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried
                   and not ({"error", "surplus"} & set(t.user_attrs))]
    counts = trial_counts(trials)
    room = target - counts["finished"] - counts["running"] - counts["waiting"]
    for trial in interrupted[:max(0, room)]:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    folder = out / TRIALS_DIR
    if folder.is_dir():  # work folders of trials that no longer run (an interrupted process's)
        running = {str(t.number) for t in trials if t.state == TrialState.RUNNING}
        for path in folder.iterdir():
            if path.name not in running and path.name != "baseline":
                shutil.rmtree(path, ignore_errors=True)


def duration_text(seconds: float) -> str:
    """``42 s``, ``12 min`` or ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def settings_text(settings: Mapping[str, Any]) -> str:
    """``name value, name value``."""
    return ", ".join(f"{name} {format_value(value)}" for name, value in settings.items())


class TrialRunner:
    """One process's share of a study: the trial loop, progress lines, recovery.

    Args:
        task: what a trial trains and scores.
        study: the study, loaded from ``storage``.
        storage: the Optuna storage (:func:`wsl.tuning.storage.open_storage`).
        options: ``trials``, ``timeout``, ``prune``, ``echo``.
        out: the output folder (trial work folders in ``out/trials``).
        lock: the storage's lock (:func:`wsl.tuning.storage.study_lock`).
        prefix: put before each progress line (which process it comes from).
    """

    def __init__(self, task: TuneTask, study, storage, options: TuneOptions, out: Path, lock: FileLock,
                 prefix: str = "") -> None:
        self.task = task
        self.study = study
        self.storage = storage
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
        trial.set_user_attr("settings", plain(evaluation.settings))
        trial.set_user_attr("per_seed", evaluation.per_seed)
        return evaluation.score

    def progress(self, trial) -> None:
        trials = self.study.get_trials(deepcopy=False)
        counts = trial_counts(trials)
        task, scale, unit = self.task, self.task.scale, self.task.unit
        state = trial.state.name
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else 0.0
        if state == "COMPLETE":
            what = (f"trial {trial.number}: {scale * trial.value:.1f}{unit} "
                    f"({settings_text(task.space.decode(trial.params) | trial.user_attrs.get('settings', {}))})")
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
        left_text = "" if math.isnan(left) or remaining == 0 else f", about {duration_text(left)} left"
        self.echo(f"{what} in {duration_text(seconds)} | {counts['finished']}/{self.options.trials} trials done, "
                  f"{best_text}{left_text}")

    def run(self) -> int:
        """Run trials until the study has ``options.trials`` finished ones or the timeout passes."""
        last: list = []
        while True:
            if self.options.timeout is not None and time.time() - self.started >= self.options.timeout:
                self.echo(f"timeout of {duration_text(self.options.timeout)} reached: no new trial started")
                break
            self.lock.acquire()
            try:
                recover(self.study, self.storage, self.options.trials, self.out)
                counts = trial_counts(self.study.get_trials(deepcopy=False))
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


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and tuples as lists (for YAML and user attributes)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def sampler_and_pruner(task: TuneTask, options: TuneOptions):
    """The per-trial seeded TPE sampler and the percentile pruner (or none) of a study."""
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
    sampler, pruner = sampler_and_pruner(task, options)
    study = load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
    lock = study_lock(url)
    return TrialRunner(task, study, storage, options, Path(options.out), lock, prefix=f"[process {index}] ").run()


def run_worker_process(factory, kwargs, options, url, name, index, errors) -> None:
    """A process started by ``jobs``: bad input goes back to the parent as one line."""
    import sys

    try:
        _worker_process(factory, kwargs, options, url, name, index)
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        errors.put(str(error))
        sys.exit(2)


