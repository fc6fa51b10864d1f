"""Choosing settings on held-out training samples with Optuna (the ``tune`` commands of both tools).

A tool describes what a trial trains and scores (a :class:`TuneTask`); :func:`tune` builds it from a
:class:`TuneOptions` and runs its study (:func:`run_study`). See ``docs/tuning.md``.
"""

from wsl.tuning.options import TuneOptions
from wsl.tuning.study import run_study, tune
from wsl.tuning.task import Evaluation, TuneTask

__all__ = ["TuneOptions", "TuneTask", "Evaluation", "run_study", "tune"]
