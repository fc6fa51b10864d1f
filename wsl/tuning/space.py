"""Search spaces of ``tune``: which settings are searched, how, and how a YAML file overrides them.

A space maps setting names to specifications. Three kinds of settings are handled differently:

* ``train`` settings (learning rate, weight decay, ...) change training: the TPE sampler draws one
  value per trial and the trial trains a model with it;
* ``checkpoint`` settings (the number of training iterations) are read off one run: each trial's run
  is scored at every listed value, continued from its checkpoint between them;
* ``inference`` settings (CAS threshold, video-score mode, ...) change nothing in training: every
  combination is scored on each trained model, so they cost no training.

YAML form, one entry per setting (a file overrides the defaults key by key)::

    lr: {low: 1.0e-4, high: 3.0e-3, log: true}   # a range (train: sampled; log: log-uniform)
    batch_size: {choices: [8, 16, 32]}          # a list of choices
    cas_thresholds: {low: 0.1, high: 0.5, step: 0.1}  # a range with a step is a list of choices
    weight_decay: 0.001                         # anything else: a fixed value, not searched
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence

from wsl.utils.numbers import finite_float

__all__ = ["Key", "Setting", "SearchSpace", "KINDS", "float_value", "int_value", "str_value", "format_value"]

KINDS = ("train", "checkpoint", "inference")
_RANGE_KEYS = {"low", "high", "log", "step"}


def float_value(value: Any) -> float:
    """A finite number (YAML 1.1 reads ``1e-3`` as a string: accepted); see :func:`wsl.utils.numbers.finite_float`."""
    return finite_float(value)


def int_value(value: Any) -> int:
    """An integer (``2000`` or ``2000.0``, not ``2.5``)."""
    number = float_value(value)
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(number)


def str_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a name, got {value!r}")
    return value


def format_value(value: Any) -> str:
    """Short text of a setting value (lists joined by spaces, floats in ``%g``)."""
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Key:
    """A setting ``tune`` knows: its kind, how a value is read (``coerce``) and a one-line help."""

    kind: str
    coerce: Callable[[Any], Any]
    help: str
    numeric: bool = True  # ranges allowed
    integer: bool = False  # ranges are of integers


@dataclass(frozen=True)
class Setting:
    """One entry of a space: a fixed ``value``, a list of ``choices`` or a range ``low``..``high``."""

    name: str
    kind: str
    value: Any = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    @property
    def searched(self) -> bool:
        return self.choices is not None or self.low is not None

    @property
    def options(self) -> list:
        """Every value of a choice list; ``[value]`` when fixed (not defined for a sampled range)."""
        if self.choices is not None:
            return list(self.choices)
        if self.low is not None:
            raise ValueError(f"{self.name} is a sampled range, not a list of values")
        return [self.value]

    def describe(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(f"[{format_value(v)}]" if isinstance(v, (list, tuple)) and len(v) > 1
                                         else format_value(v) for v in self.choices)
        elif self.low is not None:
            scale = "log-uniform" if self.log else "uniform"
            kind = "integer" if self.integer else "number"
            step = f", step {format_value(self.step)}" if self.step is not None else ""
            text = f"{scale} {kind} in [{format_value(self.low)}, {format_value(self.high)}]{step}"
        else:
            return f"fixed at {format_value(self.value)}"
        how = {"train": "drawn by TPE, one training run per trial",
               "checkpoint": "read off checkpoints of each trial's run",
               "inference": "every value scored on each trained model"}[self.kind]
        return f"{text} ({how})"

    def to_spec(self) -> Any:
        """The YAML form of this entry."""
        if self.choices is not None:
            return {"choices": [list(c) if isinstance(c, tuple) else c for c in self.choices]}
        if self.low is not None:
            spec: Dict[str, Any] = {"low": self.low, "high": self.high}
            if self.log:
                spec["log"] = True
            if self.step is not None:
                spec["step"] = self.step
            return spec
        return list(self.value) if isinstance(self.value, tuple) else self.value


def _parse_setting(name: str, key: Key, spec: Any, source: str) -> Setting:
    where = f"{source}: search-space key '{name}'"

    def coerce(value: Any) -> Any:
        try:
            value = key.coerce(value)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        return tuple(value) if isinstance(value, list) else value

    if not isinstance(spec, Mapping):
        return Setting(name, key.kind, value=coerce(spec))
    unknown = sorted(set(spec) - _RANGE_KEYS - {"choices"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} "
                         "(use 'choices: [...]', or 'low', 'high' with optional 'log' or 'step')")
    if "choices" in spec:
        if set(spec) & _RANGE_KEYS:
            raise ValueError(f"{where}: give either 'choices' or a range ('low', 'high'), not both")
        choices = spec["choices"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"{where}: 'choices' must be a non-empty list")
        values = tuple(coerce(choice) for choice in choices)
        if len(set(values)) != len(values):
            raise ValueError(f"{where}: 'choices' lists a value twice")
        if key.kind == "checkpoint":
            values = tuple(sorted(values))
        return Setting(name, key.kind, choices=values)
    if not key.numeric:
        raise ValueError(f"{where}: is not a number; give 'choices: [...]' or a fixed value")
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{where}: a range needs both 'low' and 'high'")
    number = int_value if key.integer else float_value
    try:
        low, high = number(spec["low"]), number(spec["high"])
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where}: 'log' must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        try:
            step = number(step)
        except ValueError as error:
            raise ValueError(f"{where}: step: {error}") from None
        if step <= 0:
            raise ValueError(f"{where}: 'step' must be positive, got {step}")
    if not low < high:
        raise ValueError(f"{where}: 'low' ({low}) must be below 'high' ({high})")
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs 'low' > 0, got {low}")
    if log and step is not None:
        raise ValueError(f"{where}: a range takes 'log' or 'step', not both")
    for bound in (low, high):
        coerce(bound)  # the bounds must be valid values
    if key.kind == "train":
        return Setting(name, key.kind, low=low, high=high, log=log, step=step, integer=key.integer)
    if step is None:
        how = "read off checkpoints" if key.kind == "checkpoint" else "scored on every trained model"
        raise ValueError(f"{where}: is {how}, so it needs a list: give 'choices: [...]' or a range with 'step'")
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    values = [low + i * step for i in range(count)]
    values = [int(round(v)) if key.integer else round(v, 12) for v in values]
    return Setting(name, key.kind, choices=tuple(coerce(v) for v in values))


@dataclass
class SearchSpace:
    """The settings one study searches (see the module docstring for the YAML form).

    Args:
        keys: every setting ``tune`` knows for this task, name -> :class:`Key`.
        settings: the entries of the space, name -> :class:`Setting`.
    """

    keys: Mapping[str, Key]
    settings: Dict[str, Setting] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, keys: Mapping[str, Key], *specs: Mapping[str, Any] | None,
                   sources: Sequence[str] = ()) -> SearchSpace:
        """Later specs override earlier ones key by key; an unknown key raises ``ValueError`` naming it."""
        space = cls(keys)
        for index, spec in enumerate(specs):
            if spec is None:
                continue
            source = sources[index] if index < len(sources) else "search space"
            if not isinstance(spec, Mapping):
                raise ValueError(f"{source}: a search space is a mapping of setting: specification")
            for name, entry in spec.items():
                if name not in keys:
                    raise ValueError(f"{source}: unknown search-space key '{name}' "
                                     f"(known: {', '.join(sorted(keys))})")
                space.settings[name] = _parse_setting(name, keys[name], entry, source)
        return space

    @classmethod
    def from_file(cls, keys: Mapping[str, Key], defaults: Mapping[str, Any], path: str | Path | None) -> SearchSpace:
        """The default space, overridden by the YAML file at ``path`` when given."""
        from wsl.utils.io import read_yaml

        override = None if path is None else (read_yaml(path) or {})
        return cls.from_specs(keys, defaults, override, sources=("default search space", str(path)))

    # ------------------------------------------------------------------ queries
    def searched(self, kind: str | None = None) -> List[str]:
        """Names of the searched settings (of one kind), in the space's order."""
        return [name for name, s in self.settings.items() if s.searched and (kind is None or s.kind == kind)]

    def fixed(self, kind: str | None = None) -> Dict[str, Any]:
        return {name: s.value for name, s in self.settings.items()
                if not s.searched and (kind is None or s.kind == kind)}

    def checkpoints(self, default: int) -> List[int]:
        """Sorted values of the (single) checkpoint setting; ``[default]`` when the space has none."""
        names = [name for name, s in self.settings.items() if s.kind == "checkpoint"]
        if not names:
            return [default]
        return sorted({int(v) for name in names for v in self.settings[name].options})

    def checkpoint_key(self) -> str | None:
        names = [name for name, key in self.keys.items() if key.kind == "checkpoint"]
        return names[0] if names else None

    def grid(self) -> List[Dict[str, Any]]:
        """Every combination of the inference settings (fixed ones included), in a fixed order."""
        names = [name for name, s in self.settings.items() if s.kind == "inference"]
        options = [self.settings[name].options for name in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*options)]

    def suggest(self, trial) -> Dict[str, Any]:
        """Train settings of an Optuna ``trial``: sampled ones drawn, fixed ones as given."""
        values = {}
        for name, s in self.settings.items():
            if s.kind != "train":
                continue
            if s.choices is not None:
                index = trial.suggest_categorical(name, list(range(len(s.choices)))) if _complex(s.choices) \
                    else None
                values[name] = s.choices[index] if index is not None else trial.suggest_categorical(
                    name, list(s.choices))
            elif s.low is not None and s.integer:
                values[name] = trial.suggest_int(name, int(s.low), int(s.high), step=int(s.step or 1), log=s.log)
            elif s.low is not None:
                values[name] = trial.suggest_float(name, float(s.low), float(s.high), step=s.step, log=s.log)
            else:
                values[name] = s.value
        return values

    def decode(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Optuna ``trial.params`` back to setting values (choices that are lists are stored by index)."""
        values = {}
        for name, value in params.items():
            s = self.settings.get(name)
            values[name] = s.choices[value] if s is not None and s.choices is not None and _complex(s.choices) \
                else value
        return values

    def to_spec(self) -> Dict[str, Any]:
        return {name: s.to_spec() for name, s in self.settings.items()}

    def describe(self) -> List[str]:
        """One line per setting: ``name: how it is searched``."""
        return [f"{name}: {s.describe()}" for name, s in self.settings.items()]


def _complex(choices: tuple) -> bool:
    """Optuna's categorical choices must be None, bool, int, float or str: others go by index."""
    return any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices)
