"""Every byte queued for a client is bounded, on real sockets, on every transport (issue 10).

HTTP/1.1 and HTTP/1.0 in cleartext, HTTP/1.1 over TLS and HTTP/2 over TLS: a
replay to clients that never read stays bounded in the server and they are
evicted; a burst reaches a client that reads, which is never evicted for it;
a client that stops reading still is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.helpers.rawclient import MODES, RawClient, listen, server_buffered
from tests.helpers.serving import Recording
from tests.helpers.waiting import TIMEOUT
from txsse.server import EventStreamResource, MemoryChannel

pytestmark = [
    pytest.mark.usefixtures("direct_writes"),
    pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning"),
]


def below_txsse(mode: str) -> int:
    """What txsse may hand a transport beyond its own backlog.

    The transport's 64 KiB write buffer, one 64 KiB piece, framing and TLS
    overhead; on HTTP/2 also up to 64 KiB held in Twisted's HTTP/2 queue.
    """
    return (3 if mode == "h2" else 2) * 64 * 1024 + 16 * 1024


class Server:
    """A channel served at /events on 127.0.0.1 over one kind of transport."""

    def __init__(self, mode: str, channel: MemoryChannel, **options: Any) -> None:
        if mode == "h2":
            pytest.importorskip("h2", reason="HTTP/2 needs twisted[http2] (the test extra has it)")
        self.channel = channel
        self.events = Recording(EventStreamResource(channel, keepalive=None, **options))
        root = Resource()
        root.putChild(b"events", self.events)
        self.port = listen(Site(root, timeout=None), mode)
        self.number = self.port.getHost().port  # type: ignore[attr-defined]
        self.peak = 0

    def close(self) -> Deferred[None]:
        """Close every stream and stop listening."""
        self.events.stream.close()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.port.stopListening()

    def sample(self) -> None:
        """Note the most bytes held below txsse for any one open stream."""
        for request in self.events.requests:
            self.peak = max(self.peak, server_buffered(request))

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Run the reactor, sampling, until ``condition()``; fail after TIMEOUT seconds."""
        deadline = reactor.seconds() + TIMEOUT  # type: ignore[attr-defined]
        while not condition():
            self.sample()
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                raise AssertionError(f"timed out waiting for {what}")
            await deferLater(reactor, 0.002)  # type: ignore[arg-type]
        self.sample()


@pytest_twisted.async_yield_fixture
async def running() -> AsyncIterator[list[Any]]:
    """The servers and clients a test starts; each closed after it, in order."""
    started: list[Any] = []
    yield started
    for item in started:
        await maybeDeferred(item.close)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest_twisted.ensureDeferred
async def test_replay_to_clients_that_never_read_stays_bounded(
    mode: str, running: list[Any]
) -> None:
    """Clients that resume with a bogus id and never read hold little, and are evicted."""
    channel = MemoryChannel(history=200, first_id=1)
    for _ in range(200):
        channel.publish("x" * 20_000)  # 4 MB of history: the whole of it is the replay
    server = Server(mode, channel, slow_client_timeout=1.0)
    running.append(server)
    for _ in range(5):
        running.append(
            RawClient(
                server.number, mode, headers={"last-event-id": "bogus"}, read=False, rcvbuf=4096
            )
        )
    await server.wait(lambda: len(server.events.requests) == 5, "5 subscriptions")
    await server.wait(lambda: channel.subscriber_count == 0, "every client's eviction")
    assert server.peak < below_txsse(mode), f"{server.peak} bytes held for one client"
    assert server.events.stream.stream_count == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest_twisted.ensureDeferred
async def test_burst_reaches_a_reading_client(mode: str, running: list[Any]) -> None:
    """1000 events of 200 bytes published in one turn all reach a reading client, not evicted."""
    channel = MemoryChannel(history=10, first_id=1)
    server = Server(mode, channel)  # the defaults: max_unsent 64 KiB, 10 s without progress
    running.append(server)
    reader = RawClient(server.number, mode)
    running.append(reader)
    await server.wait(lambda: channel.subscriber_count == 1, "the subscription")
    ids = [channel.publish("y" * 180) for _ in range(1000)]
    await server.wait(lambda: len(reader.events) == 1000 or reader.closed.is_set(), "events")
    assert [e.id for e in reader.events] == ids
    assert channel.subscriber_count == 1, "the reading client was evicted"
    assert not reader.closed.is_set()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest_twisted.ensureDeferred
async def test_client_that_stops_reading_is_still_evicted(mode: str, running: list[Any]) -> None:
    """A client that never reads is evicted once over the bound for the timeout; others go on."""
    channel = MemoryChannel(history=10, first_id=1)
    server = Server(mode, channel, slow_client_timeout=0.5)
    running.append(server)
    reader = RawClient(server.number, mode)
    staller = RawClient(server.number, mode, read=False, rcvbuf=4096)
    running += [reader, staller]
    await server.wait(lambda: channel.subscriber_count == 2, "both subscriptions")
    ids: list[str] = []
    for _ in range(2000):  # about 0.5 MB/s, which the reader takes easily
        if channel.subscriber_count < 2:
            break
        ids.extend(channel.publish("z" * 1000) for _ in range(5))
        server.sample()
        await deferLater(reactor, 0.01)  # type: ignore[arg-type]
    assert channel.subscriber_count == 1, "the client that stopped reading was never evicted"
    await server.wait(lambda: len(reader.events) == len(ids), "every event for the reader")
    assert [e.id for e in reader.events] == ids
    assert server.peak < below_txsse(mode), f"{server.peak} bytes held for one client"
