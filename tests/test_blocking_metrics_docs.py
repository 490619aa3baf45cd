"""The runnable examples of docs/blocking.md and docs/metrics.md run and do what they say."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest_twisted
from prometheus_client import CollectorRegistry

from tests._loopback import LoopbackServer
from tests.test_metrics_http import free_port, get, scrape, scrape_until
from txsse._blocking import reactor_thread

DOCS = Path(__file__).parent.parent / "docs"


def example(page: str) -> dict[str, Any]:
    """Execute the Python block under "A runnable example" of ``page`` as a module."""
    text = (DOCS / page).read_text()
    block = re.search(r"## A runnable example.*?```python\n(.*?)```", text, re.S)
    assert block is not None, f"docs/{page} lost its runnable example"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block.group(1), str(DOCS / page), "exec"), namespace)
    return namespace


def test_blocking_example_tails_a_stream() -> None:
    """tail() from docs/blocking.md returns the first events of a real loopback stream."""
    tail = example("blocking.md")["tail"]
    server = LoopbackServer(reactor_thread())
    got: list[list[str]] = []
    reader = threading.Thread(target=lambda: got.append(tail(server.url, 2, timeout=10)))
    try:
        reader.start()
        server.wait_for(lambda: server.clients() == 1)
        server.send(b"data: first\n\nid: 2\ndata: second\n\ndata: third\n\n")
        reader.join(10)
    finally:
        server.stop()
    assert got == [["first", "second"]]


def test_blocking_example_reports_refusals(capsys: Any) -> None:
    """tail() from docs/blocking.md reports a refused stream instead of crashing."""
    tail = example("blocking.md")["tail"]
    server = LoopbackServer(reactor_thread())
    try:
        assert tail(server.url_for("/status/204"), 1, timeout=10) == []
    finally:
        server.stop()
    assert "refused the stream" in capsys.readouterr().err


@pytest_twisted.ensureDeferred
async def test_metrics_example_serves_counts() -> None:
    """make_service/make_client from docs/metrics.md: /metrics counts both sides."""
    namespace = example("metrics.md")
    registry = CollectorRegistry()
    port = free_port()
    service, channel = namespace["make_service"](port, registry)
    service.startService()
    client = namespace["make_client"](f"http://127.0.0.1:{port}/events", registry)
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        client.startService()
        await client.when_open()
        await scrape_until(metrics, lambda s: get(s, "txsse_server_subscribers", channel="news"))
        channel.publish("tick")
        assert (await client.next()).data == "tick"
        samples = await scrape(metrics)
        assert get(samples, "txsse_client_events_total", stream="news") == 1
        assert get(samples, "txsse_server_events_delivered_total", channel="news") == 1
    finally:
        await client.close()
        await service.stopService()
