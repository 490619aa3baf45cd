"""The Python examples in the parser and serializer docs run and show true results.

An expression followed by a comment holding a Python literal, on the same line
(``f(x)  # 'result'``) or alone on the next line, must evaluate to that literal.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["parser.md", "serializer.md"]


def _blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _claimed_result(lines: list[str], statement: ast.stmt) -> str | None:
    """The literal in the comment after ``statement``, if there is one."""
    end = statement.end_lineno or statement.lineno
    same_line = lines[end - 1]
    if "  # " in same_line:
        return same_line.split("  # ", 1)[1]
    if end < len(lines) and lines[end].startswith("# "):
        return lines[end][2:]
    return None


def test_docs_have_examples() -> None:
    """Each page checked here has at least one Python example."""
    for page in PAGES:
        assert _blocks(page), page


@pytest.mark.parametrize("page", PAGES)
def test_examples_show_true_results(page: str) -> None:
    """Every example runs, and every result shown in a comment is what it evaluates to."""
    checked = 0
    for block in _blocks(page):
        namespace: dict[str, Any] = {}
        lines = block.splitlines()
        for statement in ast.parse(block).body:
            code = ast.get_source_segment(block, statement)
            assert code is not None
            claimed = _claimed_result(lines, statement)
            if isinstance(statement, ast.Expr) and claimed is not None:
                assert eval(code, namespace) == ast.literal_eval(claimed), code
                checked += 1
            else:
                exec(code, namespace)
    assert checked, f"{page} shows no result to check"
