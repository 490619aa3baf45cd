"""RedisStreamChannel's join of replay and live events, with Redis replies fired by hand."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from txsse import EventStreamParser
from txsse.errors import ChannelUnavailable
from txsse.hub._redis import RedisStreamChannel
from txsse.server._channel import ISubscriber, Replay


class FakeRedis:
    """Records each command with an un-fired Deferred for the test to answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], Deferred[Any]]] = []
        self.reader: FakeRedis | None = None
        self.running = False
        self.waiting: list[Deferred[None]] = []
        self.connected = True

    def execute(self, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((args, d))
        return d

    def clone(self, *, reply_timeout: float | None) -> FakeRedis:
        self.reader = FakeRedis()
        return self.reader

    def startService(self) -> None:
        self.running = True

    def stopService(self) -> Deferred[None]:
        self.running = False
        return succeed(None)

    def when_connected(self) -> Deferred[None]:
        if self.connected:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.waiting.append(d)
        return d

    def answer(self, command: str, reply: Any) -> tuple[Any, ...]:
        """Fire the oldest pending call of ``command`` with ``reply``; its arguments."""
        for i, (args, d) in enumerate(self.calls):
            if args[0] == command:
                del self.calls[i]
                d.callback(reply)
                return args
        raise AssertionError(f"no pending {command}: {[a[0] for a, _ in self.calls]}")

    def drop(self, command: str) -> None:
        """Fail the oldest pending call of ``command`` as a lost connection would."""
        for i, (args, d) in enumerate(self.calls):
            if args[0] == command:
                del self.calls[i]
                self.connected = False
                d.errback(ChannelUnavailable("lost"))
                return
        raise AssertionError(f"no pending {command}")


@implementer(ISubscriber)
class Recorder:
    def __init__(self) -> None:
        self.parser = EventStreamParser()
        self.ids: list[str] = []
        self.ended = False

    def send(self, chunk: bytes) -> None:
        self.ids += [e.id for e in self.parser.feed(chunk)]

    def end(self) -> None:
        self.ended = True

    def take(self, replay: Replay) -> Replay:
        self.send(replay.chunk)
        return replay


def entry(id: str) -> list[Any]:
    return [id, ["data", f"d{id}"]]


def xread(*ids: str) -> list[Any]:
    return [["k", [entry(i) for i in ids]]]


def make() -> tuple[FakeRedis, RedisStreamChannel]:
    redis = FakeRedis()
    return redis, RedisStreamChannel(redis, "k")  # type: ignore[arg-type]


def test_reader_starts_at_the_first_subscribers_top_and_fans_out_once() -> None:
    """One XREAD loop for all subscribers, starting exactly where the first join ended."""
    redis, channel = make()
    a, b = Recorder(), Recorder()
    channel.subscribe(a).addCallback(a.take)
    redis.answer("EVAL", ["5-0", "1-0", 0, []])
    assert redis.reader is not None and redis.reader.running
    channel.subscribe(b).addCallback(b.take)
    redis.answer("EVAL", ["5-0", "1-0", 0, []])
    args = redis.reader.answer("XREAD", xread("6-0", "7-0"))
    assert args[-1] == "5-0"
    assert a.ids == b.ids == ["6-0", "7-0"]
    assert redis.reader.calls[0][0][-1] == "7-0"  # the next XREAD goes on from there
    assert len(redis.reader.calls) == 1


def test_events_read_while_a_replay_is_pending_join_it_without_duplicates() -> None:
    """Live events that arrive during a join are appended to its replay, each once."""
    redis, channel = make()
    a, b = Recorder(), Recorder()
    channel.subscribe(a).addCallback(a.take)
    redis.answer("EVAL", ["5-0", "1-0", 0, []])
    assert redis.reader is not None
    channel.subscribe(b, "4-0").addCallback(b.take)  # its EVAL is in flight
    redis.reader.answer("XREAD", xread("6-0", "7-0"))
    # Redis ran b's script after 6-0 was added, before 7-0.
    redis.answer("EVAL", ["6-0", "1-0", 0, [entry("5-0"), entry("6-0")]])
    redis.reader.answer("XREAD", xread("8-0"))
    assert a.ids == ["6-0", "7-0", "8-0"]
    assert b.ids == ["5-0", "6-0", "7-0", "8-0"]


def test_a_replay_ahead_of_the_reader_skips_what_it_already_has() -> None:
    """A join that saw more than the reader has read gets only newer live events."""
    redis, channel = make()
    a, b = Recorder(), Recorder()
    channel.subscribe(a).addCallback(a.take)
    redis.answer("EVAL", ["5-0", "1-0", 0, []])
    assert redis.reader is not None
    channel.subscribe(b, "5-0").addCallback(b.take)
    redis.answer("EVAL", ["7-0", "1-0", 0, [entry("6-0"), entry("7-0")]])
    redis.reader.answer("XREAD", xread("6-0"))
    redis.reader.answer("XREAD", xread("7-0", "8-0"))
    redis.reader.answer("XREAD", xread("9-0"))
    assert a.ids == ["6-0", "7-0", "8-0", "9-0"]
    assert b.ids == ["6-0", "7-0", "8-0", "9-0"]


def test_last_unsubscribe_stops_the_reader_and_a_cancelled_join_is_forgotten() -> None:
    """No subscribers, no reader; a join cancelled in flight never calls the subscriber."""
    redis, channel = make()
    a, b = Recorder(), Recorder()
    channel.subscribe(a).addCallback(a.take)
    redis.answer("EVAL", ["5-0", "", 0, []])
    reader = redis.reader
    assert reader is not None
    pending = channel.subscribe(b)
    pending.addErrback(lambda _: None)
    pending.cancel()
    assert channel.subscriber_count == 1
    channel.unsubscribe(a)
    channel.unsubscribe(a)  # idempotent
    assert not reader.running and channel.subscriber_count == 0
    reader.answer("XREAD", xread("6-0"))  # a late reply of the stopped loop
    assert a.ids == [] and b.ids == []


def test_after_an_outage_the_reader_goes_on_or_ends_subscribers_on_a_gap() -> None:
    """Reconnected: no gap, the loop resumes at its cursor; a gap ends every subscriber."""
    redis, channel = make()
    a = Recorder()
    channel.subscribe(a).addCallback(a.take)
    redis.answer("EVAL", ["5-0", "", 0, []])
    reader = redis.reader
    assert reader is not None
    reader.drop("XREAD")
    assert reader.calls == []  # waits for the connection
    reader.connected = True
    reader.waiting.pop().callback(None)
    args = reader.answer("EVAL", ["9-0", "6-0", 0, []])
    assert args[-2:] == ("5-0", "0")  # gap check only, from the cursor
    reader.answer("XREAD", xread("6-0"))
    assert a.ids == ["6-0"] and not a.ended

    reader.drop("XREAD")
    reader.connected = True
    reader.waiting.pop().callback(None)
    reader.answer("EVAL", ["20-0", "15-0", 1, []])
    assert a.ended and channel.subscriber_count == 0
    assert not reader.running and reader.calls == []
