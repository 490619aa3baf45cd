"""The public API, pinned name by name (as klein's ``test_exports``), and the import rules.

A public module's ``__all__`` is exactly the names listed here; each name is the very
object defined in the private module named beside it. Changing the public API means
changing this table, on purpose. The import rules of docs/architecture.md are checked
statically, from the source: no package imports another package's private module, and
there is no import cycle, counting imports inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

CLIENT = {
    "Decision": "txsse.client._policy",
    "EventSource": "txsse.client._source",
    "EventStreamProtocol": "txsse.client._protocol",
    "Opened": "txsse.client._signals",
    "ReadyState": "txsse.client._signals",
    "Received": "txsse.client._signals",
    "Reconnect": "txsse.client._signals",
    "RequestAttempt": "txsse.client._request",
    "Signal": "txsse.client._signals",
    "StatusPolicy": "txsse.client._policy",
    "pin_certificate": "txsse.client._tls",
    "resilient_policy": "txsse.client._policy",
    "strict_policy": "txsse.client._policy",
    "trust_certificate": "txsse.client._tls",
}

PUBLIC: dict[str, dict[str, str]] = {
    "txsse": {
        "Comment": "txsse._event",
        "DEFAULT_MAX_EVENT_SIZE": "txsse._parser",
        "DEFAULT_MAX_LINE_LENGTH": "txsse._parser",
        "Event": "txsse._event",
        "EventStreamParser": "txsse._parser",
        "__version__": "txsse._version",
        "format_comment": "txsse._format",
        "format_event": "txsse._format",
        # the client's names, but Signal (a typing alias, in txsse.client only)
        **{name: module for name, module in CLIENT.items() if name != "Signal"},
    },
    "txsse.client": CLIENT,
    "txsse.server": {
        "ChannelRouter": "txsse.server._router",
        "EventStreamResource": "txsse.server._resource",
        "EventStreamService": "txsse.server._service",
        "IEventChannel": "txsse.server._channel",
        "ISubscriber": "txsse.server._channel",
        "MemoryChannel": "txsse.server._memory",
        "RedisConnection": "txsse.hub._redisconn",
        "RedisStreamChannel": "txsse.hub._redis",
        "Replay": "txsse.server._channel",
        "last_event_id": "txsse.server._resource",
    },
    "txsse.hub": {
        "Hub": "txsse.hub._resource",
        "RedisConnection": "txsse.hub._redisconn",
        "RedisLease": "txsse.hub._lease",
        "RedisPubSub": "txsse.hub._pubsub",
        "RedisServers": "txsse.hub._servers",
        "RedisStreamChannel": "txsse.hub._redis",
        "TOPIC_NAME": "txsse.hub._resource",
        "UpstreamRelay": "txsse.hub._relay",
    },
    "txsse.daemon": {
        "SSEDaemon": "txsse.daemon._service",
    },
    "txsse.blocking": {
        "EventSource": "txsse.blocking",
        "shutdown": "txsse._blocking",
    },
    "txsse.metrics": {
        "MeteredChannel": "txsse._metrics",
        "SourceMetrics": "txsse._metrics",
        "instrument_channel": "txsse.metrics",
        "instrument_source": "txsse.metrics",
        "metrics_resource": "txsse.metrics",
        "metrics_service": "txsse.metrics",
        "watch_hub": "txsse._metrics",
        "watch_redis": "txsse._metrics",
    },
    "txsse.errors": {
        name: "txsse.errors"
        for name in [
            "ChannelLimitReached",
            "ChannelUnavailable",
            "ConnectTimeout",
            "ConnectionFailed",
            "ContentEncodingError",
            "ContentTypeError",
            "DecompressionError",
            "EventTooLarge",
            "HTTPStatusError",
            "IdleTimeout",
            "InvalidResponse",
            "LineTooLong",
            "NetworkError",
            "NoContent",
            "ParseError",
            "RedirectError",
            "SSEError",
            "StateFileError",
            "StreamClosed",
            "StreamEnded",
            "TransientError",
        ]
    },
}

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "txsse"

#: Import edges allowed to close a cycle, each documented where it is made.
#: txsse.server re-exports the Redis names of txsse.hub lazily, for compatibility
#: (txsse.server.__getattr__); txsse.hub builds on txsse.server.
ALLOWED_EDGES = {("txsse.server", "txsse.hub")}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module: str) -> None:
    """Each public module's ``__all__`` is exactly the pinned list of names."""
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC[module])


@pytest.mark.parametrize(
    ("module", "name"), [(m, n) for m, names in sorted(PUBLIC.items()) for n in sorted(names)]
)
def test_public_name_resolves_to_its_definition(module: str, name: str) -> None:
    """Each public name resolves, and is the object its private module defines."""
    public = getattr(importlib.import_module(module), name)
    defined = importlib.import_module(PUBLIC[module][name])
    assert public is vars(defined)[name]


def test_root_exports_are_the_client_exports() -> None:
    """``txsse`` re-exports the client's names as the very same objects."""
    import txsse
    import txsse.client

    for name in set(txsse.__all__) & set(txsse.client.__all__):
        assert getattr(txsse, name) is getattr(txsse.client, name), name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every txsse module ``name`` imports, wherever the import statement is.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``;
    a string naming a private txsse module counts too (``import_module(name)``); public
    names in strings are mostly logger namespaces, not imports.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Constant) and node.value in known and "._" in node.value:
            found.add(node.value)
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _owner(module: str) -> str | None:
    """The package a private module belongs to (``txsse.hub`` for ``txsse.hub._redis``)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:i])
    return None


def test_no_package_imports_another_packages_private_module() -> None:
    """A module imports private modules of its own package or of an enclosing one only."""
    wrong = sorted(
        f"{importer} imports {imported}"
        for importer, imported_set in _graph().items()
        for imported in imported_set
        if (owner := _owner(imported)) is not None
        and importer != owner
        and not importer.startswith(owner + ".")
    )
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """No import cycle among txsse's modules, not even behind TYPE_CHECKING or in functions."""
    graph = _graph()
    for importer, imported in ALLOWED_EDGES:
        graph[importer].discard(imported)
    assert _cycles(graph) == []


def test_cycle_check_finds_cycles() -> None:
    """The cycle finder reports a two-module cycle and a three-module one, not a chain."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_import_parser_sees_hidden_imports(tmp_path: Path) -> None:
    """Imports in functions, under TYPE_CHECKING, relative, and by name are all found."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from txsse.server._stream import Stream\n"
        "def f():\n    from . import _memory\n    import txsse.hub\n"
        "NAME = 'txsse.hub._redis'\n"
    )
    known = {"txsse.server._stream", "txsse.server._memory", "txsse.hub", "txsse.hub._redis"}
    assert _imports("txsse.server._resource", source, known) == known
