"""Video feature datasets: THUMOS14 (W-TALC, BaS-Net, ACM-Net layouts), ActivityNet1.3, ``thumos14-sim`` and
``custom`` (own videos: features written by ``wsl-video extract`` plus an ``annotations.json``).

>>> ds = open_dataset("thumos14-sim", "train")
>>> feats = ds.features(0)            # {"rgb": (T, 64), "flow": (T, 64)} float32
>>> idx = sample_snippets(ds.videos[0].num_snippets, 20, np.random.default_rng(0))
"""

from wsl_video.data.annotations import THUMOS14_CLASSES, THUMOS14_EXCLUDED_TEST_VIDEOS
from wsl_video.data.factory import DATASETS, open_dataset
from wsl_video.data.records import FeatureDataset, Video
from wsl_video.data.sampling import (
    sample_snippets,
    seconds_to_snippet,
    segment_to_snippets,
    snippet_to_seconds,
    uniform_snippets,
)
from wsl_video.data.sim import SimConfig

__all__ = [
    "DATASETS",
    "THUMOS14_CLASSES",
    "THUMOS14_EXCLUDED_TEST_VIDEOS",
    "FeatureDataset",
    "SimConfig",
    "Video",
    "open_dataset",
    "sample_snippets",
    "seconds_to_snippet",
    "segment_to_snippets",
    "snippet_to_seconds",
    "uniform_snippets",
]
