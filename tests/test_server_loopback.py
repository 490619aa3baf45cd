"""EventStreamResource on a real loopback socket, read by a real HTTP client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.helpers.memhttp import dechunk
from tests.helpers.rawclient import is_direct
from tests.helpers.reading import connect
from tests.helpers.serving import Recording
from tests.helpers.waiting import TIMEOUT, until
from txsse import Event, EventSource, EventStreamParser
from txsse.server import EventStreamResource, MemoryChannel

pytestmark = pytest.mark.usefixtures("direct_writes")


def body(response: bytes) -> bytearray:
    """The bytes after the headers of a raw HTTP response."""
    return bytearray(response.split(b"\r\n\r\n", 1)[1])


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


def tiny_client(url: str) -> socket.socket:
    """A blocking socket with a 4 KiB receive buffer (set before connecting) that sent a GET."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


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
    await until(lambda: channel.subscriber_count == 1, "the subscription")
    (stream,) = resource.stream._streams
    assert is_direct(stream) is direct_writes, "cleartext TCP takes the direct path if asked"
    published = [channel.publish(f"event {n}") for n in range(5)]
    received = await reader.take(5)
    resource.cut()
    await reader.done.addTimeout(TIMEOUT, reactor)
    await until(lambda: channel.subscriber_count == 0, "the subscription to be released")
    # Published while the client is away: must come back through the replay.
    published += [channel.publish(f"event {n}") for n in range(5, 10)]
    response, reader = await connect(url, parser)
    assert resource.requests[-1].getHeader(b"last-event-id") == published[4].encode()
    published += [channel.publish(f"event {n}") for n in range(10, 12)]
    received += await reader.take(7)
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
    await until(lambda: channel.subscriber_count == 2, "both clients to subscribe")
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
        received = await reader.take(len(published))
        assert [e.id for e in received] == published
        # What the slow client did get (through partial sends) is intact, in order.
        await until(
            lambda: any(r.channel is None for r in resource.requests), "the slow one's abort"
        )
        slow_ids = [e.id for e in EventStreamParser().feed(dechunk(body(drain(slow))))]
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
    await until(lambda: channel.subscriber_count == 1, "the client to subscribe")
    resource.stream.close(retry=2.0, spread=False)
    await reader.done.addTimeout(TIMEOUT, reactor)
    assert parser.retry == 2000
    resource.stream.reopen()


@pytest_twisted.ensureDeferred
async def test_until_can_fail() -> None:
    """The condition helper times out instead of hanging."""
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for never"):
        await until(lambda: False, "never", timeout=0.05)


@pytest_twisted.async_yield_fixture
async def source(server: tuple[MemoryChannel, Recording, str]) -> AsyncIterator[EventSource]:
    """Txsse's EventSource, open on the server's stream; closed after the test."""
    source = EventSource(server[2], reconnect_delay=0.01, max_reconnect_delay=0.05)
    source.startService()
    try:
        await source.when_open().addTimeout(TIMEOUT, reactor)
        yield source
    finally:
        await source.close()


@pytest_twisted.ensureDeferred
async def test_txsse_event_source_resumes_across_forced_disconnects(
    server: tuple[MemoryChannel, Recording, str], source: EventSource
) -> None:
    """The txsse EventSource, cut off three times server-side, gets every event once."""
    channel, resource, _ = server
    await until(lambda: channel.subscriber_count == 1, "the first subscription")
    published: list[str] = []
    received: list[Event] = []
    for round_ in range(3):
        published += [channel.publish(f"r{round_} e{n}") for n in range(4)]
        while len(received) < len(published):
            received.append(await source.next().addTimeout(TIMEOUT, reactor))
        connections = len(resource.requests)
        resource.cut()
        await until(lambda: channel.subscriber_count == 0, "the cut")
        # Published while the source is reconnecting: must come back in the replay.
        published += [channel.publish(f"r{round_} gap{n}") for n in range(3)]
        await until(
            lambda n=connections: len(resource.requests) > n,  # type: ignore[misc]
            "the reconnection",
        )
        assert resource.requests[-1].getHeader(b"last-event-id") == published[-4].encode()
    while len(received) < len(published):
        received.append(await source.next().addTimeout(TIMEOUT, reactor))
    assert [e.id for e in received] == published
    assert len({e.data for e in received}) == len(published)


@pytest_twisted.ensureDeferred
async def test_txsse_event_source_cut_before_its_first_event_misses_nothing(
    server: tuple[MemoryChannel, Recording, str], source: EventSource
) -> None:
    """The txsse EventSource takes the resume point and, cut before any event, loses none."""
    channel, resource, _ = server
    await until(lambda: source.last_event_id == "before-1", "the resume point")
    resource.cut()
    await until(lambda: channel.subscriber_count == 0, "the cut")
    published = [channel.publish(f"while away {n}") for n in range(3)]
    await until(lambda: len(resource.requests) == 2, "the reconnection")
    assert resource.requests[-1].getHeader(b"last-event-id") == b"before-1"
    received = [await source.next().addTimeout(TIMEOUT, reactor) for _ in published]
    assert [e.id for e in received] == published
    assert all(e.event == "message" for e in received), "no reset notice"
