"""Command-line pieces shared by ``wsl-video tune`` and ``wsl-image tune``."""

from __future__ import annotations

import argparse

__all__ = ["space_help", "add_tune_arguments", "tune_options", "add_demo_settings_arguments", "print_summary"]


def space_help(keys, defaults, notes=()) -> str:
    """The ``--help`` text of a search space: the defaults, the other keys, the YAML form."""
    from wsl.tuning.space import SearchSpace

    space = SearchSpace.from_specs(keys, defaults)
    lines = ["default search space (--space FILE.yaml overrides it key by key; docs/tuning.md):"]
    lines += [f"  {line}" for line in space.describe()]
    others = [name for name in keys if name not in defaults]
    if others:
        lines.append("other keys a --space file may set: " + ", ".join(others))
    lines += list(notes)
    lines += ["YAML entries: 'key: {low: A, high: B, log: true}' (a range), 'key: {choices: [A, B]}',",
              "'key: {low: A, high: B, step: S}' (a list of values) or 'key: VALUE' (fixed, not searched).",
              "Settings of kind checkpoint and inference cost no extra training: each trial's run is scored",
              "at every checkpoint and with every combination of inference settings."]
    return "\n".join(lines)


def add_tune_arguments(parser: argparse.ArgumentParser, noun: str, default_held_out: str) -> None:
    """Flags shared by ``wsl-video tune`` and ``wsl-image tune``: the split, the study and its outputs."""
    parser.add_argument("--out", required=True, help="output folder: best.yaml, trials.csv, study.png, study.db")
    held = parser.add_mutually_exclusive_group()
    held.add_argument("--held-out", type=int, default=None,
                      help=f"number of training {noun}s held out to score settings ({default_held_out}; "
                           "stratified by class)")
    held.add_argument("--held-out-list", default=None, metavar="FILE",
                      help=f"the held-out {noun}s instead: a file naming one per line")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds; a setting scores the mean over them (default 0)")
    parser.add_argument("--trials", type=int, default=20,
                        help="trials of the whole study, over all processes and runs (default 20)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds after which this process starts no new trial (default: none)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna RDB storage shared by processes and machines (default sqlite:///OUT/study.db)")
    parser.add_argument("--study-name", default=None, help="study name in the storage (default: the aggregator)")
    parser.add_argument("--space", default=None, metavar="FILE", help="YAML search space overriding the default")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes working on the study from this command (default 1)")
    parser.add_argument("--baseline", action="store_true",
                        help="also score the base settings (defaults < --config < flags) on the held-out split")
    parser.add_argument("--no-prune", dest="prune", action="store_false",
                        help="run every trial to its end (default: prune trials in the worst quarter)")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the study outputs in --out (a study.db there is deleted too)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the best result is still printed)")


def tune_options(args: argparse.Namespace):
    """The :class:`~wsl.tuning.TuneOptions` of the flags of :func:`add_tune_arguments`."""
    from wsl.tuning.options import TuneOptions

    return TuneOptions(out=args.out, held_out=args.held_out, held_out_list=args.held_out_list,
                       split_seed=args.split_seed, seeds=list(args.seeds), space_file=args.space, trials=args.trials,
                       timeout=args.timeout, storage=args.storage, study_name=args.study_name,
                       sampler_seed=args.sampler_seed, prune=args.prune, jobs=args.jobs, overwrite=args.overwrite,
                       baseline=args.baseline, echo=None if args.quiet else print, progress=not args.quiet)


def add_demo_settings_arguments(parser: argparse.ArgumentParser, tool: str, noun: str, trials: int,
                                seeds, package: str) -> None:
    """A demo's "settings" group: stored tuned settings, or ``--tune`` to choose them live with ``tool tune``
    (``noun``: what each study tunes, e.g. "aggregator"; ``package``: the folder of the stored settings)."""
    group = parser.add_argument_group("settings", f"where each {noun}'s settings come from")
    group.add_argument("--settings", default=None, metavar="DIR",
                       help=f"folder of <{noun}>.yaml settings (default: the packaged ones, chosen by tune)")
    group.add_argument("--tune", action="store_true",
                       help=f"choose the settings live with {tool} tune (in OUT/tune/<{noun}>/) first")
    group.add_argument("--trials", type=int, default=trials, help=f"--tune: trials per {noun} (default {trials})")
    group.add_argument("--tune-seeds", type=int, nargs="+", default=list(seeds),
                       help=f"--tune: training seeds averaged per setting (default {' '.join(map(str, seeds))})")
    group.add_argument("--tune-space", default=None, metavar="FILE",
                       help="--tune: search space (default: the demo's, in resources/demo/)")
    group.add_argument("--jobs", type=int, default=1, help="--tune: processes per study (default 1)")
    group.add_argument("--save-settings", default=None, metavar="DIR",
                       help=f"--tune: also write each best.yaml, without this machine's paths, to DIR/<{noun}>.yaml "
                            f"(regenerates the packaged settings when DIR is {package})")


def print_summary(summary: dict, out: str, command: str, scale: float, unit: str) -> None:
    """The closing lines of ``tune``: the best score (times ``scale``, in ``unit``), settings and outputs."""
    from pathlib import Path

    from wsl.tuning.space import format_value

    out = Path(out)
    if summary.get("best_score") is None:
        print(f"no trial completed yet: {out / 'trials.csv'} and {out / 'study.png'} written, no best.yaml")
        return
    settings = ", ".join(f"{k} {format_value(v)}" for k, v in summary["best_settings"].items())
    print(f"best: {scale * summary['best_score']:.1f}{unit} (trial {summary['best_trial']}; {settings})")
    if summary.get("baseline"):
        print(f"base settings: {scale * summary['baseline']['score']:.1f}{unit}")
    print(f"wrote {out / 'best.yaml'}, {out / 'trials.csv'} and {out / 'study.png'}")
    print(f"train with them on every training sample: {command} train --config {out / 'best.yaml'} --out RUN")
