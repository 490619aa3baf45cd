"""RedisPubSub: one connection's SUBSCRIBE/UNSUBSCRIBE bookkeeping, replies fired by hand."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txsse.errors import ChannelUnavailable
from txsse.hub._pubsub import RedisPubSub
from txsse.hub._redisconn import RedisConnection


class FakeConnection:
    """Stands for the pub/sub connection: records commands, the test answers them."""

    def __init__(self) -> None:
        self.connected = True
        self.url = "redis://127.0.0.1:1/0"
        self.calls: list[tuple[tuple[Any, ...], Deferred[Any]]] = []

    def execute(self, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((args, d))
        return d

    def answer(self) -> tuple[Any, ...]:
        """Confirm the oldest command; its arguments."""
        args, d = self.calls.pop(0)
        d.callback([args[0].lower(), args[1], 1])
        return args

    def drop(self) -> None:
        """The connection is lost: every command in flight fails."""
        self.connected = False
        calls, self.calls = self.calls, []
        for _, d in calls:
            d.errback(ChannelUnavailable("lost"))


class Listener:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.resubscriptions = 0

    def message(self, payload: str) -> None:
        self.messages.append(payload)

    def flush(self) -> None:
        self.messages.append("flush")

    def resubscribed(self) -> None:
        self.resubscriptions += 1


def make() -> tuple[RedisPubSub, FakeConnection]:
    pubsub = RedisPubSub(RedisConnection("redis://127.0.0.1:1", reactor=Clock()))
    fake = FakeConnection()
    pubsub.connection = fake  # type: ignore[assignment]
    pubsub._redis = fake  # type: ignore[assignment]
    return pubsub, fake


def test_listeners_share_one_subscription_and_each_gets_every_message() -> None:
    """One SUBSCRIBE per channel; every listener of it gets its messages; the last one leaves."""
    pubsub, fake = make()
    a, b = Listener(), Listener()
    fired: list[object] = []
    pubsub.subscribe("k", a).addCallback(fired.append)
    pubsub.subscribe("k", b).addCallback(fired.append)
    assert [args for args, _ in fake.calls] == [("SUBSCRIBE", "k")] and fired == []
    fake.answer()
    assert len(fired) == 2 and pubsub.channels == 1
    pubsub._message("k", "m1")
    pubsub._message("k", "m2")
    pubsub._message("other", "ignored")
    pubsub._flush()
    pubsub._flush()  # nothing new: no flush
    assert a.messages == b.messages == ["m1", "m2", "flush"]
    pubsub.unsubscribe("k", a)
    assert fake.calls == []  # b still listens
    pubsub.unsubscribe("k", b)
    pubsub.unsubscribe("k", b)  # idempotent
    assert [args for args, _ in fake.calls] == [("UNSUBSCRIBE", "k")] and pubsub.channels == 0


def test_a_late_confirmation_of_an_earlier_subscription_is_not_taken_for_the_new_one() -> None:
    """SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE: only the third command's reply confirms."""
    pubsub, fake = make()
    first, second = Listener(), Listener()
    failed: list[Failure] = []
    pubsub.subscribe("k", first).addErrback(failed.append)
    pubsub.unsubscribe("k", first)
    assert failed and failed[0].check(ChannelUnavailable)
    fired: list[object] = []
    pubsub.subscribe("k", second).addCallback(fired.append)
    fake.answer()  # SUBSCRIBE (the first)
    fake.answer()  # UNSUBSCRIBE
    assert fired == []
    fake.answer()  # SUBSCRIBE (the second)
    assert fired == [None]


def test_after_a_reconnection_every_channel_is_subscribed_again_and_told() -> None:
    """Lost: waiters fail; reconnected: each channel is subscribed again, listeners told once."""
    pubsub, fake = make()
    done, pending = Listener(), Listener()
    pubsub.subscribe("done", done)
    fake.answer()
    failed: list[Failure] = []
    pubsub.subscribe("pending", pending).addErrback(failed.append)
    fake.drop()
    assert failed and failed[0].check(ChannelUnavailable)
    fake.connected = True
    pubsub._connected()
    assert sorted(args for args, _ in fake.calls) == [
        ("SUBSCRIBE", "done"),
        ("SUBSCRIBE", "pending"),
    ]
    fake.answer()
    fake.answer()
    assert done.resubscriptions == pending.resubscriptions == 1


def test_subscribing_fails_at_once_while_redis_is_unreachable() -> None:
    """No connection and no command connection either: ChannelUnavailable, nothing kept."""
    pubsub, fake = make()
    fake.connected = False
    failed: list[Failure] = []
    pubsub.subscribe("k", Listener()).addErrback(failed.append)
    assert failed and failed[0].check(ChannelUnavailable) and pubsub.channels == 0
