"""Aggregator registry: built-ins by name, third-party aggregators through entry points.

Third-party packages declare aggregators in the entry-point group ``wsl.aggregators``::

    [project.entry-points."wsl.aggregators"]
    myagg = "mypkg.module:MyAggregator"

The rules (lazy discovery, broken plugins dropped with a warning, no shadowing of built-ins,
``WSL_DISABLE_PLUGINS``) are those of :class:`wsl.registry.Registry`. To replace a built-in on purpose,
register it in code with ``register_aggregator(name, override=True)``.

The target of an entry point (or a registered object) is a class or factory accepting ``channels=None`` and
keyword options, returning a module with the ``Aggregation`` contract. Plugins that do not subclass
:class:`~wsl.aggregators.Aggregator` are wrapped once, at load (:func:`~wsl.aggregators.adapter.adapt_plugin`),
so every built aggregator has ``uses_attention`` and ``attention_map``. A class or factory may declare
``uses_attention`` and ``training_defaults`` (settings its paper trains with, e.g. STPN's sparsity weight);
:func:`aggregator_info` reads them without building anything.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

from torch import nn

from wsl.registry import Registry

from .adapter import adapt_plugin

__all__ = [
    "ENTRY_POINT_GROUP",
    "AggregatorInfo",
    "register_aggregator",
    "build_aggregator",
    "build_logit_pool",
    "get_aggregator",
    "aggregator_info",
    "check_aggregator_options",
    "list_aggregators",
    "describe_aggregators",
    "refresh_plugins",
]

ENTRY_POINT_GROUP = "wsl.aggregators"

Factory = Callable[..., nn.Module]
REGISTRY = Registry("aggregator", ENTRY_POINT_GROUP, adapt=adapt_plugin)
_factories: Dict[str, Factory] = REGISTRY._factories  # the registered factories (tests remove their own)


class AggregatorInfo(NamedTuple):
    """What the registry knows about an aggregator without building it.

    Attributes:
        name: the canonical name (aliases resolved).
        uses_attention: whether it owns an attention head (returns an attention map).
        description: first line of its docstring.
        origin: ``"built-in"``, ``"registered"`` or ``"plugin from distribution 'X'"``.
        aliases: its other names, sorted.
        training_defaults: training settings its paper uses (e.g. ``{"sparsity_weight": 1e-4}`` for STPN).
    """

    name: str
    uses_attention: bool
    description: str
    origin: str
    aliases: tuple
    training_defaults: Mapping[str, Any]


def register_aggregator(
    name: str, *, aliases: Sequence[str] = (), override: bool = False
) -> Callable[[Factory], Factory]:
    """Decorator that registers an aggregator class or factory under ``name`` (and ``aliases``).

    Raises:
        ValueError: the name (or an alias) is taken and ``override`` is False.
    """
    return REGISTRY.register(name, aliases=aliases, override=override)


def refresh_plugins() -> None:
    """Forget discovered (and not yet loaded) plugins; the next call discovers them again."""
    REGISTRY.refresh()


def list_aggregators(include_aliases: bool = False) -> List[str]:
    """Sorted names of the built-in, registered and plugin aggregators (plugins are not imported)."""
    return REGISTRY.names(include_aliases)


def describe_aggregators() -> List[Dict[str, Any]]:
    """One record per aggregator of :func:`list_aggregators`, sorted by name.

    Each record holds ``name``, ``aliases`` (sorted), ``description`` (first docstring line of the class or
    factory) and ``origin``: ``"built-in"``, ``"registered"`` (in code) or ``"plugin from distribution 'X'"``.
    Plugins are imported to read their docstrings; one that fails to import warns and is left out.
    """
    return REGISTRY.describe()


def get_aggregator(name: str) -> Factory:
    """The class or factory of an aggregator (aliases resolved; a plugin is imported, nothing is built).

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    return REGISTRY.get(name)


def aggregator_info(name: str) -> AggregatorInfo:
    """The :class:`AggregatorInfo` record of an aggregator, read from its class or factory without building it.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    factory = get_aggregator(name)
    key = REGISTRY.canonical(name)
    return AggregatorInfo(
        name=key,
        uses_attention=bool(getattr(factory, "uses_attention", False)),
        description=(factory.__doc__ or "").strip().split("\n")[0].strip(),
        origin=REGISTRY.origin(key),
        aliases=tuple(REGISTRY.aliases_of(key)),
        training_defaults=dict(getattr(factory, "training_defaults", {}) or {}),
    )


def _accepted_keywords(factory: Any) -> Optional[set]:
    """Keyword arguments ``factory`` accepts, following ``**kwargs`` up the class hierarchy; None: any."""
    if isinstance(factory, type):
        chain = [vars(cls)["__init__"] for cls in factory.__mro__
                 if "__init__" in vars(cls) and cls not in (nn.Module, object)]
    else:
        chain = [factory]
    names: set = set()
    for function in chain:
        try:
            parameters = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):  # no signature to read (a builtin): cannot tell
            return None
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names - {"self"}
    return (names - {"self"}) if isinstance(factory, type) else None


def check_aggregator_options(name: str, options: Mapping[str, Any]) -> None:
    """Check ``options`` against the signature of the aggregator's factory, without building it.

    Raises:
        ValueError: unknown name, or an option the factory does not take (the message names it and lists
            the accepted ones).
    """
    factory = get_aggregator(name)
    accepted = _accepted_keywords(factory)
    if accepted is None:
        return
    accepted.discard("channels")
    unknown = sorted(key for key in options if key not in accepted)
    if unknown:
        listed = ", ".join(sorted(accepted)) or "none"
        raise ValueError(f"bad options for aggregator '{name}': unexpected {', '.join(map(repr, unknown))} "
                         f"(accepted: {listed})")


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
    factory = get_aggregator(name)
    try:
        return factory(channels=channels, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad options for aggregator '{name}': {error}") from error


def build_logit_pool(name: str, channels: Optional[int] = None, **kwargs: Any) -> nn.Module:
    """Build a registered aggregator that pools logits into logits (e.g. a CAS into video logits).

    Every aggregator pools any real values, except those made for probabilities: they declare a ``logits``
    option (``linear_softmax``), and this passes ``logits=True`` to them unless ``kwargs`` sets it, so they
    pool the sigmoids and return the logit. Otherwise the same as :func:`build_aggregator`.

    Raises:
        ValueError: unknown name (the message lists the available ones) or bad options.
    """
    accepted = _accepted_keywords(get_aggregator(name))
    if accepted is not None and "logits" in accepted:
        kwargs.setdefault("logits", True)
    return build_aggregator(name, channels=channels, **kwargs)


def _finish_builtins() -> None:
    """Called once the built-in modules are imported: later registrations are not built-ins."""
    REGISTRY.finish_builtins()
