"""Code a newcomer can read: no function in genrec.apps runs over 80 lines.

An HTTP app is a set of small routers over typed dependencies; a long function there means
endpoints nested in a factory again. Read from the source with ``ast`` (decorators count)."""

from __future__ import annotations

import ast
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "shared" / "genrec" / "apps"
MAX_LINES = 80


def function_lengths(root: Path) -> dict[str, int]:
    """``path:line name`` -> lines, for every function and method (nested ones too) under root."""
    lengths = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lengths[f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"] = node.end_lineno - start + 1
    return lengths


def test_no_function_in_apps_is_over_80_lines() -> None:
    lengths = function_lengths(APPS)
    assert lengths, f"no functions found under {APPS}"
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
