"""RedisStreamChannel and RedisConnection against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from tests.helpers.reading import Stream
from tests.helpers.redis import RedisServer
from tests.helpers.waiting import until
from txsse import EventStreamParser
from txsse.errors import ChannelUnavailable
from txsse.hub._pubsub import shared_pubsub
from txsse.hub._redis import RedisStreamChannel
from txsse.hub._redisconn import RedisConnection, parse_redis_url
from txsse.server._channel import IEventChannel, ISubscriber, Replay

pytestmark = pytest.mark.slow


@implementer(ISubscriber)
class Recorder:
    """Collects what a channel sends; parses it back into events."""

    def __init__(self) -> None:
        self.parser = EventStreamParser()
        self.events: list[Any] = []
        self.raw = b""
        self.ended = False

    def send(self, chunk: bytes) -> None:
        self.raw += chunk
        self.events.extend(self.parser.feed(chunk))

    def end(self) -> None:
        self.ended = True

    def take(self, replay: Replay) -> Replay:
        self.send(replay.chunk)
        return replay

    @property
    def data(self) -> list[str]:
        return [e.data for e in self.events]


@pytest_twisted.async_yield_fixture
async def conn(redis_server: RedisServer) -> AsyncIterator[RedisConnection]:
    """A started connection to the test's redis-server."""
    connection = RedisConnection(redis_server.url, reply_timeout=5.0)
    connection.startService()
    await connection.when_connected()
    yield connection
    await connection.stopService()


async def subscribe(channel: RedisStreamChannel, last_event_id: str | None = None) -> Recorder:
    recorder = Recorder()
    await channel.subscribe(recorder, last_event_id).addCallback(recorder.take)
    return recorder


def test_parse_redis_url() -> None:
    """URLs give host, port, db, credentials and TLS; bad ones a clear ValueError."""
    url = parse_redis_url("rediss://user:p%40ss@example.com:6380/2")
    assert (url.host, url.port, url.db, url.username, url.password, url.tls) == (
        "example.com", 6380, 2, "user", "p@ss", True,
    )  # fmt: skip
    assert "p@ss" not in str(url)
    assert parse_redis_url("redis://localhost").port == 6379
    assert parse_redis_url("unix:///run/redis.sock?db=3").path == "/run/redis.sock"
    for bad in ("http://x", "redis://", "redis://h/x", "redis://h:99999999"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


def test_provides_interface() -> None:
    """The channel provides IEventChannel and validates its arguments."""
    conn = RedisConnection("redis://127.0.0.1:1")
    assert IEventChannel.providedBy(RedisStreamChannel(conn, "k"))
    for kwargs in ({"history": 0}, {"batch": 0}, {"block": 0}):
        with pytest.raises(ValueError):
            RedisStreamChannel(conn, "k", **kwargs)


@pytest_twisted.ensureDeferred
async def test_publish_returns_stream_ids_and_fans_out(conn: RedisConnection) -> None:
    """Publish answers the stream id; two subscribers get every event, encoded once."""
    channel = RedisStreamChannel(conn, "t:fan", history=100)
    a, b = await subscribe(channel), await subscribe(channel)
    ids = [await channel.publish(f"e{i}", event="tick" if i % 2 else None) for i in range(5)]
    assert all(parse_id_ok(i) for i in ids) and ids == sorted(ids, key=split)
    await until(lambda: len(a.events) == 5 and len(b.events) == 5)
    assert a.data == [f"e{i}" for i in range(5)]
    assert [e.id for e in b.events] == ids
    assert [e.event for e in b.events] == ["message", "tick", "message", "tick", "message"]
    assert channel.subscriber_count == 2
    channel.unsubscribe(a)
    channel.unsubscribe(b)
    assert channel.subscriber_count == 0
    await channel.close()


def split(text: str) -> tuple[int, int]:
    ms, seq = text.split("-")
    return int(ms), int(seq)


def parse_id_ok(text: str) -> bool:
    return all(part.isdigit() for part in text.split("-")) and text.count("-") == 1


@pytest_twisted.ensureDeferred
async def test_replay_after_id_then_live_without_gap_or_duplicate(conn: RedisConnection) -> None:
    """Resuming after an id replays what followed it, then joins live events exactly."""
    channel = RedisStreamChannel(conn, "t:replay", history=100)
    ids = [await channel.publish(f"e{i}") for i in range(10)]
    live = await subscribe(channel)
    resumed = await subscribe(channel, ids[3])
    assert resumed.data == [f"e{i}" for i in range(4, 10)]
    for i in range(10, 15):
        await channel.publish(f"e{i}")
    await until(lambda: len(resumed.events) == 11 and len(live.events) == 5)
    assert resumed.data == [f"e{i}" for i in range(4, 15)]
    assert live.data == [f"e{i}" for i in range(10, 15)]
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_publishers_and_joins_lose_nothing(conn: RedisConnection) -> None:
    """Subscribers joining while events stream in get each event exactly once, in order."""
    channel = RedisStreamChannel(conn, "t:race", history=10_000)
    first = await channel.publish("start")
    publishing = [channel.publish(f"e{i}") for i in range(300)]
    joins: list[Deferred[Any]] = []
    recorders: list[Recorder] = []
    for i in range(3):
        recorder = Recorder()
        recorders.append(recorder)
        joins.append(channel.subscribe(recorder, first).addCallback(recorder.take))
        publishing += [channel.publish(f"f{i}-{j}") for j in range(50)]
    await Deferred.fromCoroutine(_all(publishing))
    await Deferred.fromCoroutine(_all(joins))
    expected = [f"e{i}" for i in range(300)] + [f"f{i}-{j}" for i in range(3) for j in range(50)]
    await until(lambda: all(len(r.events) == len(expected) for r in recorders), what="all events")
    for recorder in recorders:
        assert recorder.data == expected
    await channel.close()


async def _all(ds: list[Deferred[Any]]) -> None:
    for d in ds:
        await d


@pytest_twisted.ensureDeferred
async def test_gap_when_id_older_than_history(conn: RedisConnection) -> None:
    """An id trimmed away (or unknown, or in the future) is a gap with the whole history."""
    channel = RedisStreamChannel(conn, "t:gap", history=1)
    old = await channel.publish("old")
    for i in range(300):  # MAXLEN ~ trims whole nodes: publish well past the history
        await channel.publish(f"e{i}")
    replay = await channel.subscribe(Recorder(), old)
    assert replay.gap and replay.oldest_id is not None and split(replay.oldest_id) > split(old)
    assert replay.chunk.endswith(b"data: e299\n\n")
    for bad in ("not-an-id", "99999999999999-0"):
        assert (await channel.subscribe(Recorder(), bad)).gap
    latest = await channel.publish("latest")
    exact = await channel.subscribe(Recorder(), latest)
    assert not exact.gap and exact.chunk == b"" and exact.position == latest
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_unknown_stream_is_a_gap_only_when_an_id_is_given(conn: RedisConnection) -> None:
    """A stream that does not exist: no replay for new subscribers, a gap for resumers."""
    channel = RedisStreamChannel(conn, "t:none")
    assert await channel.subscribe(Recorder()) == Replay(b"", False, None, "0-0")
    assert (await channel.subscribe(Recorder(), "1-0")).gap
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_position_is_the_resume_point(conn: RedisConnection) -> None:
    """Replay.position resumes without a gap: "0-0" on an empty stream, else the newest id."""
    channel = RedisStreamChannel(conn, "t:position", history=100)
    empty = await channel.subscribe(Recorder())
    assert empty.position == "0-0"
    first = [await channel.publish(f"e{n}") for n in range(3)]
    resumed = await subscribe(channel, empty.position)
    assert [e.id for e in resumed.events] == first
    current = await channel.subscribe(Recorder())
    assert current.position == first[-1]
    later = [await channel.publish(f"f{n}") for n in range(2)]
    again = await channel.subscribe(Recorder(), current.position)
    assert not again.gap
    assert [e.id for e in EventStreamParser().feed(again.chunk)] == later
    assert again.position == later[-1]
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_bad_events_fail_with_value_error(conn: RedisConnection) -> None:
    """Event types with line breaks and ids Redis refuses fail with ValueError."""
    channel = RedisStreamChannel(conn, "t:bad")
    with pytest.raises(ValueError):
        await channel.publish("x", event="a\nb")
    await channel.publish("x", id="5-0")
    with pytest.raises(ValueError, match="id"):
        await channel.publish("y", id="4-0")
    assert await channel.publish("z", id="6-0") == "6-0"
    assert await channel.publish_json({"a": [1]}) is not None


@pytest_twisted.ensureDeferred
async def test_publish_fails_fast_while_redis_is_down_and_recovers(
    redis_server: RedisServer,
    conn: RedisConnection,
) -> None:
    """Redis down: publish fails at once with ChannelUnavailable; the live stream survives."""
    channel = RedisStreamChannel(conn, "t:outage", history=100)
    sub = await subscribe(channel)
    await channel.publish("before")
    await until(lambda: sub.data == ["before"])
    redis_server.stop()
    await until(lambda: not conn.connected, what="the connection to notice")
    refused: list[Failure] = []
    channel.publish("during").addErrback(refused.append)
    assert refused and refused[0].check(ChannelUnavailable), "not failed at once"
    with pytest.raises(ChannelUnavailable):
        await channel.subscribe(Recorder())
    redis_server.start()
    await conn.when_connected()
    await channel.publish("after")
    await until(lambda: sub.data == ["before", "after"], what="the reader to reconnect")
    assert not sub.ended
    await channel.close()


def test_redis_names_are_exported_lazily() -> None:
    """txsse.server exports the Redis classes without importing txredisapi up front."""
    import subprocess
    import sys

    import txsse.server

    assert txsse.server.RedisStreamChannel is RedisStreamChannel
    assert txsse.server.RedisConnection is RedisConnection
    code = "import sys, txsse.server; print('txredisapi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.stdout.strip() == b"False", result.stderr
    with pytest.raises(AttributeError):
        txsse.server.NoSuchName  # noqa: B018


@pytest_twisted.ensureDeferred
async def test_fields_are_stored_with_the_entry_but_not_sent(conn: RedisConnection) -> None:
    """Extra fields go into the entry (newest_fields reads them), never to subscribers."""
    channel = RedisStreamChannel(conn, "t:fields")
    assert await channel.newest_fields() is None
    sub = await subscribe(channel)
    await channel.publish("x", "kind", fields={"upstream-id": "u7"})
    assert await channel.newest_fields() == {"data": "x", "event": "kind", "upstream-id": "u7"}
    await until(lambda: len(sub.events) == 1)
    assert sub.events[0].data == "x" and b"u7" not in sub.raw
    with pytest.raises(ValueError, match="reserved"):
        await channel.publish("y", fields={"data": "z"})
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_lease_has_one_holder_and_release_lets_another_take_it(conn: RedisConnection) -> None:
    """One holder at a time; only the holder releases; a released lease is taken at once."""
    from txsse.hub._lease import RedisLease

    first = RedisLease(conn, "t:lease", ttl=30, holder="first")
    second = RedisLease(conn, "t:lease", ttl=30, holder="second")
    assert await first.acquire() is True
    assert await second.acquire() is False
    assert await first.acquire() is True  # renewal
    assert await second.release() is False  # not its lease
    assert await first.release() is True
    assert await second.acquire() is True
    with pytest.raises(ValueError):
        RedisLease(conn, "k", ttl=0)


@pytest_twisted.ensureDeferred
async def test_lease_expiry_is_set_in_redis_by_each_acquire_of_its_holder(
    conn: RedisConnection,
) -> None:
    """Redis keeps the lease's clock: taking or renewing it sets the key to expire ttl later."""
    from txsse.hub._lease import RedisLease

    holder = RedisLease(conn, "t:lease", ttl=30, holder="first")
    other = RedisLease(conn, "t:lease", ttl=30, holder="second")
    assert await holder.acquire() is True
    assert 0 < await pttl(conn, "t:lease") <= 30_000
    await conn.execute("PERSIST", "t:lease")  # now it would never expire
    assert await other.acquire() is False
    assert await pttl(conn, "t:lease") == -1  # a refused acquire extends nothing
    assert await holder.acquire() is True
    assert 0 < await pttl(conn, "t:lease") <= 30_000  # the renewal set the expiry again


@pytest_twisted.ensureDeferred
async def test_an_expired_lease_is_taken_by_another_holder(conn: RedisConnection) -> None:
    """Once Redis expires a holder's key (a 1 ms lease), another holder takes the lease."""
    from txsse.hub._lease import RedisLease

    brief = RedisLease(conn, "t:lease", ttl=0.001, holder="brief")
    other = RedisLease(conn, "t:lease", ttl=30, holder="other")
    assert await brief.acquire() is True
    await until(other.acquire, "Redis to expire the 1 ms lease")
    assert await brief.acquire() is False
    assert await brief.release() is False


async def pttl(conn: RedisConnection, key: str) -> int:
    """Milliseconds before Redis expires ``key`` (-1: never, -2: no such key)."""
    reply = await conn.execute("PTTL", key)
    assert isinstance(reply, int)
    return reply


@pytest_twisted.ensureDeferred
async def test_events_missed_by_a_dropped_pubsub_connection_come_from_the_stream_once(
    redis_server: RedisServer, conn: RedisConnection
) -> None:
    """Pub/sub connection killed: what was published meanwhile arrives once, in order."""
    channel = RedisStreamChannel(conn, "t:killed", history=100)
    other = RedisStreamChannel(conn, "t:other", history=100)
    sub, bystander = await subscribe(channel), await subscribe(other)
    await channel.publish("e0")
    await until(lambda: sub.data == ["e0"])
    pubsub = shared_pubsub(conn)
    assert pubsub.channels == 2 and conn.connections == 2
    redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    for i in range(1, 4):  # PUBLISHed to nobody: only the stream has them
        await channel.publish(f"e{i}")
    await until(lambda: pubsub.connection.connected and sub.data[-1:] == ["e3"], what="refill")
    for i in range(4, 6):
        await channel.publish(f"e{i}")
    await until(lambda: len(sub.data) >= 6)
    assert sub.data == [f"e{i}" for i in range(6)] and not sub.ended
    assert bystander.data == [] and not bystander.ended
    channel.unsubscribe(sub)
    assert pubsub.channels == 1
    await channel.close()
    await other.close()
    assert pubsub.channels == 0


@pytest_twisted.ensureDeferred
async def test_a_dropped_idle_topic_leaves_its_pubsub_channel(
    redis_server: RedisServer, conn: RedisConnection, serve: Any
) -> None:
    """The hub drops a topic nobody uses after its grace: no Redis subscription is left."""
    served = serve(channels=lambda name: RedisStreamChannel(conn, f"t:{name}"), topic_grace=0.1)
    stream = await Stream(f"{served.base}/topics/news").open()
    pubsub = shared_pubsub(conn)
    await until(lambda: pubsub.channels == 1, what="the topic's subscription")
    numsub = redis_server.command("PUBSUB", "NUMSUB", "t:news")
    assert numsub.endswith(b":1\r\n")
    await stream.close()
    await until(lambda: served.hub.router.channel_count == 0, what="the idle topic to go")
    assert pubsub.channels == 0
    await until(lambda: redis_server.command("PUBSUB", "NUMSUB", "t:news").endswith(b":0\r\n"))
