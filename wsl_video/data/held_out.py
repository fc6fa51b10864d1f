"""Hold out annotated training videos to choose settings on (``wsl-video tune``)."""

from __future__ import annotations

from typing import Sequence, Tuple

from wsl_video.data.records import FeatureDataset

__all__ = ["split_held_out"]


def split_held_out(dataset: FeatureDataset, num_held_out: int | None = None, seed: int = 0, *,
                   names: Sequence[str] | None = None,
                   source: str = "the held-out list") -> Tuple[FeatureDataset, FeatureDataset]:
    """Split a training subset into (fit, held-out) views for choosing settings.

    ``num_held_out`` videos with temporal annotations form the held-out view (their annotations serve
    only to score settings), drawn with ``seed`` and stratified by class
    (:func:`wsl.tuning.split.stratified_holdout`: each video counts in its rarest class); or ``names``
    lists them. Every class keeps training videos. Both views share the parent's feature loader (and
    its preloaded features) and keep its video order (:meth:`FeatureDataset.view`). Returns
    ``(fit, held_out)``; the held-out view's subset is ``"held-out"``.

    Raises:
        ValueError: a size out of range, an unknown or unannotated video in ``names``, or a split that
            leaves a class without training videos; the message names it.
    """
    from wsl.tuning.split import holdout_by_names, stratified_holdout

    labels = [video.labels for video in dataset.videos]
    if names is not None:
        chosen = holdout_by_names([video.name for video in dataset.videos], list(names), source, labels, "video")
        for index in chosen:
            if not dataset.videos[index].annotations:
                raise ValueError(f"{source}: {dataset.videos[index].name} has no temporal annotation to score "
                                 "settings with")
    else:
        if num_held_out is None:
            raise ValueError("give the number of held-out videos or their names")
        annotated = [bool(video.annotations) for video in dataset.videos]
        chosen = stratified_holdout(labels, num_held_out, seed, eligible=annotated, noun="video")
    chosen = set(int(i) for i in chosen)
    fit = [i for i in range(len(dataset)) if i not in chosen]
    held_out = [i for i in range(len(dataset)) if i in chosen]
    return dataset.view(fit), dataset.view(held_out, "held-out")
