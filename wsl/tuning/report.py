"""What a study leaves behind: the table of trials, the importance of each setting and a picture of both."""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from wsl.tuning.space import SearchSpace, format_value

__all__ = ["STATE_NAMES", "trial_rows", "write_trials_csv", "setting_importances", "plot_study"]

MIN_TRIALS = 3  # finished trials before importances are computed
MIN_OBSERVATIONS = 8  # scored settings (a trial scores one per checkpoint and inference setting)
STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


def _state(trial) -> str:
    return STATE_NAMES.get(trial.state.name, trial.state.name.lower())


def best_of_profile(profile: Sequence) -> Tuple[Dict[str, Any], float] | None:
    """The ``(settings, score)`` entry of a profile with the highest score (the first on ties)."""
    best = None
    for settings, score in profile or []:
        if score is not None and not math.isnan(score) and (best is None or score > best[1]):
            best = (settings, score)
    return best


def step_text(step: int, space: SearchSpace) -> str:
    """Where a trial stopped: ``at iterations 1000`` (a checkpoint setting), else ``at 30 % of training``."""
    key = space.checkpoint_key()
    return f"at {key} {step}" if key else f"at {step} % of training"


def _note(trial, retries: Mapping[int, int], space: SearchSpace) -> str:
    attrs = trial.user_attrs
    notes = []
    if "retry_of" in attrs:
        notes.append(f"retry of trial {attrs['retry_of']}")
    if "error" in attrs:
        notes.append(f"error: {attrs['error']}")
    elif "surplus" in attrs:
        notes.append("not run: the study already had its trials")
    elif "diverged" in attrs:
        notes.append(f"diverged: {attrs['diverged']}")
    elif trial.state.name == "PRUNED" and trial.intermediate_values:
        notes.append("pruned " + step_text(max(trial.intermediate_values), space))
    elif trial.state.name == "FAIL":
        notes.append("interrupted" + (f", retried as trial {retries[trial.number]}" if trial.number in retries
                                      else ""))
    return "; ".join(notes)


def trial_rows(trials: Sequence, space: SearchSpace, metric_key: str) -> Tuple[List[str], List[Dict[str, Any]]]:
    """Columns and one row per trial: number, state, score, the settings (sampled and read off), time, notes."""
    retries = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    names = [name for name in space.settings if space.settings[name].searched]
    columns = ["number", "state", metric_key] + names + ["seconds", "note"]
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        settings = dict(space.decode(trial.params))
        read_off = trial.user_attrs.get("settings")
        if read_off is None:
            best = best_of_profile(trial.user_attrs.get("profile"))
            read_off = best[0] if best else {}
        settings.update(read_off)
        seconds = ""
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            seconds = f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f}"
        row = {"number": trial.number, "state": _state(trial),
               metric_key: "" if trial.value is None else repr(float(trial.value)),
               "seconds": seconds, "note": _note(trial, retries, space)}
        for name in names:
            row[name] = format_value(settings[name]) if name in settings else ""
        rows.append(row)
    return columns, rows


def write_trials_csv(path: str | Path, trials: Sequence, space: SearchSpace, metric_key: str) -> None:
    """``trials.csv``: one row per trial (see :func:`trial_rows`), written atomically."""
    from wsl.utils.io import atomic_write_text

    columns, rows = trial_rows(trials, space, metric_key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def setting_importances(trials: Sequence, space: SearchSpace) -> Tuple[Dict[str, float] | None, str]:
    """Importance of every searched setting for the held-out score (``optuna.importance``, PED-ANOVA).

    Each scored combination of a trial (its sampled settings with each checkpoint and inference setting
    it was scored at) counts as one observation, so settings read off a run get an importance too.

    Returns:
        ``(importances or None, reason)``: None with a reason when there are too few observations.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.importance import PedAnovaImportanceEvaluator

    read_off = [name for name in space.searched() if space.settings[name].kind != "train"]
    read_off_choices = {name: [format_value(v) for v in space.settings[name].options] for name in read_off}
    observations = []
    scored = 0
    for trial in trials:
        if trial.state.name not in ("COMPLETE", "PRUNED"):
            continue
        scored += 1
        base = {name: value for name, value in trial.params.items() if name in space.settings}
        distributions = {name: trial.distributions[name] for name in base}
        for settings, score in trial.user_attrs.get("profile") or []:
            if score is None or math.isnan(score):
                continue
            params = dict(base)
            for name in read_off:
                if name in settings:
                    text = format_value(settings[name])
                    if text in read_off_choices[name]:
                        params[name] = text
                        distributions[name] = CategoricalDistribution(read_off_choices[name])
            observations.append((params, dict(distributions), float(score)))
    searched = space.searched()
    if not searched:
        return None, "nothing is searched"
    if scored < MIN_TRIALS:
        return None, f"importance needs at least {MIN_TRIALS} finished trials\n(this study has {scored})"
    if len(observations) < MIN_OBSERVATIONS:
        return None, (f"importance needs at least {MIN_OBSERVATIONS} scored settings\n(this study has "
                      f"{len(observations)}; a pruned image trial has none)")
    study = optuna.create_study(direction="maximize")
    for params, distributions, score in observations:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=score))
    varying = [name for name in searched
               if len({repr(params.get(name)) for params, _, _ in observations if name in params}) > 1]
    if not varying:
        return None, "no searched setting took two values yet"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = optuna.importance.get_param_importances(
                study, evaluator=PedAnovaImportanceEvaluator(), params=varying, normalize=False)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return None, f"importance could not be computed yet\n({error})"
    total = sum(raw.values())
    if not total > 0:
        return None, "no setting made a measurable difference yet"
    return {name: float(value) / total for name, value in raw.items()}, ""


def plot_study(path: str | Path, trials: Sequence, space: SearchSpace, *, title: str, metric: str,
               scale: float = 1.0, unit: str = "", baseline: float | None = None) -> Dict[str, float] | None:
    """PNG: the held-out score of every trial with the best so far, and the importance of each setting.

    Returns the importances drawn (None when the study is too small for them).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wsl.utils.io import atomic_writer

    finished = [t for t in sorted(trials, key=lambda t: t.number) if t.state.name in ("COMPLETE", "PRUNED")
                and t.value is not None]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    complete = [t for t in finished if t.state.name == "COMPLETE"]
    pruned = [t for t in finished if t.state.name == "PRUNED"]
    left.scatter([t.number for t in complete], [scale * t.value for t in complete], color="C0", zorder=3,
                 label="complete")
    if pruned:
        left.scatter([t.number for t in pruned], [scale * t.value for t in pruned], color="0.55", marker="x",
                     zorder=3, label="pruned (last score)")
    best, xs, ys = -math.inf, [], []
    for trial in complete:
        best = max(best, trial.value)
        xs.append(trial.number)
        ys.append(scale * best)
    if xs:
        left.step(xs, ys, where="post", color="C1", label="best so far")
    if baseline is not None:
        left.axhline(scale * baseline, color="C2", linestyle="--", label="base settings")
    left.set_xlabel("trial")
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are numbered 0, 1, 2, ...
    left.set_ylabel(f"{metric}{f' ({unit})' if unit else ''}")
    left.grid(alpha=0.3)
    if finished or baseline is not None:
        left.legend(loc="best", fontsize=8)  # where it hides the fewest trials
    else:
        left.text(0.5, 0.5, "no finished trial yet", ha="center", va="center", transform=left.transAxes)
    left.set_title(title, fontsize=10)
    importances, reason = setting_importances(trials, space)
    if importances:
        names = list(importances)[::-1]
        right.barh(names, [importances[name] for name in names], color="C0")
        right.set_xlabel("importance for the held-out score (PED-ANOVA, share of total)")
        right.set_xlim(0, max(1.0, max(importances.values())))
        right.grid(axis="x", alpha=0.3)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, transform=right.transAxes)
    right.set_title("importance of each setting", fontsize=10)
    figure.tight_layout()
    with atomic_writer(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return importances
