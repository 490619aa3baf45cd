"""EventSource against a real twisted.web server on 127.0.0.1 (real sockets, real reactor)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from tests.helpers.clocks import HeldClock
from tests.helpers.paths import PATHS, options_for
from tests.helpers.sseserver import CutPlan, StreamServer
from txsse import Event, EventSource, ReadyState
from txsse.client._wire import make_agent, twisted_agent
from txsse.errors import (
    ConnectTimeout,
    ContentTypeError,
    HTTPStatusError,
    IdleTimeout,
    NetworkError,
    NoContent,
    RedirectError,
    StreamEnded,
)

TIMEOUT = 10.0
_path = {"name": "http11"}


@pytest.fixture(autouse=True, params=PATHS)
def http_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on txsse's HTTP/1.1 client and on Twisted's Agent."""
    _path["name"] = request.param
    yield request.param
    _path["name"] = "http11"


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[StreamServer]:
    """A scripted loopback server, stopped after the test."""
    running = StreamServer()
    yield running
    await running.stop()


def source_for(url: str, **kw: Any) -> EventSource:
    """A started source with fast reconnection."""
    kw.setdefault("reconnect_delay", 0.01)
    kw.setdefault("max_reconnect_delay", 0.05)
    source = EventSource(url, **options_for(_path["name"], **kw))
    source.startService()
    return source


def held_source(url: str, clock: HeldClock, **kw: Any) -> EventSource:
    """A started source on real sockets whose timeouts fire only when ``clock`` advances."""
    agent = make_agent(reactor) if _path["name"] == "http11" else twisted_agent(reactor)
    return source_for(url, reactor=clock, agent=agent, jitter=0.0, **kw)


async def take(source: EventSource, count: int) -> list[Event]:
    """The next ``count`` events, each within the timeout."""
    out = []
    for _ in range(count):
        out.append(await source.next().addTimeout(TIMEOUT, reactor))  # type: ignore[arg-type]
    return out


def signal(source: EventSource, name: str) -> Deferred[Any]:
    """A Deferred that fires with the next value of ``name``."""
    waiter: Deferred[Any] = Deferred()

    def once(value: Any) -> None:
        source.off(name, once)  # type: ignore[arg-type]
        waiter.callback(value)

    source.on(name, once)  # type: ignore[arg-type]
    return waiter.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_reconnects_after_clean_end(server: StreamServer) -> None:
    """A body that ends is reestablished with Last-Event-ID; events continue in order."""
    source = source_for(server.url("/events/3"))
    try:
        opened = await source.when_open()
        assert opened.headers.getRawHeaders(b"content-type") == [
            b"text/event-stream; charset=utf-8"
        ]
        first = await take(source, 3)
        ended = await signal(source, "error")
        assert isinstance(ended, StreamEnded)
        await server.requests(2)
        assert server.seen[1].headers["last-event-id"] == "3"
        assert [e.id for e in first] == ["1", "2", "3"]
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_drop_mid_event(server: StreamServer) -> None:
    """A connection dropped in the middle of an event loses only that partial event."""
    source = source_for(server.url("/drop-mid"))
    try:
        events = await take(source, 2)
        assert [e.data for e in events] == ["one", "two"]
        assert server.seen[1].headers["last-event-id"] == "1"
        assert any(isinstance(source.last_error, k) for k in (NetworkError, StreamEnded))
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_stall_hits_idle_timeout(server: StreamServer) -> None:
    """A server that stops sending is dropped after idle_timeout and the source reconnects."""
    clock = HeldClock()
    source = held_source(server.url("/stall"), clock, idle_timeout=60.0)
    try:
        reconnect = signal(source, "reconnect")
        [first] = await take(source, 1)
        clock.advance(59.9)
        assert source.ready_state == ReadyState.OPEN
        clock.advance(0.1)
        scheduled = await reconnect
        assert isinstance(scheduled.reason, IdleTimeout)
        clock.advance(scheduled.delay)
        [second] = await take(source, 1)
        assert [first.id, second.id] == ["1", "2"]
        assert server.seen[1].headers["last-event-id"] == "1"
    finally:
        await source.close()


class RawResponse(Protocol):
    """Answer any request with a close-delimited event stream (no length, no chunking)."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                b"id: 1\ndata: raw\n\n"
            )
            self.transport.loseConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_close_delimited_body_ends_cleanly() -> None:
    """A body without length or chunking is read to the close, which counts as its end."""
    port = reactor.listenTCP(  # type: ignore[attr-defined]
        0, Factory.forProtocol(RawResponse), interface="127.0.0.1"
    )
    source = source_for(f"http://127.0.0.1:{port.getHost().port}/")
    try:
        [event] = await take(source, 1)
        ended = await signal(source, "error")
        assert (event.data, event.id) == ("raw", "1")
        assert isinstance(ended, StreamEnded)
    finally:
        await source.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_connect_timeout_on_a_real_socket(server: StreamServer) -> None:
    """A server that never sends headers hits connect_timeout, and the source tries again."""
    clock = HeldClock()
    source = held_source(server.url("/hang"), clock, connect_timeout=30.0)
    try:
        reconnect = signal(source, "reconnect")
        await server.requests(1)
        clock.advance(30.0)
        scheduled = await reconnect
        assert isinstance(scheduled.reason, ConnectTimeout)
        clock.advance(scheduled.delay)
        await server.requests(2)
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_garbage_does_not_break_the_client(server: StreamServer) -> None:
    """Invalid UTF-8, NULs and junk lines are survived; the next good event arrives."""
    good: Deferred[Event] = Deferred()
    source = source_for(server.url("/garbage"))
    source.add_listener("good", good.callback)
    try:
        event = await good.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        assert event.data == "ok"
        assert source.ready_state == ReadyState.OPEN
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_redirect_followed_original_url_reused(server: StreamServer) -> None:
    """A 302 is followed, and reconnections start again from the original URL."""
    source = source_for(server.url("/redirect/events/2"))
    try:
        events = await take(source, 2)
        assert [e.data for e in events] == ["event 1", "event 2"]
        await server.requests(4)
        assert [s.path for s in server.seen[:4]] == [
            "/redirect/events/2",
            "/events/2",
            "/redirect/events/2",
            "/events/2",
        ]
        assert server.seen[2].headers["last-event-id"] == "2"
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_redirect_without_location(server: StreamServer) -> None:
    """A redirect without Location fails the source with RedirectError."""
    source = source_for(server.url("/redirect/none"))
    with pytest.raises(RedirectError):
        await source.when_open()
    assert source.ready_state == ReadyState.CLOSED


@pytest.mark.parametrize("status", ["500", "503-1"])
@pytest_twisted.ensureDeferred
async def test_server_errors_are_retried(server: StreamServer, status: str) -> None:
    """500 and 503 are retried (503 after its Retry-After), then the stream opens."""
    clock = HeldClock()
    source = held_source(server.url(f"/status/{status}"), clock, max_reconnect_delay=5.0)
    try:
        scheduled = await signal(source, "reconnect")
        assert isinstance(scheduled.reason, HTTPStatusError)
        if status == "503-1":
            assert scheduled.delay >= 1.0  # Retry-After: 1
        clock.advance(scheduled.delay)
        [event] = await take(source, 1)
        assert event.data == "event 1"
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("path", "error"),
    [("/status/204", NoContent), ("/status/404", HTTPStatusError), ("/text", ContentTypeError)],
)
@pytest_twisted.ensureDeferred
async def test_final_answers_close(server: StreamServer, path: str, error: type) -> None:
    """204, 404 and a wrong content type close the source for good with a clear error."""
    source = source_for(server.url(path))
    with pytest.raises(error):
        await source.when_open()
    with pytest.raises(error):
        await source.next()
    assert source.ready_state == ReadyState.CLOSED
    assert len(server.seen) == 1


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_retried() -> None:
    """A refused connection is a NetworkError, and the source keeps trying."""
    probe = StreamServer()
    url = probe.url("/events/1")
    await probe.stop()
    source = source_for(url)
    try:
        first = await signal(source, "reconnect")
        second = await signal(source, "reconnect")
        assert isinstance(first.reason, NetworkError)
        assert second.attempt == first.attempt + 1
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_post_body_reaches_server(server: StreamServer) -> None:
    """A POST body and custom headers reach the server on every attempt."""
    source = source_for(
        server.url("/events/1"),
        method="POST",
        body=b'{"prompt": "hi"}',
        headers={"Content-Type": "application/json"},
    )
    try:
        await take(source, 1)
        await server.requests(2)
        for seen in server.seen[:2]:
            assert (seen.method, seen.body) == ("POST", b'{"prompt": "hi"}')
            assert seen.headers["accept"] == "text/event-stream"
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_fifty_forced_disconnects_exactly_once_in_order(server: StreamServer) -> None:
    """Fifty drops at random byte offsets: every event arrives exactly once, in order."""
    total = 400
    server.plan = CutPlan.random(total, cuts=50, seed=20261122)
    source = source_for(server.url("/cut/"), reconnect_delay=0.005, max_reconnect_delay=0.02)
    try:
        events = await take(source, total)
        assert [e.data for e in events] == [f"event {n}" for n in range(1, total + 1)]
        assert server.plan.cuts == []
        assert len(server.seen) >= 51
        with pytest.raises(NoContent):
            await source.next().addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        assert len(source.queue.pending) == 0
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_back_pressure_on_a_real_socket(server: StreamServer) -> None:
    """With queue_size the socket is paused: the queue never holds more than N plus one read."""
    total = 20000
    source = source_for(server.url(f"/events/{total}"), queue_size=10)
    try:
        await source.when_open()
        peak = 0
        events = []
        for _ in range(total):
            events.append(await source.next().addTimeout(TIMEOUT, reactor))  # type: ignore[arg-type]
            peak = max(peak, len(source.queue.pending))
            await deferLater(reactor, 0)  # type: ignore[arg-type]  # a slow consumer
        assert [e.id for e in events] == [str(n) for n in range(1, total + 1)]
        one_read = 65536 // len(b"id: 1\ndata: event 1\n\n")  # events in one 64 KiB read
        assert peak <= 10 + one_read < total // 5
    finally:
        await source.close()
