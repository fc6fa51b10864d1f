"""How to run a study: :class:`TuneOptions`, built by ``wsl-video tune`` and ``wsl-image tune`` alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List

__all__ = ["TuneOptions"]


@dataclass
class TuneOptions:
    """How to run a study (see ``docs/tuning.md``; the command-line flags of ``tune`` in brackets).

    The held-out split, seeds and space describe the task (:meth:`wsl.tuning.TuneTask.from_options`);
    the rest drives the study (:func:`wsl.tuning.run_study`).

    Attributes:
        out: output folder (``--out``): best.yaml, trials.csv, study.png, study.yaml, study.db.
        held_out: number of held-out training samples (``--held-out``; None: the task's default).
        held_out_list: a file naming the held-out samples, one per line (``--held-out-list``).
        split_seed: seed of the stratified held-out draw (``--split-seed``).
        seeds: training seeds; a setting scores the mean over them (``--seeds``).
        space_file: YAML search space overriding the task's default (``--space``).
        trials: finished trials of the whole study, over all processes and runs (``--trials``).
        timeout: seconds after which this process starts no new trial (``--timeout``).
        storage: Optuna RDB storage URL (``--storage``; None: ``sqlite:///OUT/study.db``).
        study_name: study name in the storage (``--study-name``; None: the task's, the aggregator).
        sampler_seed: seed of the TPE sampler (``--sampler-seed``).
        prune: prune trials in the worst quarter (``--no-prune`` turns it off).
        jobs: processes working on the study from this call (``--jobs``).
        overwrite: replace the study outputs in ``out`` (``--overwrite``).
        baseline: also score the base settings (``--baseline``).
        echo: where progress lines go (None: nowhere, ``--quiet``).
        progress: progress bars while data is read (off with ``--quiet``).
    """

    out: str | Path
    held_out: int | None = None
    held_out_list: str | None = None
    split_seed: int = 0
    seeds: List[int] = field(default_factory=lambda: [0])
    space_file: str | None = None
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
    progress: bool = False

    def check(self) -> None:
        """``ValueError`` naming the flag of a bad study option."""
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"--trials must be a positive integer, got {self.trials!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"--timeout must be positive (seconds), got {self.timeout!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"--jobs must be a positive integer, got {self.jobs!r}")
