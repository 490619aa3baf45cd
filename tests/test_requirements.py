"""txsse's requirements are what it imports: install_requires, or the extra that needs it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

PACKAGE = Path(__file__).resolve().parent.parent / "txsse"

#: Imported only by an optional part of txsse: the extra that installs it.
OPTIONAL = {"prometheus_client": "metrics", "txredisapi": "redis"}
#: Required although no module imports it, and why.
REQUIRED_UNIMPORTED = {"treq": "EventSource accepts a treq client"}


def canonical(name: str) -> str:
    """A distribution name as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> set[str]:
    """The top-level third-party modules txsse imports, anywhere in its source."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {
        m for m in found if m not in sys.stdlib_module_names and m not in ("txsse", "__future__")
    }


def requirements(extra: str | None = None) -> dict[str, Requirement]:
    """The requirements of txsse (install_requires, or one extra's), by canonical name."""
    found = {}
    for text in importlib.metadata.requires("txsse") or []:
        requirement = Requirement(text)
        in_extra = requirement.marker is not None and requirement.marker.evaluate(
            {"extra": extra or ""}
        )
        if (requirement.marker is None and extra is None) or (extra is not None and in_extra):
            found[canonical(requirement.name)] = requirement
    return found


def provided(requirement: Requirement) -> set[str]:
    """The distribution a requirement names, plus those its extras add."""
    names = {canonical(requirement.name)}
    for text in importlib.metadata.requires(requirement.name) or []:
        dependency = Requirement(text)
        if dependency.marker is not None and any(
            dependency.marker.evaluate({"extra": extra}) for extra in requirement.extras
        ):
            names.add(canonical(dependency.name))
    return names


def test_every_import_is_required() -> None:
    """Each third-party module txsse imports comes from install_requires or its extra."""
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(imported_modules()):
        owners = {canonical(d) for d in distributions.get(module, [module])}
        needed = requirements(OPTIONAL.get(module))
        available = set().union(*(provided(r) for r in needed.values()))
        if not owners & available:
            missing.append(f"{module} ({', '.join(sorted(owners))})")
    assert missing == []


def test_nothing_required_that_is_not_imported() -> None:
    """install_requires names only what txsse imports (or a documented exception)."""
    distributions = importlib.metadata.packages_distributions()
    imported = {canonical(d) for m in imported_modules() for d in distributions.get(m, [m])}
    unused = set(requirements()) - imported - set(REQUIRED_UNIMPORTED)
    assert unused == set()


def test_tls_comes_with_twisted() -> None:
    """The TLS of txsse.client (pyOpenSSL) is required through twisted[tls]."""
    assert "pyopenssl" in provided(requirements()["twisted"])
