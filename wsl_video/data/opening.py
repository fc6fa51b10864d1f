"""Open the dataset a run configuration (``config.data``) describes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from wsl_video.config import RunConfig
    from wsl_video.data.records import FeatureDataset

__all__ = ["open_data"]


def open_data(config: RunConfig, subset: str, data_root: str | None = None) -> FeatureDataset:
    """Open the ``subset`` ("train" or "test") of the dataset of ``config.data`` (``data_root`` overrides its root).

    Raises:
        ValueError: a setting that does not apply to the dataset, or an empty subset.
    """
    from wsl_video.data import open_dataset

    data = config.data
    kwargs: Dict[str, Any] = {"data_root": data_root or data.data_root, "layout": data.layout,
                              "streams": data.streams, "skip_missing": data.skip_missing, "seed": data.seed}
    if data.test_videos is not None:
        kwargs["test_videos"] = data.test_videos
    if data.seconds_per_snippet is not None:
        if data.dataset == "custom":
            raise ValueError("data.seconds_per_snippet does not apply to custom data: the snippet times of "
                             "each video come from its manifest.json")
        kwargs["seconds_per_snippet"] = data.seconds_per_snippet
    if data.dataset == "thumos14-sim":
        kwargs["sim"] = dict(data.sim)
    elif data.sim:
        raise ValueError(f"data.sim overrides only apply to thumos14-sim, not {data.dataset}")
    dataset = open_dataset(data.dataset, subset, **kwargs)
    if len(dataset) == 0:
        raise ValueError(f"{data.dataset} {subset} subset has no videos")
    return dataset
