"""A registry of named things (aggregators, methods): built-ins in code, third-party ones through entry points.

Third-party packages declare entries in the registry's entry-point group, e.g. for aggregators::

    [project.entry-points."wsl.aggregators"]
    myagg = "mypkg.module:MyAggregator"

Rules, the same for every registry:

- Plugins are discovered lazily (on the first lookup or listing) and the list is cached;
  :meth:`Registry.refresh` discovers again. Listing never imports a plugin; it is imported on its first use.
- A plugin that fails to import warns (naming it and its distribution) and is dropped; the library and the
  other entries keep working.
- A plugin may not shadow a built-in name or alias: it is ignored with a warning. To replace a built-in on
  purpose, register it in code with ``override=True``. When two plugins claim one name, the first
  distribution in alphabetical order wins, with a warning.
- ``WSL_DISABLE_PLUGINS=1`` turns plugin autoloading off.
- An unknown name raises ``ValueError`` listing the available names (and the closest one, when close).

This module imports neither torch nor any plugin.
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["Registry", "MethodRegistry", "DISABLE_PLUGINS_ENV", "plugins_disabled", "summary"]

DISABLE_PLUGINS_ENV = "WSL_DISABLE_PLUGINS"


def plugins_disabled() -> bool:
    """True when ``WSL_DISABLE_PLUGINS`` is set to 1, true, yes or on."""
    return os.environ.get(DISABLE_PLUGINS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def summary(obj: Any) -> str:
    """First line of the docstring of a class or factory, as plain text (reST double backquotes dropped;
    "" when it has none)."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip().replace("``", "") if doc else ""


def _dist_name(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return f"distribution '{dist.metadata['Name']}'" if dist is not None else "an unknown distribution"


class Registry:
    """Names -> objects (classes or factories), with aliases and entry-point plugins.

    Args:
        kind: what an entry is, used in messages ("aggregator", "method").
        group: the entry-point group of the plugins, e.g. ``"wsl.aggregators"``.
        adapt: applied once to every plugin object when it is loaded (e.g. to wrap objects that do not
            follow the registry's base class); it may raise ``TypeError``/``ValueError`` to refuse one.
    """

    def __init__(self, kind: str, group: str, adapt: Optional[Callable[[Any], Any]] = None) -> None:
        self.kind = kind
        self.group = group
        self.adapt = adapt
        self._factories: Dict[str, Any] = {}
        self._aliases: Dict[str, str] = {}
        self._builtin_names: set = set()
        self._plugins: Optional[Dict[str, metadata.EntryPoint]] = None  # name -> entry point, not yet loaded
        self._loaded: Dict[str, Any] = {}  # plugin name -> object loaded from its entry point
        self._registering_builtins = True

    # ------------------------------------------------------------------ registration

    def register(self, name: str, *, aliases: Sequence[str] = (), override: bool = False) -> Callable[[Any], Any]:
        """Decorator that registers a class or factory under ``name`` (and ``aliases``); it returns the object
        unchanged (the registry keeps ``adapt(obj)``).

        Raises:
            ValueError: the name (or an alias) is taken and ``override`` is False.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(obj: Any) -> Any:
            for key in (name, *aliases):
                taken = key in self._factories or key in self._aliases
                if taken and not override:
                    raise ValueError(
                        f"{self.kind} name '{key}' is already registered; pass override=True to replace it"
                    )
            for key in (name, *aliases):
                self._aliases.pop(key, None)
            self._factories[name] = self.adapt(obj) if self.adapt is not None else obj
            for alias in aliases:
                self._aliases[alias] = name
            if self._registering_builtins:
                self._builtin_names.update((name, *aliases))
            return obj

        return decorator

    def finish_builtins(self) -> None:
        """Called once the built-in modules are imported: later registrations are not built-ins."""
        self._registering_builtins = False

    # ------------------------------------------------------------------ plugins

    def discover(self) -> Dict[str, metadata.EntryPoint]:
        """Plugin name -> entry point (cached; no plugin is imported)."""
        if self._plugins is not None:
            return self._plugins
        found: Dict[str, metadata.EntryPoint] = {}
        if plugins_disabled():
            self._plugins = found
            return found
        try:
            entry_points = metadata.entry_points(group=self.group)
        except Exception as error:  # a broken metadata folder must not break the library
            warnings.warn(f"wsl: could not read '{self.group}' entry points: {error}", stacklevel=3)
            entry_points = []
        for entry_point in sorted(entry_points, key=lambda ep: (_dist_name(ep), ep.name)):
            if entry_point.name in self._builtin_names:
                warnings.warn(
                    f"wsl: plugin {self.kind} '{entry_point.name}' from {_dist_name(entry_point)} would shadow the "
                    f"built-in of the same name and is ignored (register it with override=True to replace it)",
                    stacklevel=3,
                )
                continue
            if entry_point.name in found:
                warnings.warn(
                    f"wsl: plugin {self.kind} '{entry_point.name}' is declared by both "
                    f"{_dist_name(found[entry_point.name])} and {_dist_name(entry_point)}; using the first",
                    stacklevel=3,
                )
                continue
            found[entry_point.name] = entry_point
        self._plugins = found
        return found

    def refresh(self) -> None:
        """Forget discovered (and not yet loaded) plugins; the next call discovers them again."""
        if self._plugins is not None:
            for name in self._plugins:
                if (name in self._factories and name not in self._builtin_names
                        and self._factories[name] is self._loaded.get(name)):
                    del self._factories[name]
        self._loaded.clear()
        self._plugins = None

    def _load_plugin(self, name: str) -> Optional[Any]:
        plugins = self.discover()
        entry_point = plugins.get(name)
        if entry_point is None:
            return None
        try:
            obj = entry_point.load()
            if not callable(obj):
                raise TypeError(f"{entry_point.value} is not callable")
            if self.adapt is not None:
                obj = self.adapt(obj)
        except Exception as error:
            warnings.warn(
                f"wsl: plugin {self.kind} '{name}' ({entry_point.value}) from {_dist_name(entry_point)} failed to "
                f"load and is skipped: {type(error).__name__}: {error}",
                stacklevel=4,
            )
            del plugins[name]
            return None
        if name not in self._factories:  # code may have registered it explicitly meanwhile
            self._factories[name] = obj
            self._loaded[name] = obj
        return self._factories[name]

    # ------------------------------------------------------------------ lookup

    def names(self, include_aliases: bool = False) -> List[str]:
        """Sorted names of the built-in, registered and plugin entries (plugins are not imported)."""
        names = set(self._factories) | set(self.discover())
        if include_aliases:
            names |= set(self._aliases)
        return sorted(names)

    def canonical(self, name: str) -> str:
        """The registered name behind an alias (``name`` itself otherwise)."""
        return self._aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self.canonical(name) in self._factories or self.canonical(name)
                                          in self.discover())

    def unknown(self, name: str) -> ValueError:
        """The error for an unknown name: lists the available names and the closest one when close."""
        from wsl.utils.suggest import did_you_mean

        available = self.names(include_aliases=True)
        hint = did_you_mean(name, available)
        listed = f"available: {', '.join(available)}"
        return ValueError(f"unknown {self.kind} '{name}'{hint} {listed}" if hint else
                          f"unknown {self.kind} '{name}'; {listed}")

    def get(self, name: str) -> Any:
        """The class or factory registered under ``name`` or an alias of it (plugins are loaded here).

        Raises:
            ValueError: unknown name (the message lists the available ones), or a name that is not a string.
        """
        if not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = self.canonical(name)
        obj = self._factories.get(key)
        if obj is None:
            obj = self._load_plugin(key)
        if obj is None:
            raise self.unknown(name)
        return obj

    def origin(self, name: str) -> str:
        """``"built-in"``, ``"registered"`` (in code) or ``"plugin from distribution 'X'"``."""
        key = self.canonical(name)
        if key in self._factories and self._factories[key] is not self._loaded.get(key):
            return "built-in" if key in self._builtin_names else "registered"
        entry_point = self.discover().get(key)
        return f"plugin from {_dist_name(entry_point)}" if entry_point is not None else "registered"

    def aliases_of(self, name: str) -> List[str]:
        """Sorted aliases of a registered name."""
        return sorted(alias for alias, target in self._aliases.items() if target == name)

    def describe(self) -> List[Dict[str, Any]]:
        """One record per entry of :meth:`names`, sorted by name: ``name``, ``aliases`` (sorted),
        ``description`` (first docstring line) and ``origin`` (see :meth:`origin`).

        Plugins are imported to read their docstrings; one that fails to import warns and is left out.
        """
        records = []
        for name in self.names():
            origin = self.origin(name)
            obj = self._factories.get(name) or self._load_plugin(name)
            if obj is None:
                continue
            records.append({"name": name, "aliases": self.aliases_of(name), "description": summary(obj),
                            "origin": origin})
        return records


class MethodRegistry(Registry):
    """The training methods of one tool: subclasses of ``base``, registered by class decorator, looked up as
    new instances.

    Args:
        group: the entry-point group, also the public module of ``base`` (``"wsl_video.methods"``).
        base: the method base class (``VideoMethod``, ``ImageMethod``).
    """

    def __init__(self, group: str, base: type) -> None:
        self.base = base
        super().__init__("method", group, adapt=self._check_method)

    def _check_method(self, obj: Any) -> Any:
        if isinstance(obj, type) and issubclass(obj, self.base):
            return obj
        raise TypeError(f"{getattr(obj, '__qualname__', obj)!r} is not a subclass of {self.group}.{self.base.__name__}")

    def register_method(self, name: str, *, aliases: Sequence[str] = (), override: bool = False
                        ) -> Callable[[type], type]:
        """Class decorator that registers a subclass of the base class under ``name`` (and ``aliases``).

        Raises:
            ValueError: the name is taken and ``override`` is False.
            TypeError: the class is not a subclass of the base class.
        """
        return self.register(name, aliases=aliases, override=override)

    def get_method(self, name: str) -> Any:
        """A new instance of the method registered as ``name`` (aliases resolved).

        Raises:
            ValueError: unknown name; the message lists the available methods.
        """
        return self.get(name)()
