"""The API reference (docs/api/) documents every public module and every public name."""

from __future__ import annotations

import importlib
import re

import pytest
from sphinx.util.inventory import InventoryFile

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


LINKED = {
    "twisted.inv": [
        ("py:class", "twisted.internet.defer.Deferred"),
        ("py:class", "twisted.application.service.Service"),
        ("py:class", "twisted.internet.interfaces.IReactorTime"),
        ("py:class", "twisted.web.resource.IResource"),
        ("py:class", "twisted.web.iweb.IAgent"),
    ],
    "treq.inv": [("py:class", "treq.client.HTTPClient"), ("py:function", "treq.get")],
}


@pytest.mark.parametrize("inventory", sorted(LINKED))
def test_local_inventories_hold_what_the_reference_links_to(inventory: str) -> None:
    """The committed intersphinx inventories parse and name what txsse's API links to."""
    loaded = InventoryFile.loads((DOCS / "_inv" / inventory).read_bytes(), uri="https://docs/")
    for role, name in LINKED[inventory]:
        assert name in loaded.data[role], (role, name)
