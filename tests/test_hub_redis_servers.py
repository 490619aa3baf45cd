"""`twistd sse-hub` on two real redis-servers: constant connections, placement, restarts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory, Protocol

from tests.helpers.hub import HubProcess, publish
from tests.helpers.reading import Stream
from tests.helpers.redis import RedisServer
from tests.helpers.waiting import until
from txsse.hub._redisconn import parse_redis_url
from txsse.hub._servers import place, server_name

pytestmark = pytest.mark.slow

TOPICS = 5000


@pytest.fixture
def two_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Two fresh redis-servers, each on its own free loopback port."""
    servers = []
    try:
        for name in ("r0", "r1"):
            directory = tmp_path / name
            directory.mkdir()
            servers.append(RedisServer(directory))
            servers[-1].start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def clients(server: RedisServer) -> int:
    """``connected_clients`` from ``INFO clients``, not counting the asking connection."""
    info = server.command("INFO", "clients").decode()
    line = next(x for x in info.split("\r\n") if x.startswith("connected_clients:"))
    return int(line.split(":")[1]) - 1


def keys(server: RedisServer) -> int:
    """How many keys the server holds (``DBSIZE``)."""
    return int(server.command("DBSIZE").split(b"\r\n")[0][1:])


def owner(topic: str, servers: list[RedisServer]) -> int:
    """The index of the server a topic lives on, as every hub process computes it."""
    return place(topic, [server_name(parse_redis_url(s.url)) for s in servers])


class RawStream(Protocol):
    """A cheap subscriber: the ``data:`` lines of one topic's stream, over a raw socket."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.opened = False
        self.data: list[str] = []
        self._buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(  # type: ignore[union-attr]
            b"GET /topics/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.topic.encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if not self.opened and data.startswith(b"HTTP/1.1 200"):
            self.opened = True
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        self.data += [line[6:].decode() for line in lines if line.startswith(b"data: ")]


async def open_raw(port: int, topics: list[str], batch: int = 250) -> list[RawStream]:
    """Connect one raw subscriber per topic to the hub on ``port``, ``batch`` at a time.

    Batches stay within the hub's listen backlog: no SYN is dropped and retried later.
    """
    streams = [RawStream(t) for t in topics]
    for start in range(0, len(streams), batch):
        group = streams[start : start + batch]
        for stream in group:
            factory = ClientFactory.forProtocol(lambda s=stream: s)  # type: ignore[misc]
            reactor.connectTCP("127.0.0.1", port, factory)  # type: ignore[attr-defined]
        await until(lambda g=group: all(s.opened for s in g), timeout=30, what="streams to open")
    return streams


async def two_hubs(hubs: Callable[..., Any], servers: list[RedisServer]) -> list[HubProcess]:
    """Two hub processes, both on both servers."""
    args = ("--redis", servers[0].url, "--redis", servers[1].url, "--max-topics", "100000",
            "--keepalive", "0")  # fmt: skip
    return [await hubs(*args), await hubs(*args)]


def topic_on(index: int, servers: list[RedisServer], prefix: str) -> str:
    """A topic name that lives on ``servers[index]``."""
    return next(t for t in (f"{prefix}-{i}" for i in range(100)) if owner(t, servers) == index)


@pytest_twisted.ensureDeferred
async def test_5000_topics_hold_a_handful_of_connections_and_events_reach_their_topic_only(
    two_redis: list[RedisServer], hubs: Callable[..., Any]
) -> None:
    """5,000 topics on one hub: ≤ a few Redis connections per server; B's events reach A."""
    a, b = await two_hubs(hubs, two_redis)
    topics = [f"user-{i}" for i in range(TOPICS)]
    placed = [owner(t, two_redis) for t in topics]
    assert 0.4 * TOPICS < placed.count(0) < 0.6 * TOPICS  # spread over both servers
    streams = await open_raw(a.port, topics)
    for server in two_redis:
        # Two hubs, each a command and a pub/sub connection per server.
        assert clients(server) <= 4, server.command("CLIENT", "LIST")
    chosen = topics[::250]  # 20 topics, on both servers
    for topic in chosen:
        assert (await publish(b.base, topic, f"to {topic}")).code == 200
    assert all(keys(server) > 0 for server in two_redis)
    await until(lambda: all(streams[topics.index(t)].data for t in chosen), what="deliveries")
    for stream in streams:
        expected = [f"to {stream.topic}"] if stream.topic in chosen else []
        assert stream.data == expected
    for stream in streams:
        stream.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_client_resumes_through_either_process_on_either_server(
    two_redis: list[RedisServer], hubs: Callable[..., Any]
) -> None:
    """For a topic on each server: read on one process, resume on the other, nothing lost."""
    a, b = await two_hubs(hubs, two_redis)
    for index in (0, 1):
        topic = topic_on(index, two_redis, "doc")
        first, second = (a, b) if index == 0 else (b, a)
        on_first = await Stream(f"{first.base}/topics/{topic}").open()
        for i in range(3):
            assert (await publish(second.base, topic, f"e{i}")).code == 200
        await until(lambda s=on_first: len(s.events) == 3, what="live events")
        await on_first.close()
        for i in range(3, 6):
            assert (await publish(first.base, topic, f"e{i}")).code == 200
        last = on_first.events[-1].id
        on_second = await Stream(f"{second.base}/topics/{topic}", last_event_id=last).open()
        assert (await publish(first.base, topic, "e6")).code == 200
        await until(lambda s=on_second: len(s.events) == 4, what="replay and live")
        assert on_first.data + on_second.data == [f"e{i}" for i in range(7)]
        await on_second.close()
        assert keys(two_redis[index]) >= 1 and keys(two_redis[1 - index]) == index


@pytest_twisted.ensureDeferred
async def test_a_redis_restart_affects_only_its_topics_and_loses_nothing(
    two_redis: list[RedisServer], hubs: Callable[..., Any]
) -> None:
    """Server 0 restarted: its publishers get 503, server 1's topic flows; no loss, no duplicate."""
    a, b = await two_hubs(hubs, two_redis)
    down, up = topic_on(0, two_redis, "room"), topic_on(1, two_redis, "room")
    streams = {t: await Stream(f"{a.base}/topics/{t}").open() for t in (down, up)}
    stored: dict[str, list[str]] = {down: [], up: []}

    async def send(topic: str, data: str) -> int:
        code = int((await publish(b.base, topic, data)).code)
        if code == 200:
            stored[topic].append(data)
        return code

    for topic in (down, up):
        assert await send(topic, "before") == 200
    two_redis[0].stop()
    codes = []
    for i in range(100):  # until the hub noticed
        codes.append(await send(down, f"d{i}"))
        if codes[-1] == 503:
            break
    assert codes[-1] == 503 and set(codes) <= {200, 503}
    response = await publish(b.base, down, "refused")
    assert response.code == 503 and response.headers.getRawHeaders("retry-after") == ["1"]
    for i in range(3):  # the other server's topics are unaffected meanwhile
        assert await send(up, f"u{i}") == 200
    await until(lambda: streams[up].data == stored[up], what="the other server's topic")
    two_redis[0].start()
    for i in range(200):  # until publishing works again, then a few more
        if await send(down, f"a{i}") == 200 and len(stored[down]) >= 5:
            break
    await until(lambda: streams[down].data == stored[down], timeout=20, what="resumed stream")
    assert not streams[down].is_ended and streams[up].data == stored[up]
    for stream in streams.values():
        await stream.close()
