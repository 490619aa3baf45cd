"""RedisStreamChannel's join of replay, pub/sub messages and catch-up reads, fired by hand."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer

from txsse import EventStreamParser
from txsse.errors import ChannelUnavailable
from txsse.hub._redis import RedisStreamChannel
from txsse.server._channel import ISubscriber, Replay


class FakeRedis:
    """Records each command with an un-fired Deferred for the test to answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], Deferred[Any]]] = []
        self.reactor = Clock()

    def execute(self, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((args, d))
        return d

    def answer_join(self, reply: Any) -> tuple[Any, ...]:
        """Fire the oldest pending join script with ``reply``; its arguments."""
        self.calls = [(args, d) for args, d in self.calls if not d.called]  # drop cancelled
        for i, (args, d) in enumerate(self.calls):
            if args[0] == "EVALSHA":
                del self.calls[i]
                d.callback(reply)
                return args
        raise AssertionError(f"no pending script: {[a[0] for a, _ in self.calls]}")

    def fail_join(self) -> None:
        """Fail the oldest pending script as an unreachable Redis would."""
        _args, d = self.calls.pop(0)
        d.errback(ChannelUnavailable("down"))


class FakePubSub:
    """Subscriptions confirmed by the test; the channel's listener is kept."""

    def __init__(self) -> None:
        self.listeners: dict[str, Any] = {}
        self.confirmed: set[str] = set()
        self.waiting: list[Deferred[None]] = []
        self.subscribes = 0

    def subscribe(self, name: str, listener: Any) -> Deferred[None]:
        if name not in self.listeners:
            self.subscribes += 1
        self.listeners[name] = listener
        d: Deferred[None] = Deferred()
        if name in self.confirmed:
            d.callback(None)
        else:
            self.waiting.append(d)
        return d

    def confirm(self, name: str = "k") -> None:
        self.confirmed.add(name)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def unsubscribe(self, name: str, listener: Any) -> None:
        assert self.listeners.get(name) is listener
        self.listeners.pop(name, None)
        self.confirmed.discard(name)

    def publish(self, *ids: str) -> None:
        """Messages received in one read from the connection."""
        for i in ids:
            self.listeners["k"].message(f"{i}\n\nd{i}")
        self.listeners["k"].flush()


@implementer(ISubscriber)
class Recorder:
    def __init__(self) -> None:
        self.parser = EventStreamParser()
        self.ids: list[str] = []
        self.positions: list[str | None] = []
        self.ended = False

    def send(self, chunk: bytes) -> None:
        self.ids += [e.id for e in self.parser.feed(chunk)]

    def end(self) -> None:
        self.ended = True

    def take(self, replay: Replay) -> Replay:
        self.send(replay.chunk)
        self.positions.append(replay.position)
        return replay


def entry(id: str) -> list[Any]:
    return [id, ["data", f"d{id}"]]


def make() -> tuple[FakeRedis, FakePubSub, RedisStreamChannel]:
    redis, pubsub = FakeRedis(), FakePubSub()
    channel = RedisStreamChannel(redis, "k", pubsub=pubsub)  # type: ignore[arg-type]
    return redis, pubsub, channel


def joined(redis: FakeRedis, pubsub: FakePubSub, channel: RedisStreamChannel) -> Recorder:
    """A first subscriber, joined with the stream at 5-0."""
    a = Recorder()
    channel.subscribe(a).addCallback(a.take)
    pubsub.confirm()
    redis.answer_join(["5-0", "1-0", 0, []])
    return a


def test_the_replay_is_read_only_once_the_pubsub_channel_is_subscribed() -> None:
    """SUBSCRIBE first, then the join script; messages it covered are dropped, later ones kept."""
    redis, pubsub, channel = make()
    a = Recorder()
    channel.subscribe(a, "3-0").addCallback(a.take)
    assert redis.calls == [] and pubsub.subscribes == 1
    pubsub.confirm()
    pubsub.publish("5-0", "6-0")  # published after SUBSCRIBE: 5-0 before the script ran
    args = redis.answer_join(["5-0", "1-0", 0, [entry("4-0"), entry("5-0")]])
    assert args[3:5] == ("k", "3-0")
    pubsub.publish("6-0", "7-0")  # 6-0 again: a duplicate, dropped
    assert a.ids == ["4-0", "5-0", "6-0", "7-0"]
    assert a.positions == ["6-0"]  # the replay covered up to 6-0


def test_one_subscription_for_all_subscribers_and_messages_fan_out_once() -> None:
    """Later subscribers share the pub/sub subscription; each message reaches each once."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    b = Recorder()
    channel.subscribe(b).addCallback(b.take)
    redis.answer_join(["5-0", "1-0", 0, []])
    pubsub.publish("6-0", "7-0")
    assert pubsub.subscribes == 1
    assert a.ids == b.ids == ["6-0", "7-0"]


def test_events_received_while_a_replay_is_pending_join_it_without_duplicates() -> None:
    """Live events that arrive during a join are appended to its replay, each once."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    b = Recorder()
    channel.subscribe(b, "4-0").addCallback(b.take)  # its script is in flight
    pubsub.publish("6-0", "7-0")
    # Redis ran b's script after 6-0 was added, before 7-0.
    redis.answer_join(["6-0", "1-0", 0, [entry("5-0"), entry("6-0")]])
    pubsub.publish("8-0")
    assert a.ids == ["6-0", "7-0", "8-0"]
    assert b.ids == ["5-0", "6-0", "7-0", "8-0"]


def test_a_replay_ahead_of_the_channel_skips_what_it_already_has() -> None:
    """A join that saw more than the channel has received gets only newer live events."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    b = Recorder()
    channel.subscribe(b, "5-0").addCallback(b.take)
    redis.answer_join(["7-0", "1-0", 0, [entry("6-0"), entry("7-0")]])
    pubsub.publish("6-0", "7-0", "8-0", "9-0")
    assert a.ids == ["6-0", "7-0", "8-0", "9-0"]
    assert b.ids == ["6-0", "7-0", "8-0", "9-0"]


def test_last_unsubscribe_leaves_the_pubsub_channel_and_a_cancelled_join_is_forgotten() -> None:
    """No subscribers, no subscription; a join cancelled in flight never calls the subscriber."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    b = Recorder()
    pending = channel.subscribe(b)
    pending.addErrback(lambda _: None)
    pending.cancel()
    assert channel.subscriber_count == 1
    channel.unsubscribe(a)
    channel.unsubscribe(a)  # idempotent
    assert channel.subscriber_count == 0 and "k" not in pubsub.listeners
    assert a.ids == [] and b.ids == []
    c = Recorder()  # subscribing again starts over
    channel.subscribe(c).addCallback(c.take)
    pubsub.confirm()
    redis.answer_join(["9-0", "1-0", 0, []])
    pubsub.publish("9-0", "10-0")
    assert c.ids == ["10-0"]


def test_a_join_fails_with_channel_unavailable_and_leaves_nothing_behind() -> None:
    """Redis down during the join: the Deferred fails, the subscription is dropped."""
    redis, pubsub, channel = make()
    failures: list[Any] = []
    channel.subscribe(Recorder()).addErrback(failures.append)
    pubsub.confirm()
    redis.fail_join()
    assert failures and failures[0].check(ChannelUnavailable)
    assert channel.subscriber_count == 0 and "k" not in pubsub.listeners


def test_after_a_reconnection_the_stream_fills_the_gap_without_duplicates() -> None:
    """Resubscribed: messages wait while the stream is read after the last id sent."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    pubsub.publish("6-0")
    pubsub.listeners["k"].resubscribed()  # 7-0 and 8-0 were published meanwhile
    pubsub.publish("8-0", "9-0")  # held back until the gap is filled
    assert a.ids == ["6-0"]
    redis.fail_join()  # Redis not back yet for commands: retried after a delay
    redis.reactor.advance(0.5)
    args = redis.answer_join(["8-0", "1-0", 0, [entry("7-0"), entry("8-0")]])
    assert args[4:] == ("6-0", "1")
    pubsub.publish("10-0")
    assert a.ids == ["6-0", "7-0", "8-0", "9-0", "10-0"] and not a.ended
    assert redis.reactor.getDelayedCalls() == []


def test_after_a_reconnection_a_lost_history_ends_the_subscribers() -> None:
    """Redis came back without the events after the last id sent: subscribers are ended."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    pubsub.listeners["k"].resubscribed()
    redis.answer_join(["2-0", "", 1, []])
    assert a.ended and channel.subscriber_count == 0
    assert "k" not in pubsub.listeners


def test_a_reconnection_before_the_first_replay_fails_the_pending_joins() -> None:
    """Nothing says where the stream stood: the joins in flight fail and their clients retry."""
    redis, pubsub, channel = make()
    failures: list[Any] = []
    channel.subscribe(Recorder()).addErrback(failures.append)
    pubsub.confirm()
    pubsub.listeners["k"].resubscribed()
    redis.answer_join(["5-0", "1-0", 0, []])
    assert failures and failures[0].check(ChannelUnavailable)
    assert channel.subscriber_count == 0


def test_close_ends_subscribers_and_leaves_the_pubsub_channel() -> None:
    """close() (a dropped topic) ends every stream and holds no subscription afterwards."""
    redis, pubsub, channel = make()
    a = joined(redis, pubsub, channel)
    channel.close()
    assert a.ended and channel.subscriber_count == 0 and "k" not in pubsub.listeners
    channel.close()  # idempotent


def test_a_join_reply_of_another_shape_fails_the_subscription_naming_it() -> None:
    """A reply not of the join script's shape fails with ChannelUnavailable; no one waits."""
    redis, pubsub, channel = make()
    failures: list[Any] = []
    channel.subscribe(Recorder()).addErrback(failures.append)
    pubsub.confirm()
    redis.answer_join(["5-0", "1-0"])
    assert failures and failures[0].check(ChannelUnavailable)
    assert "['5-0', '1-0']" in failures[0].getErrorMessage()
    assert channel.subscriber_count == 0 and "k" not in pubsub.listeners


def test_an_entry_whose_data_is_not_text_is_skipped() -> None:
    """Stream entries Redis returns as bytes (not UTF-8) are skipped, the others replayed."""
    redis, pubsub, channel = make()
    a = Recorder()
    channel.subscribe(a, "3-0").addCallback(a.take)
    pubsub.confirm()
    redis.answer_join(["5-0", "1-0", 0, [["4-0", ["data", b"\xff"]], entry("5-0")]])
    assert a.ids == ["5-0"] and not a.ended
