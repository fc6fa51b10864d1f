"""Training methods of ``wsl-video``: recipes (model head, loss, defaults) looked up by name.

``maan`` is built in; plugins come from the ``wsl_video.methods`` entry-point group (see ``docs/methods.md``).
"""

from . import basnet, co2net, delu, maan, wtalc  # noqa: F401  (built-in methods: one import each)
from .base import Batch, CutCurve, VideoMethod
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

__all__ = ["VideoMethod", "Batch", "CutCurve", "ENTRY_POINT_GROUP", "register_method", "get_method", "list_methods",
           "describe_methods", "refresh_plugins"]
