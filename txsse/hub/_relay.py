"""UpstreamRelay: consume one upstream event stream and republish it to a topic.

The upstream is read with txsse's own :class:`~txsse.EventSource`, which
reconnects with ``Last-Event-ID`` after every drop, so the relay sees every
upstream event once, in order. Each is republished (with a new id, the
topic's own) before the next is taken; while publishing fails (Redis down)
the relay retries with backoff, and the source's bounded queue pauses the
upstream connection meanwhile instead of buffering without limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsse._reactor import default_reactor
from txsse.client import EventSource
from txsse.errors import ChannelUnavailable, StreamClosed

Publish = Callable[[str, "str | None", str], object]
"""``publish(data, event, upstream_id)``: returns the id, or a Deferred of it."""

Resume = Callable[[], "Deferred[str | None]"]
"""Returns a Deferred of the upstream id the topic's newest event came from, or ``None``."""


class Lease(Protocol):
    """What a relay needs from a lease (see :class:`txsse.hub._lease.RedisLease`)."""

    ttl: float

    def acquire(self) -> Deferred[bool]:
        """Take or extend the lease; fires with whether it is held."""

    def release(self) -> Deferred[bool]:
        """Give the lease up."""


class UpstreamRelay(Service):
    """Relay the events of ``url`` to a topic as long as the service runs.

    With a ``lease``, only the process holding it relays: every process of a
    Redis-backed group may be started with the same ``--upstream``, one
    relays, and another takes over within the lease's ttl when it dies. With
    ``resume``, relaying starts after the upstream id the topic's newest
    event came from, so a take-over or a restart neither skips nor repeats.

    :param topic: the topic (for logs).
    :param url: the upstream event stream (``http`` or ``https``).
    :param publish: ``publish(data, event, upstream_id)`` to the topic; the
        event type is ``None`` for ``message``.
    :param reactor: the reactor for the client and the timers.
    :param queue_size: upstream events read ahead before the upstream
        connection is paused.
    :param max_retry_delay: the longest wait between publish attempts, seconds.
    :param lease: who may relay; ``None`` to always relay.
    :param resume: where to start in the upstream; ``None`` for new events.
    :param source_options: more keyword arguments for the
        :class:`~txsse.EventSource` (``headers``, ``reconnect_delay``, ...).
    :raises ValueError: for an invalid URL or option (from the EventSource).
    """

    _log = Logger()

    def __init__(
        self,
        topic: str,
        url: str,
        publish: Publish,
        *,
        reactor: IReactorTime | None = None,
        queue_size: int = 100,
        max_retry_delay: float = 5.0,
        lease: Lease | None = None,
        resume: Resume | None = None,
        **source_options: Any,
    ) -> None:
        reactor = default_reactor(reactor)
        self.topic = topic
        self.url = url
        self._publish = publish
        self._reactor = reactor
        self._max_retry_delay = max_retry_delay
        self._lease = lease
        self._resume = resume
        self.source = EventSource(url, reactor=reactor, queue_size=queue_size, **source_options)
        self.relayed = 0
        self.relaying = False
        self._loop: Deferred[None] | None = None
        self._renewal: LoopingCall | None = None

    def startService(self) -> None:
        """Start relaying, or start competing for the lease."""
        super().startService()
        if self._lease is None:
            self._start(None)
            return
        self._renewal = LoopingCall(self._renew)
        self._renewal.clock = self._reactor
        # At least every second, so that a released lease is taken over at once.
        self._renewal.start(min(self._lease.ttl / 3, 1.0), now=True).addErrback(
            lambda f: self._log.failure("lease renewal for {topic} stopped", f, topic=self.topic)
        )

    def _renew(self) -> Deferred[None]:
        d = Deferred.fromCoroutine(self._renew_once())
        return d.addErrback(  # logged, and tried again at the next tick
            lambda f: self._log.failure("lease renewal for {topic} failed", f, topic=self.topic)
        )

    async def _renew_once(self) -> None:
        """Take or extend the lease; start or stop relaying to match."""
        lease = self._lease
        if lease is None:
            return
        try:
            held = await lease.acquire()
        except ChannelUnavailable:
            return  # cannot tell; publishing fails meanwhile anyway
        if not self.running:
            return
        if held and not self.relaying:
            self.relaying = True
            try:
                last = await self._resume() if self._resume is not None else None
            except ChannelUnavailable:
                self.relaying = False
                return
            if self.running and self.relaying:
                self._log.info("relaying {url} to {topic} after upstream id {last!r}",
                               url=self.url, topic=self.topic, last=last)  # fmt: skip
                self._start(last)
        elif not held and self.relaying:
            self._log.info("another process relays {url} to {topic} now",
                           url=self.url, topic=self.topic)  # fmt: skip
            self._stop()

    def _start(self, last_event_id: str | None) -> None:
        self.relaying = True
        if last_event_id:
            self.source.last_event_id = last_event_id
        self.source.startService()
        self._loop = Deferred.fromCoroutine(self._relay())
        self._loop.addErrback(self._crashed)

    def _stop(self) -> Deferred[None]:
        self.relaying = False
        if self._loop is not None:
            self._loop.cancel()
            self._loop = None
        return self.source.close()

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):  # cancelled: stopped
            self._log.failure(
                "relay of {url} to {topic} crashed", failure, url=self.url, topic=self.topic
            )

    def stopService(self) -> Deferred[None]:
        """Close the upstream connection, stop relaying and give the lease up.

        :returns: a Deferred that fires once the upstream source is closed
            (and the lease released, or found unreachable).
        """
        super().stopService()
        if self._renewal is not None and self._renewal.running:
            self._renewal.stop()
        was_relaying = self.relaying
        closed = self._stop()
        if self._lease is None or not was_relaying:
            return closed
        released = self._lease.release().addErrback(lambda _: None)
        return closed.addCallback(lambda _: released).addCallback(lambda _: None)

    async def _relay(self) -> None:
        """Take each upstream event and publish it; stop when the source is closed."""
        try:
            async for event in self.source:
                await self._publish_until_stored(event.data, event.event, event.id)
        except StreamClosed:
            return

    async def _publish_until_stored(self, data: str, event_type: str, upstream_id: str) -> None:
        """Publish one event, retrying with backoff while the channel is unavailable."""
        event = None if event_type == "message" else event_type
        delay = 0.1
        while True:
            try:
                await maybeDeferred(self._publish, data, event, upstream_id)
            except ChannelUnavailable as error:
                self._log.warn(
                    "relay to {topic} cannot publish ({error}); retrying in {delay:.1f} s",
                    topic=self.topic,
                    error=error,
                    delay=delay,
                )
                await deferLater(self._reactor, delay, lambda: None)
                delay = min(delay * 2, self._max_retry_delay)
            except ValueError as error:
                self._log.warn(
                    "relay to {topic} dropped an upstream event that cannot be published: {error}",
                    topic=self.topic,
                    error=error,
                )
                return
            else:
                self.relayed += 1
                return
