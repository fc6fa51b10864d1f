"""Aggregator registry: built-ins by name, third-party aggregators through entry points.

Third-party packages declare aggregators in the entry-point group ``wsl.aggregators``::

    [project.entry-points."wsl.aggregators"]
    myagg = "mypkg.module:MyAggregator"

Rules:
- Plugins are discovered lazily (on the first ``list_aggregators``/``build_aggregator`` call) and the
  list is cached; ``refresh_plugins()`` discovers again. Listing never imports a plugin; it is
  imported on its first build.
- A plugin that fails to import warns (naming it and its distribution) and is dropped; the library
  and the other aggregators keep working.
- A plugin may not shadow a built-in name or alias: it is ignored with a warning. To replace a
  built-in on purpose, register it in code with ``register_aggregator(name, override=True)``.
  When two plugins claim one name, the first distribution in alphabetical order wins, with a warning.
- ``WSL_DISABLE_PLUGINS=1`` turns plugin autoloading off.
- The target of an entry point (or a registered object) is a class or factory accepting
  ``channels=None`` and keyword options, returning a module with the ``Aggregation`` contract.
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch import nn

__all__ = [
    "ENTRY_POINT_GROUP",
    "register_aggregator",
    "build_aggregator",
    "list_aggregators",
    "describe_aggregators",
    "refresh_plugins",
]

ENTRY_POINT_GROUP = "wsl.aggregators"
_DISABLE_ENV = "WSL_DISABLE_PLUGINS"

Factory = Callable[..., nn.Module]
_factories: Dict[str, Factory] = {}
_aliases: Dict[str, str] = {}
_builtin_names: set = set()
_plugins: Optional[Dict[str, metadata.EntryPoint]] = None  # name -> entry point, not yet loaded
_loaded: Dict[str, Factory] = {}  # plugin name -> factory loaded from its entry point
_registering_builtins = True


def _canonical(name: str) -> str:
    return _aliases.get(name, name)


def register_aggregator(
    name: str, *, aliases: Sequence[str] = (), override: bool = False
) -> Callable[[Factory], Factory]:
    """Decorator that registers an aggregator class or factory under ``name`` (and ``aliases``).

    Raises:
        ValueError: the name (or an alias) is taken and ``override`` is False.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"aggregator name must be a non-empty string, got {name!r}")

    def decorator(factory: Factory) -> Factory:
        for key in (name, *aliases):
            taken = key in _factories or key in _aliases
            if taken and not override:
                raise ValueError(
                    f"aggregator name '{key}' is already registered; pass override=True to replace it"
                )
        for key in (name, *aliases):
            _aliases.pop(key, None)
        _factories[name] = factory
        for alias in aliases:
            _aliases[alias] = name
        if _registering_builtins:
            _builtin_names.update((name, *aliases))
        return factory

    return decorator


def _discover_plugins() -> Dict[str, metadata.EntryPoint]:
    global _plugins
    if _plugins is not None:
        return _plugins
    found: Dict[str, metadata.EntryPoint] = {}
    if os.environ.get(_DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        _plugins = found
        return found
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as error:  # a broken metadata folder must not break the library
        warnings.warn(f"wsl: could not read '{ENTRY_POINT_GROUP}' entry points: {error}", stacklevel=3)
        entry_points = []
    for entry_point in sorted(entry_points, key=lambda ep: (_dist_name(ep), ep.name)):
        if entry_point.name in _builtin_names:
            warnings.warn(
                f"wsl: plugin aggregator '{entry_point.name}' from {_dist_name(entry_point)} would shadow the "
                f"built-in of the same name and is ignored (register it with override=True to replace it)",
                stacklevel=3,
            )
            continue
        if entry_point.name in found:
            warnings.warn(
                f"wsl: plugin aggregator '{entry_point.name}' is declared by both {_dist_name(found[entry_point.name])}"
                f" and {_dist_name(entry_point)}; using the first",
                stacklevel=3,
            )
            continue
        found[entry_point.name] = entry_point
    _plugins = found
    return found


def _dist_name(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return f"distribution '{dist.metadata['Name']}'" if dist is not None else "an unknown distribution"


def refresh_plugins() -> None:
    """Forget discovered (and not yet loaded) plugins; the next call discovers them again."""
    global _plugins
    if _plugins is not None:
        for name in _plugins:
            if name in _factories and name not in _builtin_names and _factories[name] is _loaded.get(name):
                del _factories[name]
    _loaded.clear()
    _plugins = None



def _load_plugin(name: str) -> Optional[Factory]:
    entry_point = _discover_plugins().get(name)
    if entry_point is None:
        return None
    try:
        factory = entry_point.load()
    except Exception as error:
        warnings.warn(
            f"wsl: plugin aggregator '{name}' ({entry_point.value}) from {_dist_name(entry_point)} failed to "
            f"load and is skipped: {type(error).__name__}: {error}",
            stacklevel=3,
        )
        del _plugins[name]
        return None
    if not callable(factory):
        warnings.warn(f"wsl: plugin aggregator '{name}' ({entry_point.value}) is not callable; skipped", stacklevel=3)
        del _plugins[name]
        return None
    if name not in _factories:  # code may have registered it explicitly meanwhile
        _factories[name] = factory
        _loaded[name] = factory
    return _factories[name]


def list_aggregators(include_aliases: bool = False) -> List[str]:
    """Sorted names of the built-in, registered and plugin aggregators (plugins are not imported)."""
    names = set(_factories) | set(_discover_plugins())
    if include_aliases:
        names |= set(_aliases)
    return sorted(names)


def _summary(factory: Any) -> str:
    """First line of the docstring of a class or factory ("" when it has none)."""
    doc = getattr(factory, "__doc__", None) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def describe_aggregators() -> List[Dict[str, Any]]:
    """One record per aggregator of :func:`list_aggregators`, sorted by name.

    Each record holds ``name``, ``aliases`` (sorted), ``description`` (first docstring line of the class or
    factory) and ``origin``: ``"built-in"``, ``"registered"`` (in code) or ``"plugin from distribution 'X'"``.
    Plugins are imported to read their docstrings; one that fails to import warns and is left out.
    """
    records = []
    for name in list_aggregators():
        factory = _factories.get(name)
        origin = "built-in" if name in _builtin_names else "registered"
        if factory is None or factory is _loaded.get(name):
            entry_point = _discover_plugins().get(name)
            factory = factory or _load_plugin(name)
            if factory is None:
                continue
            origin = f"plugin from {_dist_name(entry_point)}" if entry_point is not None else origin
        aliases = sorted(alias for alias, target in _aliases.items() if target == name)
        records.append({"name": name, "aliases": aliases, "description": _summary(factory), "origin": origin})
    return records


def build_aggregator(name: str, channels: Optional[int] = None, **kwargs: Any) -> nn.Module:
    """Build a registered aggregator.

    Args:
        name: a name from :func:`list_aggregators` (aliases such as ``stpn``, ``gap``, ``gmp`` work too).
        channels: feature channels C; needed by aggregators with an attention head, ignored by the
            parameter-free ones.
        **kwargs: options of that aggregator (e.g. ``hidden=256``, ``dropout=0.0``).

    Raises:
        ValueError: unknown name (the message lists the available ones) or bad options.
    """
    if not isinstance(name, str):
        raise ValueError(f"aggregator name must be a string, got {type(name).__name__}")
    key = _canonical(name)
    factory = _factories.get(key) or _load_plugin(key)
    if factory is None:
        from wsl.utils.cli import did_you_mean

        names = list_aggregators(include_aliases=True)
        hint = did_you_mean(name, names)
        raise ValueError(f"unknown aggregator '{name}'{hint + ' ' if hint else '; '}available: {', '.join(names)}")
    try:
        return factory(channels=channels, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad options for aggregator '{name}': {error}") from error


def _finish_builtins() -> None:
    """Called once the built-in modules are imported: later registrations are not built-ins."""
    global _registering_builtins
    _registering_builtins = False
