"""Video method registry: built-ins by name, third-party methods through the ``wsl_video.methods`` entry points.

Third-party packages declare methods (subclasses of :class:`~wsl_video.methods.VideoMethod`) with::

    [project.entry-points."wsl_video.methods"]
    mymethod = "mypkg.module:MyMethod"

The rules are those of :class:`wsl.registry.Registry` (lazy discovery, broken plugins dropped with a warning,
no shadowing of built-ins, ``WSL_DISABLE_PLUGINS``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

from wsl.registry import Registry

from .base import VideoMethod

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "register_method", "get_method", "list_methods", "describe_methods",
           "refresh_plugins"]

ENTRY_POINT_GROUP = "wsl_video.methods"


def _check_method(obj: Any) -> Any:
    if isinstance(obj, type) and issubclass(obj, VideoMethod):
        return obj
    raise TypeError(f"{getattr(obj, '__qualname__', obj)!r} is not a subclass of wsl_video.methods.VideoMethod")


REGISTRY = Registry("method", ENTRY_POINT_GROUP, adapt=_check_method)


def register_method(name: str, *, aliases: Sequence[str] = (), override: bool = False) -> Callable[[type], type]:
    """Class decorator that registers a :class:`VideoMethod` subclass under ``name`` (and ``aliases``).

    Raises:
        ValueError: the name is taken and ``override`` is False.
        TypeError: the class is not a :class:`VideoMethod` subclass.
    """
    return REGISTRY.register(name, aliases=aliases, override=override)


def get_method(name: str) -> VideoMethod:
    """A new instance of the method registered as ``name`` (aliases resolved).

    Raises:
        ValueError: unknown name; the message lists the available methods.
    """
    return REGISTRY.get(name)()


def list_methods(include_aliases: bool = False) -> List[str]:
    """Sorted names of the built-in, registered and plugin methods (plugins are not imported)."""
    return REGISTRY.names(include_aliases)


def describe_methods() -> List[Dict[str, Any]]:
    """One record per method: ``name``, ``aliases``, ``description`` (first docstring line) and ``origin``."""
    return REGISTRY.describe()


def refresh_plugins() -> None:
    """Forget discovered (and not yet loaded) plugin methods; the next call discovers them again."""
    REGISTRY.refresh()
