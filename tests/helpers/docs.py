"""The documentation's runnable examples, executed as modules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def runnable_example(page: str) -> dict[str, Any]:
    """Execute the Python block under "A runnable example" of ``docs/<page>``; its namespace."""
    text = (DOCS / page).read_text()
    block = re.search(r"## A runnable example.*?```python\n(.*?)```", text, re.S)
    assert block is not None, f"docs/{page} lost its runnable example"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block.group(1), str(DOCS / page), "exec"), namespace)
    return namespace
