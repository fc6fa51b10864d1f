"""Video records and the feature dataset shared by every on-disk layout and by the simulator."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from wsl_video.data.sampling import segment_to_snippets

__all__ = ["Video", "FeatureDataset", "FeatureLoader", "STREAM_MODES", "NATIVE_STREAMS"]

STREAM_MODES = ("two", "joint")

#: The streams a layout can store: one joint vector, RGB and flow, or RGB alone (RGB-only backbones).
NATIVE_STREAMS = (("joint",), ("rgb", "flow"), ("rgb",))

#: ``loader(video) -> {stream: ndarray[T, D]}`` in the layout's native streams (see :data:`NATIVE_STREAMS`).
FeatureLoader = Callable[["Video"], Mapping[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Video:
    """One untrimmed video.

    Attributes:
        name: video id as in the annotation file (e.g. ``video_test_0000004``).
        duration: length in seconds (None when the annotation file has none).
        labels: sorted distinct class names present in the video (the weak, video-level label).
        annotations: action instances ``(start_s, end_s, label)`` in seconds, sorted by start.
        num_snippets: number of feature snippets ``T``.
        seconds_per_snippet: snippet length in seconds (snippet ``i`` covers ``[i*s, (i+1)*s)``).
        subset: the subset name used by the annotation file (``validation``, ``test``, ``training``...).
    """

    name: str
    duration: Union[float, None]
    labels: tuple[str, ...]
    annotations: list[tuple[float, float, str]]
    num_snippets: int
    seconds_per_snippet: float
    subset: str = ""

    def snippet_mask(self, classes: Sequence[str]) -> np.ndarray:
        """Snippet-level ground truth ``mask (ndarray[T, K] bool)``: snippet ``t`` overlaps class ``k``."""
        index = {name: k for k, name in enumerate(classes)}
        mask = np.zeros((self.num_snippets, len(classes)), dtype=bool)
        for start, end, label in self.annotations:
            first, stop = segment_to_snippets(start, end, self.seconds_per_snippet, self.num_snippets)
            mask[first:stop, index[label]] = True
        return mask


class FeatureDataset:
    """Snippet features of a list of videos with their weak labels and temporal annotations.

    Args:
        name: dataset name (``thumos14``, ``activitynet``, ``thumos14-sim``, ``custom``).
        subset: ``train`` or ``test``.
        classes: class names; label vectors follow this order.
        videos: the videos, in a fixed order.
        loader: returns the native streams of one video (see :data:`FeatureLoader`).
        native_dims: feature size of every native stream, read from the data (``{"joint": 2048}``,
            ``{"rgb": 1024, "flow": 1024}``, or ``{"rgb": 512}`` for RGB-only features).
        streams: ``two`` (one stream per modality: ``rgb`` and ``flow``, or ``rgb`` alone for RGB-only
            features) or ``joint`` (one stream, the modalities concatenated).
        ambiguous: THUMOS14 ``Ambiguous`` segments per video, in seconds.
        version: version string written into :meth:`ground_truth`.
        extractor: settings the features were extracted with (the ``extractor`` record of a
            ``manifest.json``), None when unknown.
    """

    def __init__(
        self,
        name: str,
        subset: str,
        classes: Sequence[str],
        videos: Sequence[Video],
        loader: FeatureLoader,
        native_dims: Mapping[str, int],
        *,
        streams: str = "two",
        ambiguous: Mapping[str, Sequence[tuple[float, float]]] | None = None,
        version: str = "",
        extractor: Mapping[str, Any] | None = None,
    ) -> None:
        if streams not in STREAM_MODES:
            raise ValueError(f"streams must be one of {STREAM_MODES}, got {streams!r}")
        if not videos:
            raise ValueError(f"{name} ({subset}): the dataset is empty, no video left to load")
        native = tuple(native_dims)
        if native not in NATIVE_STREAMS:
            raise ValueError(f"native streams must be one of {', '.join(map(str, NATIVE_STREAMS))}, got {native}")
        self.name = name
        self.subset = subset
        self.classes = list(classes)
        self.videos = list(videos)
        self.version = version
        self.extractor = copy.deepcopy(dict(extractor)) if extractor is not None else None
        self._loader = loader
        self._preloaded: dict[str, Mapping[str, np.ndarray]] = {}
        self._native_dims = dict(native_dims)
        self._mode = streams
        self._index = {video.name: i for i, video in enumerate(self.videos)}
        if len(self._index) != len(self.videos):
            raise ValueError(f"{name} ({subset}): duplicate video names")
        names = set(self._index)
        self.ambiguous = {
            video: [(float(s), float(e)) for s, e in segments]
            for video, segments in (ambiguous or {}).items()
            if video in names and segments
        }
        if streams == "two":
            self.streams: tuple[str, ...] = ("rgb",) if native == ("rgb",) else ("rgb", "flow")
            if native == ("joint",):
                joint = self._native_dims["joint"]
                if joint % 2:
                    raise ValueError(
                        f"{name}: joint features have odd size {joint}, cannot split them into RGB and flow"
                    )
                self.feature_dims = {"rgb": joint // 2, "flow": joint // 2}
            else:
                self.feature_dims = dict(self._native_dims)
        else:
            self.streams = ("joint",)
            self.feature_dims = {"joint": sum(self._native_dims.values())}

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.feature_dims.items())
        return (f"FeatureDataset({self.name!r}, subset={self.subset!r}, videos={len(self)}, "
                f"classes={len(self.classes)}, {dims})")

    @property
    def native_streams(self) -> tuple[str, ...]:
        """The streams stored on disk: ``("joint",)``, ``("rgb", "flow")`` or ``("rgb",)`` (RGB-only features)."""
        return tuple(self._native_dims)

    @property
    def feature_dim(self) -> int:
        """Total feature size over all streams."""
        return sum(self.feature_dims.values())

    def index(self, name: str) -> int:
        """Position of video ``name`` in :attr:`videos`."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.name} ({self.subset}): no video named {name!r}") from None

    def video(self, i_or_name: int | str) -> Video:
        """The :class:`Video` at position ``i`` or with the given name."""
        return self.videos[self.index(i_or_name) if isinstance(i_or_name, str) else int(i_or_name)]

    def features(self, i_or_name: int | str) -> dict[str, np.ndarray]:
        """Features of one video: ``{stream: ndarray[T, D_stream] float32}``; all streams share ``T``."""
        video = self.video(i_or_name)
        native = self._preloaded.get(video.name) or self._loader(video)
        t = video.num_snippets
        arrays = {}
        for stream, dim in self._native_dims.items():
            array = np.asarray(native[stream])
            if array.ndim != 2 or array.shape[1] != dim or array.shape[0] < t:
                raise ValueError(
                    f"{video.name}: {stream} features have shape {array.shape}, expected ({t}, {dim})"
                )
            arrays[stream] = np.array(array[:t], dtype=np.float32)  # a copy: callers may modify it
        if self._mode == "two":
            if "joint" in arrays:
                half = self._native_dims["joint"] // 2
                joint = arrays["joint"]
                return {
                    "rgb": np.ascontiguousarray(joint[:, :half]),
                    "flow": np.ascontiguousarray(joint[:, half:]),
                }
            return arrays
        if "joint" in arrays:
            return arrays
        return {"joint": np.concatenate([arrays[stream] for stream in self._native_dims], axis=1)}

    def preload(self, progress: Callable | None = None) -> FeatureDataset:
        """Read every video's features into memory once (later :meth:`features` calls read no file).

        Args:
            progress: optional wrapper of the loop over videos, e.g. ``tqdm``.
        """
        wrap = progress or (lambda iterable, **_: iterable)
        for video in wrap(self.videos, desc=f"loading {self.name} {self.subset}", unit="video"):
            if video.name not in self._preloaded:
                native = self._loader(video)
                self._preloaded[video.name] = {
                    stream: np.array(native[stream][: video.num_snippets], dtype=np.float32)
                    for stream in self._native_dims
                }
        return self

    def view(self, indices: Sequence[int], subset: str | None = None) -> FeatureDataset:
        """The videos at ``indices`` (kept in the given order) as a dataset of their own.

        The view shares this dataset's feature loader and its preloaded features (:meth:`preload` of
        either fills both), classes, stream mode, ambiguous segments, version and extractor record.
        ``subset`` names the view (default: this dataset's subset).

        Raises:
            ValueError: ``indices`` is empty or names a video twice.
            IndexError: an index is out of range.
        """
        positions = [int(i) for i in indices]
        for i in positions:
            if not 0 <= i < len(self.videos):
                raise IndexError(f"{self.name} ({self.subset}): no video at index {i} of {len(self.videos)}")
        view = FeatureDataset(self.name, self.subset if subset is None else subset, self.classes,
                              [self.videos[i] for i in positions], self._loader, self._native_dims,
                              streams=self._mode, ambiguous=self.ambiguous, version=self.version,
                              extractor=self.extractor)
        view._preloaded = self._preloaded
        return view

    # ------------------------------------------------------------------ labels
    def label_matrix(self) -> np.ndarray:
        """Video-level multi-hot labels, ``ndarray[N, K] float32``, rows following :attr:`videos`."""
        index = {name: k for k, name in enumerate(self.classes)}
        matrix = np.zeros((len(self.videos), len(self.classes)), dtype=np.float32)
        for i, video in enumerate(self.videos):
            for label in video.labels:
                matrix[i, index[label]] = 1.0
        return matrix

    def ground_truth(self) -> dict:
        """ActivityNet-style annotations of exactly :attr:`videos`.

        Returns:
            ``{"version", "database": {video: {"subset", "duration", "annotations": [...]}}}``, each
            annotation ``{"segment": [start_s, end_s], "label"}``, with the annotation file's subset names.
        """
        database = {}
        for video in self.videos:
            database[video.name] = {
                "subset": video.subset or self.subset,
                "duration": video.duration,
                "annotations": [{"segment": [s, e], "label": label} for s, e, label in video.annotations],
            }
        return {"version": self.version or self.name, "database": database}
