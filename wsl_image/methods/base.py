"""The contract of an image method: a training recipe (model, loss, defaults) looked up by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

__all__ = ["ImageMethod", "TunableOption"]


@dataclass(frozen=True)
class TunableOption:
    """A method option that ``wsl-image tune`` can search (a key of :class:`wsl_image.config.TrainConfig`).

    Attributes:
        help: one line for ``wsl-image tune --help``.
        space: the option's entry in the default search space of the method's studies, in the YAML form of
            ``docs/tuning.md`` (``{"low": a, "high": b}``, ``{"choices": [...]}``, or a fixed value); None: not
            searched unless a ``--space`` file names it.
        integer: its ranges are of integers.
        numeric: ranges are allowed (False: only choices or a fixed value, e.g. for a list-valued option).
    """

    help: str
    space: Any = None
    integer: bool = False
    numeric: bool = True


class ImageMethod:
    """Base class of the ``wsl-image`` training methods (``--method``, config key ``method``).

    A method builds the model of a run and computes its training loss; the data, the optimiser and schedule,
    the checkpoints and the evaluation are shared by all methods. Subclasses set the class attributes and
    implement :meth:`build_model` and :meth:`loss` (and :meth:`training_batch` to change the training inputs);
    the docstring's first line is the method's description.

    Attributes:
        takes_aggregator: the model pools the feature map with ``aggregator`` (any registered one).
        defaults: options the method trains with where the run leaves them unset (null), ``{"option": value}``.
        tunable: the method's own hyper-parameters that ``wsl-image tune`` knows, ``{"option": TunableOption}``;
            those with a ``space`` are searched by default in the method's studies (``docs/tuning.md``).

    The model must offer the interface of :class:`wsl_image.model.CamModel` that training and evaluation
    use: ``forward(images)`` (an output with ``logits``, Tensor[B, K]), ``head_parameters()`` (the new layers,
    trained at ``lr * head_lr_scale``), ``localize(...)``, ``uses_attention``, ``cam_score`` and
    ``resolved_cam_score``; reusing that class is the easy way.
    """

    takes_aggregator: ClassVar[bool] = True
    defaults: ClassVar[Mapping[str, Any]] = {}
    tunable: ClassVar[Mapping[str, TunableOption]] = {}

    def resolve(self, config: Any) -> Any:
        """``config`` (a :class:`wsl_image.config.TrainConfig`) with the options it leaves unset (null) taken
        from :attr:`defaults`; a new config, the given one is not changed."""
        changes = {key: value for key, value in self.defaults.items() if getattr(config, key) is None}
        return config.replace(**changes) if changes else config

    def training_batch(self, images: Any, labels: Any, config: Any) -> tuple[Any, Any]:
        """The training batch the model and the loss see: ``(inputs, targets)`` from ``images`` (Tensor[B, 3, H, W])
        and ``labels`` (LongTensor[B]); ``targets`` is what :meth:`loss` receives. Identity by default; input
        augmentations such as hiding patches or mixing images override it (drawing from torch's global RNG, so
        that seeds and resumption stay exact)."""
        return images, labels

    def build_model(self, config: Any, num_classes: int, *, pretrained: bool) -> Any:
        """The model of a run: ``config`` (TrainConfig), K classes, ``pretrained`` backbone weights or not."""
        raise NotImplementedError

    def loss(self, outputs: Any, labels: Any, config: Any) -> Any:
        """The training loss (a scalar tensor) of ``outputs = model(inputs)`` and ``labels``: the targets of
        :meth:`training_batch` (LongTensor[B] unless the method changes them)."""
        raise NotImplementedError
