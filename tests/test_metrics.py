"""Metrics: deterministic counting for sources and channels, and the no-cost guarantee."""

from __future__ import annotations

import importlib
import importlib.util
import math
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python import usage
from zope.interface import implementer

from tests.helpers.harness import Harness, harness
from txsse import Event, Received
from txsse._metrics import SourceMetrics, stream_label
from txsse._metricsopt import check_metrics_option
from txsse.errors import ChannelUnavailable
from txsse.metrics import instrument_channel, instrument_source, watch_redis
from txsse.server import ISubscriber, MemoryChannel, Replay

__all__ = ["harness"]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """One sample's current value (None if the series does not exist)."""
    return registry.get_sample_value(name, labels)


# Client


def test_data_signal_reports_bytes_and_events(harness: Harness) -> None:
    """The client's data signal gives each chunk's size and the events it completed."""
    source = harness.source()
    seen = harness.record(source, "data")
    source.startService()
    body = harness.agent.last.respond()
    body.write(b"data: a\n\ndata: b\n\ndata: c")
    body.write(b"\n\n")
    body.write(b": just a comment\n\n")
    assert [v for _, v in seen] == [Received(25, 2), Received(2, 1), Received(18, 0)]


def test_source_metrics_count_as_events_flow(harness: Harness) -> None:
    """Connections, events, bytes, ready state and reconnections by reason are counted."""
    registry = CollectorRegistry()
    source = harness.source(reconnect_delay=1.0, max_line_length=16)
    instrument_source(source, name="s", registry=registry)
    assert value(registry, "txsse_client_ready_state", stream="s") == 2
    source.startService()
    assert value(registry, "txsse_client_ready_state", stream="s") == 0
    body = harness.agent.last.respond()
    assert value(registry, "txsse_client_connections_total", stream="s") == 1
    assert value(registry, "txsse_client_ready_state", stream="s") == 1
    body.write(b"data: 1\n\ndata: 2\n\n")
    assert value(registry, "txsse_client_events_total", stream="s") == 2
    assert value(registry, "txsse_client_received_bytes_total", stream="s") == 18
    body.finish()
    assert (
        value(registry, "txsse_client_reconnections_total", stream="s", reason="StreamEnded") == 1
    )
    assert value(registry, "txsse_client_ready_state", stream="s") == 0
    harness.clock.advance(1.0)
    body = harness.agent.last.respond()
    assert value(registry, "txsse_client_connections_total", stream="s") == 2
    body.write(b"data: " + b"x" * 40 + b"\n")
    assert value(registry, "txsse_client_parse_errors_total", stream="s") == 1
    assert (
        value(registry, "txsse_client_reconnections_total", stream="s", reason="LineTooLong") == 1
    )
    source.close()
    assert value(registry, "txsse_client_ready_state", stream="s") == 2


def test_seconds_since_last_byte(harness: Harness) -> None:
    """The idle gauge is NaN before any byte, then the time since the last chunk."""
    registry = CollectorRegistry()
    now = [100.0]
    source = harness.started()
    SourceMetrics(source, "s", registry, clock=lambda: now[0])
    idle = "txsse_client_seconds_since_last_byte"
    assert math.isnan(value(registry, idle, stream="s") or 0.0)
    body = harness.agent.last.respond()
    body.write(b": ping\n\n")
    now[0] = 107.5
    assert value(registry, idle, stream="s") == 7.5
    body.write(b"data: x\n\n")
    assert value(registry, idle, stream="s") == 0.0


def test_remove_stops_counting(harness: Harness) -> None:
    """After remove() the source's activity is no longer counted."""
    registry = CollectorRegistry()
    source = harness.started()
    observer = instrument_source(source, name="s", registry=registry)
    body = harness.agent.last.respond()
    body.write(b"data: 1\n\n")
    observer.remove()
    body.write(b"data: 2\n\n")
    assert value(registry, "txsse_client_events_total", stream="s") == 1


def test_default_stream_label_hides_secrets() -> None:
    """The default label drops credentials, query and fragment (tokens live there)."""
    assert stream_label("https://u:p@h.example:8443/a/b?token=s#f") == "https://h.example:8443/a/b"
    assert stream_label("http://[::1]/x") == "http://[::1]/x"


# Channels


@implementer(ISubscriber)
class Sink:
    """A subscriber that records what it is sent; ``evict_after`` bytes closes it."""

    def __init__(self, evict_after: int | None = None) -> None:
        self.chunks: list[bytes] = []
        self.ended = False
        self.open = True
        self.evicted = False
        self.evict_after = evict_after
        self.channel: Any = None

    def send(self, chunk: bytes) -> None:
        if self.evict_after is not None and sum(map(len, self.chunks)) >= self.evict_after:
            self.open = False  # what EventStreamResource does to a slow client's stream
            self.evicted = True
            self.channel.unsubscribe(self)
            return
        self.chunks.append(chunk)

    def end(self) -> None:
        self.ended = True


def test_channel_counts_publish_delivery_replay_and_gaps() -> None:
    """A metered MemoryChannel counts published, delivered, replayed events and gaps."""
    registry = CollectorRegistry()
    channel = instrument_channel(MemoryChannel(history=2, first_id=1), "c", registry=registry)
    a, b = Sink(), Sink()
    channel.subscribe(a)
    channel.subscribe(b)
    assert value(registry, "txsse_server_subscribers", channel="c") == 2
    for data in ("x", "y", "z"):
        channel.publish(data)
    channel.publish_json({"k": 1})
    assert value(registry, "txsse_server_events_published_total", channel="c") == 4
    assert value(registry, "txsse_server_events_delivered_total", channel="c") == 8
    assert len(a.chunks) == 4
    replay = channel.subscribe(Sink(), "3")
    assert isinstance(replay, Replay) and not replay.gap
    assert value(registry, "txsse_server_replay_requests_total", channel="c") == 1
    assert value(registry, "txsse_server_events_replayed_total", channel="c") == 1
    assert value(registry, "txsse_server_replay_gaps_total", channel="c") == 0
    channel.subscribe(Sink(), "1")
    assert value(registry, "txsse_server_replay_gaps_total", channel="c") == 1
    assert value(registry, "txsse_server_events_replayed_total", channel="c") == 3
    channel.unsubscribe(a)
    channel.unsubscribe(a)
    assert value(registry, "txsse_server_subscribers", channel="c") == 3
    with pytest.raises(ValueError):
        channel.publish("bad", id="a\nb")
    assert (
        value(registry, "txsse_server_channel_errors_total", channel="c", operation="publish")
        is None
    )
    assert channel.subscriber_count == 3  # other attributes are the wrapped channel's
    assert channel.history == 2


def test_channel_counts_slow_client_evictions() -> None:
    """A subscriber evicted while being sent an event counts as an eviction, not a delivery."""
    registry = CollectorRegistry()
    channel = instrument_channel(MemoryChannel(), "c", registry=registry)
    slow = Sink(evict_after=1)
    slow.channel = channel
    channel.subscribe(slow)
    channel.publish("1")
    channel.publish("2")
    assert value(registry, "txsse_server_slow_client_evictions_total", channel="c") == 1
    assert value(registry, "txsse_server_events_delivered_total", channel="c") == 1
    assert value(registry, "txsse_server_subscribers", channel="c") == 0


class Broken:
    """An asynchronous channel whose backend is down."""

    history = 10

    def __init__(self) -> None:
        self.subscribers: list[Any] = []

    def publish(
        self, data: str, event: str | None = None, id: str | None = None, **extra: Any
    ) -> Deferred[str]:
        self.extra = extra
        return fail(ChannelUnavailable("Redis is unreachable"))

    def publish_json(self, obj: object, event: Any = None, id: Any = None) -> Deferred[str]:
        return succeed("7")

    def subscribe(self, subscriber: Any, last_event_id: str | None = None) -> Deferred[Replay]:
        if last_event_id == "down":
            return fail(ChannelUnavailable("Redis is unreachable"))
        self.subscribers.append(subscriber)
        return succeed(Replay(b"id: 1\ndata: a\n\n", True, "1"))

    def unsubscribe(self, subscriber: Any) -> None:
        pass


def test_channel_counts_backend_errors() -> None:
    """Failed publishes and subscriptions, and subscribers ended by the channel, are errors."""
    registry = CollectorRegistry()
    inner = Broken()
    channel = instrument_channel(inner, "r", registry=registry)  # type: ignore[arg-type]
    failures: list[Any] = []
    channel.publish("x", fields={"k": "v"}).addErrback(failures.append)  # type: ignore[attr-defined]
    assert inner.extra == {"fields": {"k": "v"}}
    ids: list[Any] = []
    channel.publish_json([1]).addCallback(ids.append)  # type: ignore[attr-defined]
    assert len(failures) == 1 and ids == ["7"]
    assert value(registry, "txsse_server_events_published_total", channel="r") == 1
    errors = "txsse_server_channel_errors_total"
    assert value(registry, errors, channel="r", operation="publish") == 1
    channel.subscribe(Sink(), "down").addErrback(failures.append)  # type: ignore[attr-defined]
    assert value(registry, errors, channel="r", operation="subscribe") == 1
    assert value(registry, "txsse_server_subscribers", channel="r") == 0
    sink = Sink()
    channel.subscribe(sink, "0")
    assert value(registry, "txsse_server_replay_gaps_total", channel="r") == 1
    inner.subscribers[0].end()
    assert sink.ended
    assert value(registry, errors, channel="r", operation="deliver") == 1
    assert value(registry, "txsse_server_subscribers", channel="r") == 0


# Nothing imported, nothing run, without metrics


@pytest.mark.slow
def test_nothing_is_imported_without_metrics() -> None:
    """Using a client, a server and the plugins' option parsing never imports prometheus_client."""
    script = textwrap.dedent(
        """
        import sys
        from twisted.internet import reactor, defer, task
        from twisted.web.server import Site
        import txsse
        import txsse.blocking
        from txsse.server import EventStreamResource, MemoryChannel
        from txsse.daemon import _options as _tap
        from txsse.hub import _options as _hubtap

        channel = MemoryChannel()
        port = reactor.listenTCP(0, Site(EventStreamResource(channel)), interface="127.0.0.1")
        url = f"http://127.0.0.1:{port.getHost().port}/"

        async def main():
            source = txsse.EventSource(url)
            source.startService()
            await source.when_open()
            channel.publish("hello")
            event = await source.next()
            assert event.data == "hello", event
            await source.close()
            await port.stopListening()

        def run(reactor):
            return defer.Deferred.fromCoroutine(main())

        def check(_):
            _hubtap.Options().parseOptions(["--publish-token", "t"])
            _tap.Options().parseOptions(["--url", "http://127.0.0.1:1/"])
            loaded = [m for m in ("prometheus_client", "txsse._metrics", "txsse.metrics")
                      if m in sys.modules]
            assert not loaded, loaded

        task.react(lambda reactor: run(reactor).addCallback(check))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_event_type_is_reexported() -> None:
    """The Received signal value is public, next to Event."""
    assert Received(3, 1).size == 3 and Event("x").data == "x"


# The --metrics option of the twistd plugins


@pytest.mark.parametrize("options", ["txsse.daemon._options", "txsse.hub._options"])
def test_metrics_option_refuses_bad_endpoints(options: str) -> None:
    """--metrics with an unparsable endpoint is a usage error naming the option."""
    parser = importlib.import_module(options).Options()
    with pytest.raises(usage.UsageError, match="--metrics 'tcp:nope'"):
        parser.parseOptions(["--metrics", "tcp:nope"])


def test_metrics_option_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus-client installed, --metrics says which extra to install."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    with pytest.raises(usage.UsageError, match=r"txsse\[metrics\]"):
        check_metrics_option("tcp:9100")
    monkeypatch.undo()
    assert check_metrics_option("tcp:9100:interface=127.0.0.1") == "tcp:9100:interface=127.0.0.1"


def test_watch_redis_exports_the_connection_state() -> None:
    """txsse_server_redis_connected follows the connection's ``connected``."""
    registry = CollectorRegistry()
    assert value(registry, "txsse_server_redis_connected") is None

    class Connection:
        connected = False

    connection = Connection()
    watch_redis(connection, registry)
    assert value(registry, "txsse_server_redis_connected") == 0
    connection.connected = True
    assert value(registry, "txsse_server_redis_connected") == 1
