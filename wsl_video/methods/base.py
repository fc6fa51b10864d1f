"""The contract of a video method: a training recipe (model head, loss, defaults) looked up by name."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = ["VideoMethod", "Batch", "CutCurve", "fractions_of_max"]


def _unset(config: Any, key: str) -> bool:
    """Whether ``section.key`` of ``config`` is left to the method: null, or an empty mapping."""
    section, _, name = key.partition(".")
    value = getattr(getattr(config, section), name)
    return value is None or (isinstance(value, Mapping) and not value)


class Batch(NamedTuple):
    """One training batch.

    videos (ndarray[B] int): indices of the batch's videos in the training set, in batch order (their labels
    are ``labels[videos]``); features: stream -> Tensor[B, T, D]; mask (BoolTensor[B, T], True = valid
    snippet) for batches padded to the longest video, None when every row is a full sequence.
    """

    videos: np.ndarray
    features: Dict[str, Any]
    mask: Any = None


class CutCurve(NamedTuple):
    """The curve a method's detections cut for one class of one video, and where (drawn by ``wsl-video plot``).

    name: what the curve is ("CAS", "fused attention"); values (ndarray[T]): the curve; levels: the cuts, in the
    curve's units; settings: the ``inference.cas_thresholds`` behind them; rule: how the settings give the
    levels, a format string for the settings' text (``"{} × max"``: each level is a setting times the curve's
    maximum).
    """

    name: str
    values: np.ndarray
    levels: Sequence[float]
    settings: Sequence[float]
    rule: str = "{}"


def fractions_of_max(cas: np.ndarray, fractions: Sequence[float]) -> CutCurve:
    """The cut of the shared detection rule: ``cas`` (ndarray[T]) at each fraction of its maximum (no level when
    the maximum is not positive: no proposals then)."""
    values = np.asarray(cas, dtype=np.float64).reshape(-1)
    fractions = tuple(float(f) for f in fractions)
    peak = float(values.max()) if values.size else 0.0
    levels = tuple(fraction * peak for fraction in fractions) if peak > 0 else ()
    return CutCurve("CAS", values, levels, fractions, "{} × max")


class VideoMethod:
    """Base class of the ``wsl-video`` training methods (``--method``, config key ``model.method``).

    A method builds the model of a run and computes its training loss; the training loop, the data,
    the checkpoints and the evaluation are shared by all methods. Subclasses set the class attributes and
    implement :meth:`build_model` and :meth:`loss`; the docstring's first line is the method's description.

    Attributes:
        takes_aggregator: the model pools snippet features with ``model.aggregator`` (any registered one).
        needs_two_streams: the method needs separate RGB and flow streams (``data.streams: two``).
        defaults: settings the method trains with where the run leaves them unset (null), as
            ``{"section.key": value}``, e.g. ``{"train.sparsity_weight": 1e-3}``.
        dataset_defaults: per ``data.dataset``, settings that replace :attr:`defaults` on that dataset (the
            authors' recipe there), as ``{dataset: {"section.key": value}}``. A value may be a function of the
            config, called after every plain value is filled (e.g. a kernel derived from ``num_segments``).
            Like :attr:`defaults`, they fill only unset keys: null, or an empty mapping for a mapping-valued
            key (``model.aggregator_kwargs``); a value the run sets (command line, config file) wins.
        takes_temporal_filter: the model honours ``model.temporal_filter`` (others refuse a width other than 1).
        uses_training_progress: the loss follows a schedule over the whole run (``iteration /
            config.train.iterations``, e.g. DELU's curriculum), so the model at iteration n of a longer run is
            not the model of an n-iteration run: ``wsl-video tune`` trains each ``iterations`` value from
            scratch instead of reading it off one run's checkpoints, and a run resumes only with the
            ``iterations`` it started with.

    The model must offer the inference interface of :class:`wsl_video.model.TemporalLocalizer`:
    ``stream_names``, ``streams[name].classifier`` (its ``in_features``), ``probabilities(features, mask)``
    (Tensor[B, K]) and ``cas(features, mask)`` (Tensor[B, T, K]); reusing that class is the easy way. A model
    may add ``snippet_attention(features, mask)`` (Tensor[B, T], the class-agnostic foreground attention) and
    ``predictions(features, mask)`` -> (probabilities, cas, snippet attention or None) computed in one forward
    pass, which inference then calls once per video instead of each of the others.

    Training calls, every iteration, ``batch = method.sample_batch(...)`` (default: MAAN's draw of
    ``num_segments`` snippets per video), ``outputs = model(batch.features)`` (``model(batch.features,
    batch.mask)`` when the batch has a mask) and ``method.training_loss(outputs, labels[batch.videos], config,
    iteration)``, which is ``method.loss(outputs, labels[batch.videos], config)`` unless the method's loss changes
    over training (a schedule on ``iteration / config.train.iterations``).
    """

    takes_aggregator: ClassVar[bool] = True
    needs_two_streams: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}
    dataset_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    takes_temporal_filter: ClassVar[bool] = False
    uses_training_progress: ClassVar[bool] = False

    def defaults_for(self, dataset: str) -> Dict[str, Any]:
        """The method's defaults on ``dataset``: :attr:`defaults` updated by ``dataset_defaults[dataset]``."""
        return {**self.defaults, **self.dataset_defaults.get(dataset, {})}

    def resolve(self, config: Any) -> None:
        """Fill the settings the run leaves unset with the method's defaults on its dataset, in place, after checks.

        Args:
            config: a :class:`wsl_video.config.RunConfig` (being resolved).

        Raises:
            ValueError: the config does not suit the method (e.g. one stream for a two-stream method).
        """
        import copy

        from wsl_video.config import apply_fallbacks

        defaults = self.defaults_for(config.data.dataset)
        unset = [key for key in defaults if _unset(config, key)]  # decided before anything is filled
        for derived in (False, True):  # plain values first; functions see them filled
            for key in unset:
                value = defaults[key]
                if callable(value) == derived:
                    section, _, name = key.partition(".")
                    setattr(getattr(config, section), name, copy.deepcopy(value(config) if derived else value))
        apply_fallbacks(config)
        width = config.model.temporal_filter
        if not self.takes_temporal_filter and width not in (None, 1):
            raise ValueError(f"method '{config.model.method}' has no temporal filter (model.temporal_filter: 1), "
                             f"got {width!r}")
        if self.needs_two_streams and config.data.streams != "two":
            raise ValueError(f"method '{config.model.method}' needs separate RGB and flow streams "
                             f"(data.streams: two), got {config.data.streams!r}")

    def check_features(self, dataset: Any, config: Any) -> None:
        """Refuse training data the method cannot use, before anything is written (``ValueError``, one line).

        ``dataset``: the opened training :class:`~wsl_video.data.FeatureDataset` (``native_streams``,
        ``feature_dims``). The default accepts every layout.
        """

    def localize(self, prediction: Any, seconds_per_snippet: float, config: Any,
                 duration: float | None = None) -> list:
        """Detections ``(class_id, start_s, end_s, score)`` of one video from its prediction (the method's own
        inference rules; the default is :func:`wsl_video.inference.localize`).

        Args:
            prediction: :class:`wsl_video.inference.VideoPrediction` (``scores`` ndarray[K] from
                ``model.probabilities``, ``cas`` ndarray[T, K] from ``model.cas``).
            seconds_per_snippet: snippet length of the video.
            config: the resolved :class:`wsl_video.config.InferenceConfig`.
            duration: the video's duration in seconds (detections are clipped to it), or None.
        """
        from wsl_video.inference import localize

        return localize(prediction, seconds_per_snippet, config, duration)

    def cut_curve(self, prediction: Any, class_id: int, config: Any) -> CutCurve | None:
        """What :meth:`localize` cuts for class ``class_id`` of one video, and its cut levels, for figures.

        A method that overrides :meth:`localize` overrides this too. The default: the class's CAS, each level
        ``threshold x max(CAS)`` (none when the maximum is not positive: no proposals then); None (nothing
        to draw) for a method with its own :meth:`localize` and no ``cut_curve``, whose cut is unknown.
        """
        from wsl_video.inference import DEFAULT_CAS_THRESHOLDS

        if type(self).localize is not VideoMethod.localize:
            return None
        fractions = config.cas_thresholds or DEFAULT_CAS_THRESHOLDS
        return fractions_of_max(np.asarray(prediction.cas)[:, class_id], fractions)

    def sample_batch(self, features: Callable[[int], Dict[str, np.ndarray]], labels: np.ndarray,
                     streams: Sequence[str], config: Any, rng: np.random.Generator, device: Any) -> Batch:
        """Draw one training batch (the default: MAAN's recipe).

        Args:
            features: video index -> stream -> ndarray[T_video, D] (cached reads of the training set).
            labels: ndarray[N, K] video labels of the N training videos (in {0, 1}).
            streams: the streams to read.
            config: the resolved RunConfig (``train.batch_size``, ``train.num_segments``).
            rng: the run's generator; every draw must come from it (exact resumption).
            device: where the tensors go.

        Returns:
            :class:`Batch`. The default draws ``batch_size`` videos uniformly (with replacement only when the
            set is smaller) and, from each, ``num_segments`` snippets, one at random in each of as many equal
            segments (:func:`wsl_video.data.sample_snippets`); no mask.
        """
        import torch

        from wsl_video.data import sample_snippets

        count, batch_size = len(labels), config.train.batch_size
        videos = rng.choice(count, size=batch_size, replace=batch_size > count)
        batch: Dict[str, list] = {name: [] for name in streams}
        for index in videos:
            video = features(int(index))
            length = len(next(iter(video.values())))
            snippets = sample_snippets(length, config.train.num_segments, rng)
            for name in streams:
                batch[name].append(video[name][snippets])
        tensors = {name: torch.as_tensor(np.stack(arrays), dtype=torch.float32, device=device)
                   for name, arrays in batch.items()}
        return Batch(videos, tensors, None)

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int) -> Any:
        """The model of a run: ``config`` (resolved RunConfig), stream name -> feature dim D, classes K."""
        raise NotImplementedError

    def training_loss(self, outputs: Any, labels: Any, config: Any, iteration: int) -> Any:
        """The loss of the 0-based ``iteration`` of ``config.train.iterations``; the default is :meth:`loss`."""
        return self.loss(outputs, labels, config)

    def loss(self, outputs: Any, labels: Any, config: Any) -> Any:
        """The training loss (a scalar tensor) of ``outputs = model(batch)`` and ``labels`` (Tensor[B, K] in {0, 1})."""
        raise NotImplementedError
