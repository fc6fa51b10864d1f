"""``open_dataset``: one entry point for every dataset and layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from wsl_video.data.detect import THUMOS14_LAYOUTS, detect_layout
from wsl_video.data.records import STREAM_MODES, FeatureDataset

__all__ = ["DATASETS", "ACTIVITYNET_DATASETS", "SUBSETS", "open_dataset"]

DATASETS = ("thumos14", "activitynet", "activitynet1.2", "thumos14-sim", "custom")
ACTIVITYNET_DATASETS = ("activitynet", "activitynet1.2")  # evaluated at tIoU 0.5:0.05:0.95, no Ambiguous
SUBSETS = ("train", "test")


def open_dataset(
    dataset: str = "thumos14-sim",
    subset: str = "train",
    *,
    data_root: str | Path | None = None,
    layout: str = "auto",
    streams: str = "two",
    skip_missing: bool = False,
    test_videos: int = 212,
    seconds_per_snippet: float = 16 / 25,
    seed: int = 0,
    sim: Mapping[str, Any] | None = None,
) -> FeatureDataset:
    """Open the snippet features and annotations of one subset of a dataset.

    Args:
        dataset: ``thumos14``, ``activitynet`` (1.3), ``activitynet1.2`` (W-TALC layout), ``thumos14-sim``
            (built in, needs no files) or ``custom``
            (own data: ``annotations.json``, ``manifest.json`` and ``features/`` as ``wsl-video extract``
            writes them; see :mod:`wsl_video.data.layouts.custom`).
        subset: ``train`` (THUMOS14 validation set, ActivityNet training set) or ``test`` (THUMOS14 test
            set, ActivityNet validation set); for ``custom``, the subset named in ``annotations.json``.
        data_root: folder holding the features (not used by ``thumos14-sim``).
        layout: ``auto`` (detected), or ``wtalc``, ``bas``, ``acm`` for THUMOS14; ActivityNet and ``custom``
            have one layout each, named ``activitynet`` and ``custom``.
        streams: ``two`` (one stream per modality: ``rgb`` and ``flow``, or ``rgb`` alone for RGB-only
            features) or ``joint`` (one stream, the modalities concatenated).
        skip_missing: skip videos without feature files (with one warning) instead of raising.
        test_videos: THUMOS14 test set size, 212 (all) or 210 (without video_test_0000270 and
            video_test_0001496).
        seconds_per_snippet: THUMOS14 snippet length (16 frames at 25 fps); ActivityNet uses
            ``duration / T`` per video, ``custom`` the manifest's ``seconds_per_snippet`` of each video.
        seed: ``thumos14-sim`` seed.
        sim: ``thumos14-sim`` options overriding :class:`~wsl_video.data.sim.SimConfig`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose 'train' or 'test'")
    if streams not in STREAM_MODES:
        raise ValueError(f"unknown streams {streams!r}; choose 'two' or 'joint'")
    if test_videos not in (210, 212):
        raise ValueError(f"test_videos must be 212 or 210, got {test_videos!r}")
    if not seconds_per_snippet > 0:
        raise ValueError(f"seconds_per_snippet must be positive, got {seconds_per_snippet!r}")
    if dataset == "thumos14-sim":
        if layout not in ("auto", "sim"):
            raise ValueError(f"thumos14-sim has no on-disk layout; got layout={layout!r}")
        from wsl_video.data.sim import open_sim

        return open_sim(subset, streams=streams, test_videos=test_videos,
                        seconds_per_snippet=seconds_per_snippet, seed=seed, sim=sim)
    if sim:
        raise ValueError(f"sim options apply to thumos14-sim only, not to {dataset}")
    if data_root is None:
        raise ValueError(f"{dataset} needs data_root (the folder with its features); "
                         "'thumos14-sim' is the built-in dataset that needs no files")
    root = Path(data_root).expanduser()
    options = dict(streams=streams, skip_missing=skip_missing)
    if dataset == "custom":
        if layout not in ("auto", "custom"):
            raise ValueError(f"custom data has one layout, 'custom'; got layout={layout!r}")
        from wsl_video.data.layouts.custom import open_custom

        return open_custom(root, subset, **options)
    if dataset == "activitynet1.2":
        if layout not in ("auto", "wtalc"):
            raise ValueError(f"ActivityNet1.2 has one layout, 'wtalc'; got layout={layout!r}")
        detect_layout(root, ("activitynet1.2",))
        from wsl_video.data.layouts.wtalc import open_activitynet12

        return open_activitynet12(root, subset, **options)
    if dataset == "activitynet":
        if layout not in ("auto", "activitynet"):
            raise ValueError(f"unknown ActivityNet layout {layout!r}; only 'activitynet' is supported")
        detect_layout(root, ("activitynet",))
        from wsl_video.data.layouts.activitynet import open_activitynet

        return open_activitynet(root, subset, **options)
    if layout == "auto":
        layout = detect_layout(root, THUMOS14_LAYOUTS)
    elif layout not in THUMOS14_LAYOUTS:
        raise ValueError(f"unknown THUMOS14 layout {layout!r}; choose auto, {', '.join(THUMOS14_LAYOUTS)}")
    elif not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    from wsl_video.data import layouts

    opener = {"wtalc": layouts.open_wtalc, "bas": layouts.open_bas, "acm": layouts.open_acm}[layout]
    return opener(root, subset, test_videos=test_videos, seconds_per_snippet=seconds_per_snippet, **options)
