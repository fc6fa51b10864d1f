"""A TPE sampler whose draws are seeded per trial, so processes sharing a study do not repeat each other."""

from __future__ import annotations

import zlib
from typing import Any, Dict

from optuna.samplers import BaseSampler, TPESampler

__all__ = ["TrialSeededTPESampler", "trial_seed"]


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number``'s draws: a stable hash of ``(seed, number)``."""
    return zlib.crc32(f"{seed}:{number}".encode("ascii"))


class TrialSeededTPESampler(BaseSampler):
    """Optuna's TPE sampler, re-seeded for every trial from ``(seed, trial number)``.

    A plain seeded sampler in each of several processes working on one study would draw the same
    values for their first trials. Here trial ``n`` draws with the seed :func:`trial_seed`\\ ``(seed, n)``
    from the study's history (trial numbers are unique in a storage), so a study run by one process
    is reproducible and parallel processes explore different values. Keyword arguments go to
    :class:`optuna.samplers.TPESampler`.
    """

    def __init__(self, seed: int = 0, **tpe_kwargs: Any) -> None:
        self.seed = int(seed)
        self._kwargs = dict(tpe_kwargs)
        self._inner: Dict[int, Any] = {}

    def _for(self, trial) -> Any:
        number = trial.number
        if number not in self._inner:
            self._inner = {number: TPESampler(seed=trial_seed(self.seed, number), **self._kwargs)}
        return self._inner[number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._inner.pop(trial.number, None)

    def reseed_rng(self) -> None:  # the seed of each trial is fixed by design
        pass
