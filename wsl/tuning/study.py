"""The study driver: :func:`run_study` runs (or continues) the study of a :class:`TuneTask` with Optuna.

The task (what a trial trains and how it is scored) comes from ``wsl_video.tune`` or ``wsl_image.tune``;
:func:`tune` builds it from a :class:`TuneOptions` and runs its study. The concerns live apart:

* :mod:`wsl.tuning.storage`: the RDB storage (default ``sqlite:///OUT/study.db``) shared by any number
  of processes and machines, its lock file, the check that they all run the same setup;
* :mod:`wsl.tuning.trials`: the trial loop each process runs until the study has ``trials`` finished
  trials, and the recovery of trials whose process died (their recorded settings are queued again);
* :mod:`wsl.tuning.outputs` and :mod:`wsl.tuning.report`: ``best.yaml``, ``trials.csv``, ``study.png``
  (each process writes them when it stops; the last one to stop writes the complete study).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict

from wsl.tuning.options import TuneOptions
from wsl.tuning.outputs import (
    BEST_FILE,
    DEFAULT_DB,
    PLOT_FILE,
    STUDY_FILE,
    TRIALS_FILE,
    TUNE_OUTPUTS,
    check_out,
    write_outputs,
)
from wsl.tuning.storage import check_url, load_or_create_study, open_storage, study_lock
from wsl.tuning.task import Evaluation, TuneTask, protocol_hash
from wsl.tuning.trials import (
    TRIALS_DIR,
    TrialRunner,
    plain,
    recover,
    run_worker_process,
    sampler_and_pruner,
    settings_text,
    trial_counts,
)

__all__ = ["Evaluation", "TuneTask", "TuneOptions", "run_study", "tune", "protocol_hash", "open_storage",
           "STUDY_FILE", "BEST_FILE", "TRIALS_FILE", "PLOT_FILE", "TUNE_OUTPUTS"]


def tune(task_type: type[TuneTask], config: Any, options: TuneOptions | str | Path, **fields: Any) -> Dict[str, Any]:
    """Run (or continue) the study of ``config`` with the task ``task_type`` (e.g. ``VideoTuneTask``).

    Args:
        task_type: the tool's :class:`TuneTask`, built with :meth:`TuneTask.from_options`.
        config: the tool's base configuration.
        options: a :class:`TuneOptions`, or the output folder (then ``fields`` are its other fields).
        fields: :class:`TuneOptions` fields replacing those of ``options``.

    Returns:
        The summary of :func:`run_study`.
    """
    import dataclasses

    if isinstance(options, TuneOptions):
        options = dataclasses.replace(options, **fields) if fields else options
    else:
        options = TuneOptions(out=options, **fields)
    return run_study(task_type.from_options(config, options), options)


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

    options.check()
    out = Path(absolute_path(options.out))
    url = options.storage or f"sqlite:///{out / DEFAULT_DB}"
    name = options.study_name or task.study_name
    db_path = check_url(url)
    continuing, stale = check_out(out, url, name, options.overwrite, db_path)
    inside = db_path is not None and db_path.parent == out
    if db_path is not None and not inside and not db_path.parent.is_dir():
        raise ValueError(f"cannot open the study storage {url}: folder {db_path.parent} not found")
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    record = (f"# written by {task.command}; run it again with the same storage and study name to continue "
              f"the study\ncommand: {task.command}\nstorage: '{url}'\nstudy: '{name}'\n")
    lock = study_lock(url)
    created_out = not out.exists()
    try:
        sampler, pruner = sampler_and_pruner(task, options)
        if not inside:  # an outside storage is checked before anything is written here
            with lock:
                storage = open_storage(url)
                study = load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
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
                    study = load_or_create_study(storage, name, task.protocol(), sampler, pruner, url)
            except ValueError:
                if created_out:
                    shutil.rmtree(out, ignore_errors=True)
                elif not had_record:
                    (out / STUDY_FILE).unlink(missing_ok=True)
                raise
        worker = TrialRunner(task, study, storage, options, out, lock)
        trials = study.get_trials(deepcopy=False)
        counts = trial_counts(trials)
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
            study.set_user_attr("baseline", {"score": evaluation.score, "settings": plain(evaluation.settings),
                                             "per_seed": evaluation.per_seed})
            worker.echo(f"base settings: {task.scale * evaluation.score:.1f}{task.unit} "
                        f"({settings_text(params | evaluation.settings)})")
        processes: list = []
        try:
            if options.jobs > 1:
                import multiprocessing

                context = multiprocessing.get_context("spawn")
                errors = context.SimpleQueue()
                factory, kwargs = task.worker()
                fields = {k: v for k, v in vars(options).items() if k != "echo"} | {"jobs": 1, "out": str(out)}
                fields["echo"] = print if options.echo is not None else None
                for index in range(options.jobs - 1):
                    process = context.Process(target=run_worker_process, name=f"tune-process-{index + 2}",
                                              args=(factory, kwargs, fields, url, name, index + 2, errors))
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
                    recover(study, storage, options.trials, out)
                summary = write_outputs(task, study, out, url, name)
        summary["continued"] = continuing
        return summary
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
