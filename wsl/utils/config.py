"""Dataclass configurations read from YAML files and command-line values, one style for every tool.

A tool's configuration is a dataclass, flat (``wsl-image``: ``{option: value}``) or made of sections
(``wsl-video``: ``{section: {option: value}}``, each section a dataclass). The helpers here read a mapping
into it (:func:`update_from_dict`, :func:`sections_from_dict`), rejecting unknown keys with a ``ValueError``
that names the source and the key, and convert YAML / command-line values to the field types
(:func:`coerce_value`: ``1e-3`` is a string to YAML 1.1, ``"8"`` from a flag is an int). :func:`save_yaml` writes
a configuration atomically and :func:`load_yaml_mapping` reads one back; ``wsl.utils.commented_yaml``
prints one with a comment above every key.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

__all__ = ["coerce_value", "coerce_fields", "check_mapping", "check_keys", "update_from_dict",
           "sections_from_dict", "save_yaml", "load_yaml_mapping"]

PathLike = Union[str, "os.PathLike[str]"]
_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "dict": "dict", "mapping": "dict",
          "list": "list", "sequence": "list"}


def _kind(annotation: Any) -> tuple[str | None, bool]:
    """(``int``/``float``/``bool``/``str``/``dict``/``list`` or None when unknown, whether None is allowed)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [part.strip() for part in text.replace("Optional[", "").rstrip("]").split("|")]
    nullable = "None" in parts or text.startswith("Optional[")
    base = next((part for part in parts if part != "None"), "")
    return _KINDS.get(base.split("[")[0].split(".")[-1].lower()), nullable


def coerce_value(value: Any, annotation: Any, key: str) -> Any:
    """``value`` converted to the type of a field annotated ``annotation`` (e.g. ``"float | None"``).

    Numbers written as strings become numbers, an integral float an int, a path a string, a tuple a list;
    None stays None where the annotation allows it. Booleans are never taken for numbers.

    Raises:
        ValueError: ``value`` cannot be read as that type; the message names ``key``.
    """
    kind, nullable = _kind(annotation)
    if kind is None or (value is None and nullable):
        return value
    try:
        if value is None or (isinstance(value, bool) and kind != "bool"):
            raise ValueError
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError
        elif kind == "str":
            if isinstance(value, os.PathLike):
                return os.fspath(value)
            if not isinstance(value, str):
                raise ValueError
        elif kind == "dict":
            if not isinstance(value, Mapping):
                raise ValueError
            return value if isinstance(value, dict) else dict(value)
        elif kind == "list":
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return list(value)
        return value
    except (TypeError, ValueError, OverflowError):
        expected = f"{kind} or null" if nullable else kind
        raise ValueError(f"option {key} must be of type {expected}, got {value!r}") from None


def coerce_fields(instance: Any, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """Convert every field of the dataclass ``instance`` in place (:func:`coerce_value`); ``prefix`` names it."""
    skip = set(skip)
    for field in dataclasses.fields(instance):
        if field.name not in skip:
            value = getattr(instance, field.name)
            setattr(instance, field.name, coerce_value(value, field.type, prefix + field.name))


def check_mapping(values: Any, source: str, what: str) -> Mapping[str, Any]:
    """``values`` when it is a mapping; else ``ValueError`` naming ``source`` and what was expected."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: expected a mapping of {what}, got {type(values).__name__}")
    return values


def check_keys(keys: Iterable[Any], known: Iterable[str], source: str, *, prefix: str = "",
               noun: str = "option") -> None:
    """Refuse keys outside ``known``: ``ValueError`` naming ``source``, every unknown key and the known ones."""
    known = sorted(known)
    unknown = sorted((key for key in keys if key not in known), key=str)
    if unknown:
        raise ValueError(f"{source}: unknown {noun}(s) {', '.join(prefix + str(key) for key in unknown)} "
                         f"(known: {', '.join(prefix + key for key in known)})")


def update_from_dict(instance: Any, values: Mapping[str, Any], source: str = "config", prefix: str = "") -> Any:
    """Set the fields of the dataclass ``instance`` named in ``values`` (converted to their types); returns it.

    Raises:
        ValueError: ``values`` is not a mapping, names an unknown field or holds a value of the wrong type;
            the message names ``source`` and the key (``prefix`` + field name).
    """
    check_mapping(values, source, "option: value")
    fields = {field.name: field for field in dataclasses.fields(instance)}
    check_keys(values, fields, source, prefix=prefix)
    for key, value in values.items():
        try:
            setattr(instance, key, coerce_value(value, fields[key].type, prefix + key))
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
    return instance


def sections_from_dict(config: Any, values: Mapping[str, Any] | None, source: str = "config") -> Any:
    """Update the dataclass ``config`` whose fields are sections (dataclasses) from ``{section: {key: value}}``.

    A section given as null is left as it is. Returns ``config``.

    Raises:
        ValueError: not a mapping, an unknown section or key, or a value of the wrong type; the message
            names ``source`` and the key as ``section.key``.
    """
    if values is None:
        return config
    sections = [field.name for field in dataclasses.fields(config)]
    check_mapping(values, source, f"sections {sorted(sections)}")
    check_keys(values, sections, source, noun="section")
    for section, entries in values.items():
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            raise ValueError(f"{source}: section '{section}' must be a mapping")
        update_from_dict(getattr(config, section), entries, source, prefix=f"{section}.")
    return config


def save_yaml(values: Mapping[str, Any], path: PathLike) -> None:
    """Write ``values`` as YAML (keys in their order) to ``path``, atomically."""
    import yaml

    from wsl.utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(dict(values), sort_keys=False))


def load_yaml_mapping(path: PathLike) -> Any:
    """The parsed YAML file ``path`` (an empty file gives ``{}``); the caller checks it with its own source.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not valid YAML (the message names it).
    """
    from wsl.utils.io import read_yaml

    return read_yaml(Path(path))
