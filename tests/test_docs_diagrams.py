"""The docs' diagrams are what docs/diagrams/make.py draws, valid SVG, and shown in the docs."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from types import ModuleType

import pytest

from tests.helpers.docs import DOCS

DIAGRAMS = DOCS / "diagrams"


def make() -> ModuleType:
    """docs/diagrams/make.py, imported."""
    spec = importlib.util.spec_from_file_location("make_diagrams", DIAGRAMS / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RENDERED = make().render()


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_committed_svg_is_what_the_script_draws(name: str) -> None:
    """Each committed SVG equals the script's output (run make.py after changing a drawing)."""
    assert (DIAGRAMS / name).read_text(encoding="utf-8") == RENDERED[name], (
        f"docs/diagrams/{name} is out of date: run .venv/bin/python docs/diagrams/make.py"
    )


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_svg_is_well_formed_and_shown(name: str) -> None:
    """Each diagram parses as SVG and some page of the docs shows it."""
    root = ET.fromstring(RENDERED[name])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    pages = [page.read_text(encoding="utf-8") for page in DOCS.glob("*.md")]
    assert any(f"](diagrams/{name})" in page for page in pages), name
