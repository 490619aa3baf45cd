"""The API reference (docs/api/) documents every public module and every public name."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.helpers.docs import DOCS

PUBLIC = [
    "txsse",
    "txsse.client",
    "txsse.server",
    "txsse.hub",
    "txsse.daemon",
    "txsse.blocking",
    "txsse.metrics",
    "txsse.errors",
]


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_module_has_a_page(module: str) -> None:
    """Each public module is documented with automodule, which follows its ``__all__``."""
    page = DOCS / "api" / f"{module.rpartition('.')[2]}.rst"
    assert f".. automodule:: {module}\n   :members:" in page.read_text()
    assert importlib.import_module(module).__all__


def test_root_reexports_point_to_their_home() -> None:
    """The names txsse re-exports from txsse.client are listed as aliases, not documented twice."""
    import txsse
    import txsse.client

    text = (DOCS / "api" / "txsse.rst").read_text()
    excluded = re.search(r":exclude-members: (.*?)\n\n", text, re.S)
    assert excluded is not None
    names = {name.strip() for name in excluded.group(1).split(",")}
    assert names == set(txsse.__all__) & set(txsse.client.__all__)
    for name in names:
        assert f"`txsse.client.{name}`" in text, name
