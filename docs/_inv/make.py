"""Write the intersphinx inventories of Twisted and treq from the installed packages.

The docs build must not need the network, so the inventories that link txsse's API reference
to Twisted's and treq's API docs are kept here, made by this script from the packages installed
in the virtualenv (run it after upgrading either)::

    .venv/bin/python docs/_inv/make.py

Each inventory lists the public modules, classes, functions and methods of the modules below,
at the addresses their documentation uses: pydoctor's for Twisted (one page per module and per
class), Sphinx's for treq (everything on ``api.html``). The output is sorted, so the same
packages always give the same files.
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

from zope.interface.interface import InterfaceClass, Method

HERE = Path(__file__).resolve().parent

TWISTED = [
    "twisted.application.internet",
    "twisted.application.service",
    "twisted.internet.defer",
    "twisted.internet.endpoints",
    "twisted.internet.error",
    "twisted.internet.interfaces",
    "twisted.internet.protocol",
    "twisted.internet.ssl",
    "twisted.internet.task",
    "twisted.internet.testing",
    "twisted.logger",
    "twisted.python.failure",
    "twisted.python.usage",
    "twisted.web.client",
    "twisted.web.http",
    "twisted.web.http_headers",
    "twisted.web.iweb",
    "twisted.web.resource",
    "twisted.web.server",
]
TREQ = ["treq", "treq.client", "treq.response", "treq.testing"]


def members(module_name: str) -> Iterator[tuple[str, str]]:
    """(role, dotted name) of the module and of each public thing defined in it."""
    module = importlib.import_module(module_name)
    yield "module", module_name
    exported = getattr(module, "__all__", None)
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) is None:
            continue
        # Keep what the module defines itself, and what it exports from elsewhere.
        if value.__module__ != module_name and name not in (exported or ()):
            continue
        if isinstance(value, InterfaceClass):
            yield "class", f"{module_name}.{name}"
            for attribute in sorted(value.names()):
                role = "method" if isinstance(value[attribute], Method) else "attribute"
                yield role, f"{module_name}.{name}.{attribute}"
        elif inspect.isclass(value):
            yield "class", f"{module_name}.{name}"
            for attribute, member in sorted(vars(value).items()):
                if attribute.startswith("_"):
                    continue
                if callable(member) or isinstance(member, (staticmethod, classmethod)):
                    yield "method", f"{module_name}.{name}.{attribute}"
                elif inspect.isdatadescriptor(member):
                    yield "attribute", f"{module_name}.{name}.{attribute}"
        elif inspect.isfunction(value):
            yield "function", f"{module_name}.{name}"


def twisted_uri(role: str, name: str) -> str:
    """The pydoctor page of ``name``: modules and classes have their own."""
    if role in ("module", "class"):
        return f"{name}.html"
    page, anchor = name.rsplit(".", 1)
    return f"{page}.html#{anchor}"


def treq_uri(role: str, name: str) -> str:
    """The treq page of a name: the whole API is on api.html."""
    return f"api.html#{'module-' if role == 'module' else ''}{name}"


def write(path: Path, project: str, modules: list[str], uri: Callable[[str, str], str]) -> None:
    """Write a version 2 Sphinx inventory of ``modules`` to ``path``."""
    entries = sorted({(name, role) for module in modules for role, name in members(module)})
    lines = "".join(f"{name} py:{role} 1 {uri(role, name)} -\n" for name, role in entries)
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version(project)}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.write_bytes(header.encode() + zlib.compress(lines.encode(), 9))
    print(f"{path.name}: {len(entries)} names")


if __name__ == "__main__":
    write(HERE / "twisted.inv", "Twisted", TWISTED, twisted_uri)
    write(HERE / "treq.inv", "treq", TREQ, treq_uri)
