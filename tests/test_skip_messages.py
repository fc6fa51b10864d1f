"""Tests that skip for a missing file say which path they looked for."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PATH_CHECKS = ("is_file", "is_dir", "exists", "find_spec")


def _skip_calls(tree: ast.AST):
    """``(condition source or None, message node, line)`` of every pytest.skip / pytest.mark.skipif call."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        reason = next((k.value for k in node.keywords if k.arg in ("reason", "msg")), None)
        if node.func.attr == "skip" and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest":
            yield None, reason or (node.args[0] if node.args else None), node.lineno
        elif node.func.attr == "skipif":
            yield ast.unparse(node.args[0]) if node.args else "", reason, node.lineno


def test_skip_reasons_name_the_path():
    vague = []
    for path in sorted(TESTS.glob("*.py")):
        for condition, message, line in _skip_calls(ast.parse(path.read_text(encoding="utf-8"))):
            about_files = condition is None or any(check in condition for check in PATH_CHECKS)
            names_it = isinstance(message, ast.JoinedStr) and any(
                isinstance(part, ast.FormattedValue) for part in message.values)
            if about_files and not names_it:
                vague.append(f"{path.name}:{line}")
    assert not vague, f"skip reasons that do not name what they looked for: {', '.join(vague)}"
