"""YAML with a comment above every key: a configuration users can read and start their own from."""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

__all__ = ["commented_yaml"]


def _comment(text: str, indent: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ",
                         break_on_hyphens=False) if text else []


def _entry(key: str, value: Any, indent: str) -> list[str]:
    import yaml

    if isinstance(value, (list, tuple, dict)):  # flow style keeps every key on one line: [0.1, 0.2], {}
        text = f"{key}: " + yaml.safe_dump(value, sort_keys=False, default_flow_style=True, width=10**6).strip()
    else:  # safe_dump writes the exact YAML scalar (quoted where a plain one would read back differently)
        text = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, width=10**6).rstrip("\n")
    return [indent + line for line in text.splitlines()]


def commented_yaml(values: Mapping[str, Any], comments: Mapping[str, str], *, sections: Sequence[str] = (),
                   header: str = "", width: int = 100) -> str:
    """``values`` as YAML, each key preceded by its comment.

    Args:
        values: ``{key: value}``; the keys named in ``sections`` hold ``{key: value}`` mappings themselves.
        comments: key -> one-line text; keys inside a section are ``"section.key"``, and ``"section"`` may
            describe the section itself. A key without a comment is written without one.
        sections: top-level keys whose values are written as indented blocks of commented keys.
        header: comment lines at the top of the file.
        width: wrap comments at this many characters.

    ``yaml.safe_load`` of the result gives ``values`` back.
    """
    lines = [line for paragraph in header.splitlines() for line in (_comment(paragraph, "", width) or ["#"])]
    lines += [""] if lines else []
    for key, value in values.items():
        if key in sections:
            if lines and lines[-1]:
                lines.append("")
            lines += _comment(comments.get(key, ""), "", width)
            lines.append(f"{key}:")
            for name, item in value.items():
                lines += _comment(comments.get(f"{key}.{name}", ""), "  ", width)
                lines += _entry(name, item, "  ")
        else:
            lines += _comment(comments.get(key, ""), "", width)
            lines += _entry(key, value, "")
    return "\n".join(lines) + "\n"
