"""Metrics scraped over real HTTP (/metrics) while events flow: library, hub and daemon."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
import treq
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.helpers.metrics import WAIT, get, parse, scrape, scrape_until
from tests.helpers.system import TWISTD, free_port
from tests.helpers.waiting import block_until, until
from txsse import EventSource
from txsse.hub._options import Options as HubOptions
from txsse.hub._options import makeService as make_hub
from txsse.metrics import instrument_channel, instrument_source, metrics_resource
from txsse.server import EventStreamResource, MemoryChannel


@pytest_twisted.ensureDeferred
async def test_library_metrics_move_as_events_flow() -> None:
    """A server and a client instrumented in-process: /metrics follows every event."""
    registry = CollectorRegistry()
    channel = instrument_channel(MemoryChannel(), "news", registry=registry)
    root = Resource()
    root.putChild(b"events", EventStreamResource(channel, keepalive=None))
    root.putChild(b"metrics", metrics_resource(registry))
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    source = EventSource(f"{base}/events?token=secret")
    instrument_source(source, registry=registry)
    stream = {"stream": f"{base}/events"}
    try:
        source.startService()
        await source.when_open()
        samples = await scrape_until(
            f"{base}/metrics", lambda s: get(s, "txsse_server_subscribers", channel="news") == 1
        )
        assert get(samples, "txsse_client_connections_total", **stream) == 1
        assert get(samples, "txsse_client_ready_state", **stream) == 1
        assert get(samples, "txsse_client_events_total", **stream) == 0
        channel.publish("one")
        channel.publish("two")
        assert [(await source.next()).data for _ in range(2)] == ["one", "two"]
        samples = await scrape(f"{base}/metrics")
        assert get(samples, "txsse_client_events_total", **stream) == 2
        assert get(samples, "txsse_server_events_published_total", channel="news") == 2
        assert get(samples, "txsse_server_events_delivered_total", channel="news") == 2
        received = get(samples, "txsse_client_received_bytes_total", **stream)
        assert received > 0
        assert 0 <= get(samples, "txsse_client_seconds_since_last_byte", **stream) < WAIT
        channel.publish("three")
        assert (await source.next()).data == "three"
        samples = await scrape(f"{base}/metrics")
        assert get(samples, "txsse_client_events_total", **stream) == 3
        assert get(samples, "txsse_server_events_delivered_total", channel="news") == 3
        assert get(samples, "txsse_client_received_bytes_total", **stream) > received
    finally:
        await source.close()
        await scrape_until(
            f"{base}/metrics", lambda s: get(s, "txsse_server_subscribers", channel="news") == 0
        )
        await port.stopListening()


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest_twisted.ensureDeferred
async def test_hub_metrics_option(backend: str, request: pytest.FixtureRequest) -> None:
    """``twistd sse-hub --metrics`` counts publishes, subscribers and deliveries per topic."""
    hub_port, metrics_port = free_port(), free_port()
    redis = []
    if backend == "redis":
        redis = ["--redis", request.getfixturevalue("redis_server").url]
    options = HubOptions()
    options.parseOptions(
        [
            *redis,
            "--port",
            f"tcp:{hub_port}:interface=127.0.0.1",
            "--publish-token",
            "pub",
            "--keepalive",
            "0",
            "--metrics",
            f"tcp:{metrics_port}:interface=127.0.0.1",
            "--upstream",
            f"mirror=http://127.0.0.1:{hub_port}/topics/metered",
        ]
    )
    service = make_hub(options)
    service.startService()
    base = f"http://127.0.0.1:{hub_port}/topics/metered"
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    source = EventSource(base)
    topic = {"channel": "metered"}
    try:
        before = await scrape_until(
            metrics, lambda s: not redis or get(s, "txsse_server_redis_connected") == 1
        )
        source.startService()
        await source.when_open()
        # Our client and the relay.
        await scrape_until(metrics, lambda s: get(s, "txsse_server_subscribers", **topic) == 2)
        for data in (b"a", b"b"):
            response = await treq.post(
                base, data=data, headers={"Authorization": "Bearer pub"}, timeout=10
            )
            assert response.code == 200, await response.text()
        assert [(await source.next()).data for _ in range(2)] == ["a", "b"]
        after = await scrape(metrics)

        def moved(name: str) -> float:
            return get(after, name, **topic) - get(before, name, **topic)

        assert moved("txsse_server_events_published_total") == 2
        assert moved("txsse_server_events_delivered_total") == 4  # our client and the relay
        # The relay reads the topic back (client metrics) and republishes it to "mirror".
        upstream = {"stream": base}
        after = await scrape_until(
            metrics,
            lambda s: (
                get(s, "txsse_server_events_published_total", channel="mirror")
                - get(before, "txsse_server_events_published_total", channel="mirror")
                == 2
            ),
        )
        assert moved("txsse_server_events_published_total") == 2
        assert (
            get(after, "txsse_client_events_total", **upstream)
            - get(before, "txsse_client_events_total", **upstream)
            == 2
        )
        assert get(after, "txsse_client_ready_state", **upstream) == 1
        # The hub's own gauges: same names with either backend.
        assert get(after, "txsse_hub_subscribers") == 2
        assert get(after, "txsse_hub_topics") == 2  # metered and mirror
        if redis:
            server = {"server": request.getfixturevalue("redis_server").url}
            assert get(after, "txsse_hub_redis_connected", **server) == 1
            assert get(after, "txsse_hub_redis_connections", **server) == 2
            assert get(after, "txsse_hub_redis_topics", **server) == 1  # metered has subscribers
        else:
            assert not [key for key in after if key[0] == "txsse_hub_redis_connections"]
    finally:
        await source.close()
        await service.stopService()


@pytest.mark.slow
def test_daemon_metrics_option(tmp_path: Path) -> None:
    """``twistd -n sse --demo --metrics``: a real scrape shows the event count growing."""
    port = free_port()
    command = [
        TWISTD, "-n", "--pidfile=", f"--logfile={tmp_path / 'log'}",
        "sse", "--demo", "--output", str(tmp_path / "out"),
        "--metrics", f"tcp:{port}:interface=127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"

    def events() -> float:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                samples = parse(response.read().decode())
        except OSError:
            return -1.0
        found = [v for (n, _), v in samples.items() if n == "txsse_client_events_total"]
        return found[0] if found else -1.0

    def counted(check: Callable[[float], bool]) -> float | None:
        value = events()
        if proc.poll() is not None:
            log = (tmp_path / "log").read_text() if (tmp_path / "log").exists() else ""
            raise AssertionError(f"the daemon exited with {proc.returncode}:\n{log}")
        return value if check(value) else None

    try:
        first = block_until(lambda: counted(lambda v: v >= 1), "a first event counted", 30)
        block_until(lambda: counted(lambda v: v > first), "more events counted", 30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = (tmp_path / "out").read_text()
    assert out.count("\n") >= first + 1


@pytest_twisted.ensureDeferred
async def test_real_slow_client_eviction_is_counted() -> None:
    """A real socket that stops reading is evicted by EventStreamResource, and counted."""
    registry = CollectorRegistry()
    channel = instrument_channel(MemoryChannel(history=10), "slow", registry=registry)
    root = Resource()
    root.putChild(
        b"events",
        EventStreamResource(channel, keepalive=None, max_unsent=64 * 1024, slow_client_timeout=0),
    )
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    slow = socket.create_connection(("127.0.0.1", port.getHost().port), 5)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    def sample(name: str) -> float:
        return registry.get_sample_value(name, {"channel": "slow"}) or 0.0

    try:
        await until(lambda: sample("txsse_server_subscribers") >= 1, "the slow client", WAIT)
        for _ in range(4000):
            if sample("txsse_server_subscribers") == 0:
                break
            channel.publish("x" * 16384)
            await deferLater(reactor, 0)
        assert sample("txsse_server_slow_client_evictions_total") == 1
        assert sample("txsse_server_subscribers") == 0
        assert (
            0
            < sample("txsse_server_events_delivered_total")
            < sample("txsse_server_events_published_total")
        )
    finally:
        slow.close()
        await port.stopListening()
