"""The runnable examples of docs/blocking.md and docs/metrics.md run and do what they say."""

from __future__ import annotations

import threading
from typing import Any

import pytest_twisted
from prometheus_client import CollectorRegistry

from tests.helpers.blocking_server import LoopbackServer
from tests.helpers.docs import runnable_example
from tests.helpers.metrics import get, scrape, scrape_until
from tests.helpers.system import free_port
from tests.helpers.waiting import block_until
from txsse._blocking import reactor_thread


def test_blocking_example_tails_a_stream() -> None:
    """tail() from docs/blocking.md returns the first events of a real loopback stream."""
    tail = runnable_example("blocking.md")["tail"]
    server = LoopbackServer(reactor_thread())
    got: list[list[str]] = []
    reader = threading.Thread(target=lambda: got.append(tail(server.url, 2, timeout=10)))
    try:
        reader.start()
        block_until(lambda: server.clients() == 1)
        server.send(b"data: first\n\nid: 2\ndata: second\n\ndata: third\n\n")
        reader.join(10)
    finally:
        server.stop()
    assert got == [["first", "second"]]


def test_blocking_example_reports_refusals(capsys: Any) -> None:
    """tail() from docs/blocking.md reports a refused stream instead of crashing."""
    tail = runnable_example("blocking.md")["tail"]
    server = LoopbackServer(reactor_thread())
    try:
        assert tail(server.url_for("/status/204"), 1, timeout=10) == []
    finally:
        server.stop()
    assert "refused the stream" in capsys.readouterr().err


@pytest_twisted.ensureDeferred
async def test_metrics_example_serves_counts() -> None:
    """make_service/make_client from docs/metrics.md: /metrics counts both sides."""
    namespace = runnable_example("metrics.md")
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
