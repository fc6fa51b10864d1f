"""Exceptions shared by the training loops and the tuner."""

from __future__ import annotations

__all__ = ["TrainingDiverged"]


class TrainingDiverged(ValueError):
    """Training produced a non-finite loss or scores: the settings are unusable (too high a learning rate).

    A ``ValueError``, so the commands report it in one line; ``tune`` prunes the trial instead.
    """
