"""Video method registry: built-ins by name, third-party methods through the ``wsl_video.methods`` entry points.

Third-party packages declare methods (subclasses of :class:`~wsl_video.methods.VideoMethod`) with::

    [project.entry-points."wsl_video.methods"]
    mymethod = "mypkg.module:MyMethod"

The rules are those of :class:`wsl.registry.Registry` (lazy discovery, broken plugins dropped with a warning,
no shadowing of built-ins, ``WSL_DISABLE_PLUGINS``).
"""

from __future__ import annotations

from wsl.registry import MethodRegistry

from .base import VideoMethod

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "register_method", "get_method", "list_methods", "describe_methods",
           "refresh_plugins"]

ENTRY_POINT_GROUP = "wsl_video.methods"
REGISTRY = MethodRegistry(ENTRY_POINT_GROUP, VideoMethod)

register_method = REGISTRY.register_method  # class decorator: @register_method("name", aliases=(...))
get_method = REGISTRY.get_method  # a new instance of a method, by name or alias
list_methods = REGISTRY.names  # sorted names (plugins are not imported)
describe_methods = REGISTRY.describe  # name, aliases, description, origin of each method
refresh_plugins = REGISTRY.refresh  # forget discovered plugins; the next lookup discovers them again
