"""What a study tunes: :class:`TuneTask` (implemented by ``wsl_video.tune`` and ``wsl_image.tune``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence, Tuple

from wsl.tuning.space import SearchSpace

if TYPE_CHECKING:
    from wsl.tuning.options import TuneOptions

__all__ = ["Evaluation", "TuneTask", "protocol_hash"]


@dataclass
class Evaluation:
    """The outcome of one setting.

    Attributes:
        score: the held-out score of the best read-off settings (the trial's value), a fraction for
            accuracies and mAPs (``TuneTask.scale`` turns it into the printed unit).
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
    scale: float = 1.0  # display factor (100 for fractions shown in %); stored scores are never scaled
    unit: str = ""
    noun: str = "sample"
    space: SearchSpace
    study_name: str = "study"

    @classmethod
    def from_options(cls, config: Any, options: TuneOptions) -> TuneTask:
        """The task of ``config`` with the held-out split, seeds and space of ``options``."""
        return cls(config, held_out=options.held_out, held_out_list=options.held_out_list,
                   split_seed=options.split_seed, seeds=options.seeds, space_file=options.space_file)

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


def protocol_hash(values: Any) -> str:
    """A short stable digest of a JSON-able value (held-out lists in the protocol)."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:12]
