"""Held-out samples for model selection: a deterministic split, stratified by class where possible.

Settings are chosen on samples held out from the *training* subset (never on the test subset, which
stays untouched until the final evaluation). :func:`stratified_holdout` draws them so that every class
keeps its share of both sides; :func:`holdout_by_names` takes a given list instead.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Collection, Hashable, Sequence

import numpy as np

__all__ = ["stratified_holdout", "holdout_by_names", "read_name_list", "check_fit_classes"]


def _describe(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_fit_classes(labels: Sequence[Collection[Hashable]], held_out: Collection[int], noun: str = "sample") -> None:
    """Raise ``ValueError`` naming the first class whose every sample is held out (none left to train on)."""
    held = set(held_out)
    everywhere = Counter(label for item in labels for label in set(item))
    kept = Counter(label for i, item in enumerate(labels) if i not in held for label in set(item))
    for label in sorted(everywhere, key=str):
        if kept[label] == 0:
            raise ValueError(f"the held-out {noun}s would leave class {label} without training {noun}s "
                             f"(all {_describe(everywhere[label], noun)} of it held out)")


def stratified_holdout(labels: Sequence[Collection[Hashable]], num_held_out: int, seed: int = 0,
                       eligible: Sequence[bool] | None = None, noun: str = "sample") -> np.ndarray:
    """Indices of ``num_held_out`` samples to hold out, stratified by class, deterministic by ``seed``.

    Every sample belongs to the stratum of its rarest class (multi-label samples such as videos with
    several actions), or to an unlabelled stratum. Each stratum gives a share proportional to its size
    (largest remainders, ties broken in class order), keeping at least one sample of every stratum on
    the training side when it can; the samples are drawn at random within each stratum.

    Args:
        labels: the classes of each of the N samples.
        num_held_out: how many to hold out, ``0 < num_held_out < N``.
        seed: seed of the draw.
        eligible: N flags; only eligible samples may be held out (e.g. videos with temporal annotations).
        noun: what a sample is, for messages (``video``, ``image``).

    Returns:
        ndarray[num_held_out] int64, sorted.

    Raises:
        ValueError: ``num_held_out`` out of range, more than the eligible samples, or a split that would
            leave a class without training samples; the message names the numbers or the class.
    """
    count = len(labels)
    eligible = [True] * count if eligible is None else [bool(flag) for flag in eligible]
    if len(eligible) != count:
        raise ValueError(f"eligible has {len(eligible)} flags for {count} {noun}s")
    candidates = [i for i in range(count) if eligible[i]]
    if not isinstance(num_held_out, (int, np.integer)) or num_held_out <= 0:
        raise ValueError(f"the number of held-out {noun}s must be a positive integer, got {num_held_out!r}")
    if num_held_out >= count:
        raise ValueError(f"cannot hold out {num_held_out} of the {_describe(count, 'training ' + noun)}: "
                         f"the held-out {noun}s must be fewer than the training {noun}s")
    if num_held_out > len(candidates):
        raise ValueError(f"cannot hold out {num_held_out} {noun}s: only {len(candidates)} of the {count} "
                         f"training {noun}s can be held out (they need annotations)")
    frequency = Counter(label for item in labels for label in set(item))
    strata: dict[tuple, list[int]] = {}
    for i in candidates:
        classes = sorted(set(labels[i]), key=lambda label: (frequency[label], str(label)))
        key = (0, str(classes[0])) if classes else (1, "")
        strata.setdefault(key, []).append(i)
    keys = sorted(strata)
    sizes = np.array([len(strata[key]) for key in keys], dtype=np.float64)
    # keep one sample of every stratum for training when the total allows it
    capacity = sizes - 1 if (sizes - 1).sum() >= num_held_out else sizes.copy()
    share = num_held_out * sizes / sizes.sum()
    quota = np.minimum(np.floor(share), capacity)
    while quota.sum() < num_held_out:  # largest remainders among strata with room left
        room = quota < capacity
        remainder = np.where(room, share - quota, -np.inf)
        quota[int(np.argmax(remainder))] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for key, take in zip(keys, quota.astype(int)):
        members = np.array(strata[key])
        chosen.extend(members[rng.permutation(len(members))[:take]].tolist())
    check_fit_classes(labels, chosen, noun)
    return np.array(sorted(chosen), dtype=np.int64)


def read_name_list(path: str | Path) -> list[str]:
    """Names in a text file, one per line; blank lines and ``#`` comments are skipped, order kept."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"held-out list not found: {path}")
    names: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"{path}: the held-out list names no sample")
    return names


def holdout_by_names(names: Sequence[str], held_out: Sequence[str], source: str = "the held-out list",
                     labels: Sequence[Collection[Hashable]] | None = None, noun: str = "sample") -> np.ndarray:
    """Indices (sorted) of the ``held_out`` names among ``names`` (the training subset).

    Raises:
        ValueError: a name that is not a training sample, all samples held out, or (with ``labels``) a
            class left without training samples.
    """
    index = {name: i for i, name in enumerate(names)}
    chosen = []
    for name in held_out:
        if name not in index:
            raise ValueError(f"{source}: {name} is not a {noun} of the training subset")
        chosen.append(index[name])
    chosen = sorted(set(chosen))
    if len(chosen) >= len(names):
        raise ValueError(f"{source} holds out all {_describe(len(names), 'training ' + noun)}: "
                         f"none would be left to train on")
    if labels is not None:
        check_fit_classes(labels, chosen, noun)
    return np.array(chosen, dtype=np.int64)
