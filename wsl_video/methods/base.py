"""The contract of a video method: a training recipe (model head, loss, defaults) looked up by name."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping

__all__ = ["VideoMethod"]


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

    The model must offer the inference interface of :class:`wsl_video.model.TemporalLocalizer`:
    ``stream_names``, ``streams[name].classifier`` (its ``in_features``), ``probabilities(features, mask)``
    (Tensor[B, K]) and ``cas(features, mask)`` (Tensor[B, T, K]); reusing that class is the easy way.
    """

    takes_aggregator: ClassVar[bool] = True
    needs_two_streams: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}

    def resolve(self, config: Any) -> None:
        """Fill the settings the run leaves unset (null) with the method's defaults, in place, after checks.

        Args:
            config: a :class:`wsl_video.config.RunConfig` (being resolved).

        Raises:
            ValueError: the config does not suit the method (e.g. one stream for a two-stream method).
        """
        if self.needs_two_streams and config.data.streams != "two":
            raise ValueError(f"method '{config.model.method}' needs separate RGB and flow streams "
                             f"(data.streams: two), got {config.data.streams!r}")
        for key, value in self.defaults.items():
            section, _, name = key.partition(".")
            target = getattr(config, section)
            if getattr(target, name) is None:
                setattr(target, name, value)

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int) -> Any:
        """The model of a run: ``config`` (resolved RunConfig), stream name -> feature dim D, classes K."""
        raise NotImplementedError

    def loss(self, outputs: Any, labels: Any, config: Any) -> Any:
        """The training loss (a scalar tensor) of ``outputs = model(batch)`` and ``labels`` (Tensor[B, K] in {0, 1})."""
        raise NotImplementedError
