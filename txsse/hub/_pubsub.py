"""RedisPubSub: every topic channel of a process on one Redis pub/sub connection.

One connection per Redis server subscribes the pub/sub channel of each
topic that has subscribers in this process and unsubscribes it when the
last one leaves, so the number of connections does not grow with the number
of topics. After a reconnection it subscribes every channel again and tells
each listener, which then reads what it missed from the stream.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsse.errors import ChannelUnavailable
from txsse.hub._redisconn import RedisConnection


class Listener(Protocol):
    """What :class:`RedisPubSub` calls for one subscribed channel."""

    def message(self, payload: str) -> None:
        """One message published to the channel."""

    def resubscribed(self) -> None:
        """The channel is subscribed again after a lost connection: messages may be missing."""


class RedisPubSub(MultiService):
    """One pub/sub connection to a Redis server, shared by every channel of a process.

    Start it (it is a service); it reconnects with backoff like
    :class:`RedisConnection` and pings Redis every ``ping_interval`` seconds
    so that a dead connection is noticed within ``ping_interval + reply_timeout``.

    :param redis: the command connection to the server: this one has its
        settings; while it is up and this one is not yet, :meth:`subscribe` waits.
    :param ping_interval: seconds between two pings.
    :param reply_timeout: seconds to wait for a reply before the connection
        is dropped as dead.
    """

    _log = Logger()

    def __init__(
        self, redis: RedisConnection, *, ping_interval: float = 5.0, reply_timeout: float = 10.0
    ) -> None:
        super().__init__()
        self._redis = redis
        self.connection = redis.clone(
            reply_timeout=reply_timeout, on_message=self._message, on_connect=self._connected
        )
        self.connection.setServiceParent(self)
        pinger = TimerService(ping_interval, self._ping)
        pinger.clock = redis.reactor
        pinger.setServiceParent(self)
        # Each subscription's own token (a new one after an UNSUBSCRIBE), so that
        # the late confirmation of an earlier SUBSCRIBE is not taken for its own.
        self._listeners: dict[str, tuple[Listener, object]] = {}
        self._confirmed: set[str] = set()
        self._waiting: dict[str, list[Deferred[None]]] = {}

    @property
    def connections(self) -> int:
        """1 while the pub/sub connection is up, else 0."""
        return 1 if self.connection.connected else 0

    @property
    def channels(self) -> int:
        """How many channels are subscribed (or being subscribed) now."""
        return len(self._listeners)

    def subscribe(self, name: str, listener: Listener) -> Deferred[None]:
        """Subscribe ``listener`` to the channel ``name`` (once; later calls wait for it).

        :param name: the pub/sub channel.
        :param listener: receives its messages and is told of resubscriptions;
            one listener per channel.
        :returns: a Deferred firing once Redis confirmed the subscription, so
            that every message published afterwards reaches ``listener``. It
            fails with :class:`~txsse.errors.ChannelUnavailable` at once if
            Redis is unreachable (the command connection is down), or if the
            connection is lost first.
        """
        if not self.connection.connected:
            if not self._redis.connected:
                return fail(ChannelUnavailable(f"Redis at {self.connection.url} is unreachable"))
            # Redis answers commands: this connection is (re)connecting, wait for it.
            waiting = self.connection.when_connected()
            return waiting.addCallback(lambda _: self.subscribe(name, listener))
        if name in self._confirmed:
            return succeed(None)
        d: Deferred[None] = Deferred(self._cancel_waiting)
        self._waiting.setdefault(name, []).append(d)
        if name not in self._listeners:
            entry = self._listeners[name] = (listener, object())
            self._send_subscribe(name, entry)
        return d

    def _cancel_waiting(self, d: Deferred[None]) -> None:
        for waiting in self._waiting.values():
            if d in waiting:
                waiting.remove(d)

    def unsubscribe(self, name: str) -> None:
        """Stop receiving the channel ``name``; idempotent."""
        if self._listeners.pop(name, None) is None:
            return
        self._confirmed.discard(name)
        self._fail_waiting(name, ChannelUnavailable("unsubscribed"))
        if self.connection.connected:
            self.connection.execute("UNSUBSCRIBE", name).addErrback(lambda _: None)

    def _send_subscribe(
        self, name: str, entry: tuple[Listener, object], *, again: bool = False
    ) -> None:
        # One channel per command: txredisapi matches one reply to each command.
        d = self.connection.execute("SUBSCRIBE", name)
        d.addCallbacks(
            self._subscribed,
            self._not_subscribed,
            callbackArgs=(name, entry, again),
            errbackArgs=(name, entry),
        )

    def _subscribed(
        self, _: object, name: str, entry: tuple[Listener, object], again: bool
    ) -> None:
        if self._listeners.get(name) is not entry:
            return
        self._confirmed.add(name)
        for d in self._waiting.pop(name, []):
            d.callback(None)
        if again:
            entry[0].resubscribed()

    def _not_subscribed(self, failure: Failure, name: str, entry: tuple[Listener, object]) -> None:
        if self._listeners.get(name) is entry:
            error = failure.value
            if not isinstance(error, ChannelUnavailable):
                error = ChannelUnavailable(f"Redis refused SUBSCRIBE: {failure.getErrorMessage()}")
            self._fail_waiting(name, error)

    def _fail_waiting(self, name: str, error: Exception) -> None:
        for d in self._waiting.pop(name, []):
            d.errback(error)

    def _connected(self) -> None:
        """(Re)connected: subscribe every channel again; each listener catches up."""
        self._confirmed.clear()
        for name, entry in tuple(self._listeners.items()):
            self._fail_waiting(name, ChannelUnavailable("the Redis connection was lost"))
            self._send_subscribe(name, entry, again=True)

    def _message(self, channel: str, payload: str) -> None:
        entry = self._listeners.get(channel)
        if entry is not None:
            try:
                entry[0].message(payload)
            except Exception:
                self._log.failure("handling a message of {channel} failed", channel=channel)

    def _ping(self) -> None:
        if self.connection.connected:
            d: Deferred[Any] = self.connection.execute("PING")
            d.addErrback(lambda _: None)  # a timeout drops the connection: it reconnects


def shared_pubsub(redis: RedisConnection) -> RedisPubSub:
    """The pub/sub connection every channel on ``redis``'s server shares in this process.

    :param redis: the command connection; the pub/sub connection starts and
        stops with it.
    :returns: the same :class:`RedisPubSub` for the same connection.
    """
    return redis.companion(RedisPubSub)
