"""Training methods of ``wsl-image``: recipes (model, loss, defaults) looked up by name.

``cam``, ``has``, ``cutmix`` and ``adl`` are built in (``docs/image-methods.md``); plugins come from the
``wsl_image.methods`` entry-point group (see ``docs/methods.md``).
"""

from . import adl, cam, cutmix, has  # noqa: F401  (built-in methods: one import each)
from .base import ImageMethod, TunableOption
from .registry import (
    ENTRY_POINT_GROUP,
    REGISTRY,
    describe_methods,
    get_method,
    list_methods,
    refresh_plugins,
    register_method,
)

REGISTRY.finish_builtins()

__all__ = ["ImageMethod", "TunableOption", "ENTRY_POINT_GROUP", "register_method", "get_method", "list_methods",
           "describe_methods", "refresh_plugins"]
