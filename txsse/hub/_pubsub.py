"""RedisPubSub: every topic channel of a process on one Redis pub/sub connection.

One connection per Redis server subscribes the pub/sub channel of each
topic that has subscribers in this process and unsubscribes it when the
last one leaves, so the number of connections does not grow with the number
of topics. After a reconnection it subscribes every channel again and tells
each listener, which then reads what it missed from the stream.
"""

from __future__ import annotations

from typing import Protocol

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

    def flush(self) -> None:
        """The messages given since the last call are all there is for now (one read)."""

    def resubscribed(self) -> None:
        """The channel is subscribed again after a lost connection: messages may be missing."""


class _Channel:
    """One subscribed channel: its listeners, and who waits for its confirmation.

    A new one after each full unsubscription, so that the late confirmation of
    an earlier ``SUBSCRIBE`` is never taken for the current one.
    """

    __slots__ = ("confirmed", "listeners", "waiting")

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.confirmed = False
        self.waiting: list[Deferred[None]] = []

    def fail(self, error: Exception) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.errback(error)


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
            reply_timeout=reply_timeout,
            on_message=self._message,
            on_connect=self._connected,
            on_read=self._flush,
        )
        self.connection.setServiceParent(self)
        pinger = TimerService(ping_interval, self._ping)
        pinger.clock = redis.reactor
        pinger.setServiceParent(self)
        self._channels: dict[str, _Channel] = {}
        # Channels given messages in the current read, to flush at its end.
        self._touched: dict[str, _Channel] = {}

    @property
    def connections(self) -> int:
        """1 while the pub/sub connection is up, else 0."""
        return 1 if self.connection.connected else 0

    @property
    def channels(self) -> int:
        """How many channels are subscribed (or being subscribed) now."""
        return len(self._channels)

    def subscribe(self, name: str, listener: Listener) -> Deferred[None]:
        """Add ``listener`` to the channel ``name``, subscribing it if needed.

        :param name: the pub/sub channel.
        :param listener: receives its messages and is told of resubscriptions;
            adding the same listener twice is the same as once.
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
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            self._send_subscribe(name, channel)
        if listener not in channel.listeners:
            channel.listeners.append(listener)
        if channel.confirmed:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: channel.waiting.remove(d))
        channel.waiting.append(d)
        return d

    def unsubscribe(self, name: str, listener: Listener) -> None:
        """Remove ``listener`` from the channel ``name``; the last one unsubscribes it.

        Idempotent.
        """
        channel = self._channels.get(name)
        if channel is None or listener not in channel.listeners:
            return
        channel.listeners.remove(listener)
        if channel.listeners:
            return
        del self._channels[name]
        channel.fail(ChannelUnavailable("unsubscribed"))
        if self.connection.connected:
            self.connection.execute("UNSUBSCRIBE", name).addErrback(lambda _: None)

    def _send_subscribe(self, name: str, channel: _Channel, *, again: bool = False) -> None:
        # One channel per command: txredisapi matches one reply to each command.
        d = self.connection.execute("SUBSCRIBE", name)
        d.addCallbacks(
            self._subscribed,
            self._not_subscribed,
            callbackArgs=(name, channel, again),
            errbackArgs=(name, channel),
        )

    def _subscribed(self, _: object, name: str, channel: _Channel, again: bool) -> None:
        # Another _Channel under this name: this reply confirms a subscription
        # that was dropped since (an UNSUBSCRIBE went after it).
        if self._channels.get(name) is not channel:
            return
        channel.confirmed = True
        waiting, channel.waiting = channel.waiting, []
        for d in waiting:
            d.callback(None)
        if again:
            for listener in tuple(channel.listeners):
                listener.resubscribed()

    def _not_subscribed(self, failure: Failure, name: str, channel: _Channel) -> None:
        if self._channels.get(name) is channel:
            error = failure.value
            if not isinstance(error, ChannelUnavailable):
                error = ChannelUnavailable(f"Redis refused SUBSCRIBE: {failure.getErrorMessage()}")
            channel.fail(error)

    def _connected(self) -> None:
        """(Re)connected: subscribe every channel again; each listener catches up."""
        for name, channel in tuple(self._channels.items()):
            channel.confirmed = False
            channel.fail(ChannelUnavailable("the Redis connection was lost"))
            self._send_subscribe(name, channel, again=True)

    def _message(self, name: str, payload: str) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        self._touched[name] = channel
        for listener in tuple(channel.listeners):
            try:
                listener.message(payload)
            except Exception:
                self._log.failure("handling a message of {channel} failed", channel=name)

    def _flush(self) -> None:
        """The end of one read: each listener given messages sends them on, as one batch."""
        touched, self._touched = self._touched, {}
        for name, channel in touched.items():
            for listener in tuple(channel.listeners):
                try:
                    listener.flush()
                except Exception:
                    self._log.failure("delivering the messages of {channel} failed", channel=name)

    def _ping(self) -> None:
        if self.connection.connected:
            d = self.connection.execute("PING")
            d.addErrback(lambda _: None)  # a timeout drops the connection: it reconnects


def shared_pubsub(redis: RedisConnection) -> RedisPubSub:
    """The pub/sub connection every channel on ``redis``'s server shares in this process.

    :param redis: the command connection; the pub/sub connection starts and
        stops with it.
    :returns: the same :class:`RedisPubSub` for the same connection.
    """
    return redis.companion(RedisPubSub)
