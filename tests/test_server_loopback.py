"""EventStreamResource on a real loopback socket, read by a real HTTP client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.resource import Resource
from twisted.web.server import Site

from txsse import Event, EventSource, EventStreamParser
from txsse.server import EventStreamResource, MemoryChannel
from txsse.server._direct import DirectWriter

pytestmark = pytest.mark.usefixtures("direct_writes")

TIMEOUT = 10.0


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Let the reactor run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while not condition():
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.005)  # type: ignore[arg-type]


def drain(sock: socket.socket) -> bytes:
    """Everything a blocking socket still delivers, until EOF, reset or timeout."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def tiny_client(url: str, headers: bytes = b"", version: bytes = b"HTTP/1.1") -> socket.socket:
    """A blocking socket with a 4 KiB receive buffer (set before connecting) that sent a GET."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    sock.sendall(b"GET /events " + version + b"\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    return sock


def dechunk(raw: bytes) -> bytes:
    """The body of a (possibly truncated) chunked HTTP/1.1 response."""
    body = bytearray()
    rest = raw.split(b"\r\n\r\n", 1)[1]
    while b"\r\n" in rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        assert rest[size : size + 2] == b"\r\n", "chunk framing broken"
        body += rest[:size]
        rest = rest[size + 2 :]
    return bytes(body)


def is_direct(stream: Any) -> bool:
    """Whether ``stream`` writes through the direct socket path."""
    return isinstance(getattr(stream._write, "__self__", None), DirectWriter)


class Recording(Resource):
    """Serve an EventStreamResource and remember each request (to cut it server-side)."""

    isLeaf = True

    def __init__(self, stream: EventStreamResource) -> None:
        super().__init__()
        self.stream = stream
        self.requests: list[Any] = []

    def render(self, request: Any) -> Any:
        self.requests.append(request)
        return self.stream.render(request)

    def cut(self) -> None:
        """Abort the newest connection, as a crash or network failure would."""
        channel = self.requests[-1].channel
        connection = getattr(channel, "_conn", None)  # an HTTP/2 stream's connection
        (connection or channel).transport.abortConnection()


class EventReader(Protocol):
    """Body protocol: feed the parser, queue events, fire ``done`` at the end."""

    def __init__(self, parser: EventStreamParser) -> None:
        self.parser = parser
        self.queue: DeferredQueue[Event] = DeferredQueue()
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            assert isinstance(item, Event)
            self.queue.put(item)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(None)


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[tuple[MemoryChannel, Recording, str]]:
    """A channel served at http://127.0.0.1:<port>/events on the real reactor."""
    channel = MemoryChannel(history=100, first_id=1)
    resource = Recording(EventStreamResource(channel, keepalive=5.0))
    root = Resource()
    root.putChild(b"events", resource)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield channel, resource, f"http://127.0.0.1:{port.getHost().port}/events"
    resource.stream.close()
    await port.stopListening()


async def connect(url: str, parser: EventStreamParser) -> tuple[IResponse, EventReader]:
    """GET ``url`` on a fresh connection, resuming after the parser's last event id."""
    headers = Headers({b"Accept": [b"text/event-stream"]})
    if parser.last_event_id:
        headers.addRawHeader(b"Last-Event-ID", parser.last_event_id.encode())
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    response = await agent.request(b"GET", url.encode(), headers).addTimeout(TIMEOUT, reactor)
    reader = EventReader(parser)
    response.deliverBody(reader)
    return response, reader


async def take(reader: EventReader, count: int) -> list[Event]:
    """The next ``count`` events, each waited for with a timeout."""
    return [await reader.queue.get().addTimeout(TIMEOUT, reactor) for _ in range(count)]


@pytest_twisted.ensureDeferred
async def test_raw_client_resumes_across_forced_disconnect(
    server: tuple[MemoryChannel, Recording, str], direct_writes: bool
) -> None:
    """A client cut off server-side reconnects with Last-Event-ID and loses nothing."""
    channel, resource, url = server
    parser = EventStreamParser()
    response, reader = await connect(url, parser)
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    await wait_for(lambda: channel.subscriber_count == 1, "the subscription")
    (stream,) = resource.stream._streams
    assert is_direct(stream) is direct_writes, "cleartext TCP takes the direct path if asked"
    published = [channel.publish(f"event {n}") for n in range(5)]
    received = await take(reader, 5)
    resource.cut()
    await reader.done.addTimeout(TIMEOUT, reactor)
    await wait_for(lambda: channel.subscriber_count == 0, "the subscription to be released")
    # Published while the client is away: must come back through the replay.
    published += [channel.publish(f"event {n}") for n in range(5, 10)]
    response, reader = await connect(url, parser)
    assert resource.requests[-1].getHeader(b"last-event-id") == published[4].encode()
    published += [channel.publish(f"event {n}") for n in range(10, 12)]
    received += await take(reader, 7)
    assert [e.id for e in received] == published
    assert [e.data for e in received] == [f"event {n}" for n in range(12)]
    resource.cut()
    await reader.done.addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_slow_socket_is_evicted_while_fast_client_keeps_up(
    server: tuple[MemoryChannel, Recording, str],
) -> None:
    """A real client that stops reading is disconnected; a reading client gets every event."""
    channel, resource, url = server
    resource.stream.max_unsent = 64 * 1024
    resource.stream.slow_client_timeout = 0.2
    slow = tiny_client(url)
    parser = EventStreamParser()
    _, reader = await connect(url, parser)
    await wait_for(lambda: channel.subscriber_count == 2, "both clients to subscribe")
    payload = "x" * 16384
    published: list[str] = []
    try:
        for _ in range(4000):
            if channel.subscriber_count < 2:
                break
            published.append(channel.publish(payload))
            await deferLater(reactor, 0)  # type: ignore[arg-type]
        assert channel.subscriber_count == 1, "the slow client was never evicted"
        assert len(resource.stream._streams) == 1
        received = await take(reader, len(published))
        assert [e.id for e in received] == published
        # What the slow client did get (through partial sends) is intact, in order.
        await wait_for(
            lambda: any(r.channel is None for r in resource.requests), "the slow one's abort"
        )
        slow_ids = [e.id for e in EventStreamParser().feed(dechunk(drain(slow)))]
        assert slow_ids == published[: len(slow_ids)]
    finally:
        slow.close()
    resource.cut()
    await reader.done.addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_close_reaches_real_client(server: tuple[MemoryChannel, Recording, str]) -> None:
    """Shutdown sends the final retry and ends the real connection."""
    channel, resource, url = server
    parser = EventStreamParser()
    _, reader = await connect(url, parser)
    await wait_for(lambda: channel.subscriber_count == 1, "the client to subscribe")
    resource.stream.close(retry=2.0, spread=False)
    await reader.done.addTimeout(TIMEOUT, reactor)
    assert parser.retry == 2000
    resource.stream.reopen()


@pytest_twisted.ensureDeferred
async def test_wait_for_can_fail() -> None:
    """The condition helper times out instead of hanging."""
    with pytest.raises(AssertionError, match="timed out waiting for never"):
        await wait_for(lambda: False, "never", timeout=0.05)


@pytest_twisted.ensureDeferred
async def test_txsse_event_source_resumes_across_forced_disconnects(
    server: tuple[MemoryChannel, Recording, str],
) -> None:
    """The txsse EventSource, cut off three times server-side, gets every event once."""
    channel, resource, url = server
    source = EventSource(url, reconnect_delay=0.01, max_reconnect_delay=0.05)
    source.startService()
    try:
        await source.when_open().addTimeout(TIMEOUT, reactor)
        await wait_for(lambda: channel.subscriber_count == 1, "the first subscription")
        published: list[str] = []
        received: list[Event] = []
        for round_ in range(3):
            published += [channel.publish(f"r{round_} e{n}") for n in range(4)]
            while len(received) < len(published):
                received.append(await source.next().addTimeout(TIMEOUT, reactor))
            connections = len(resource.requests)
            resource.cut()
            await wait_for(lambda: channel.subscriber_count == 0, "the cut")
            # Published while the source is reconnecting: must come back in the replay.
            published += [channel.publish(f"r{round_} gap{n}") for n in range(3)]
            await wait_for(
                lambda n=connections: len(resource.requests) > n,  # type: ignore[misc]
                "the reconnection",
            )
            assert resource.requests[-1].getHeader(b"last-event-id") == published[-4].encode()
        while len(received) < len(published):
            received.append(await source.next().addTimeout(TIMEOUT, reactor))
        assert [e.id for e in received] == published
        assert len({e.data for e in received}) == len(published)
    finally:
        await source.close()
