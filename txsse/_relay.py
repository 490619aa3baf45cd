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
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsse._client import EventSource
from txsse.errors import ChannelUnavailable, StreamClosed

Publish = Callable[[str, str, "str | None"], Any]
"""``publish(topic, data, event)``: returns the id, or a Deferred of it."""


class UpstreamRelay(Service):
    """Relay the events of ``url`` to ``topic`` as long as the service runs.

    :param topic: the topic to publish to.
    :param url: the upstream event stream (``http`` or ``https``).
    :param publish: ``publish(topic, data, event)``, for example
        :meth:`txsse._hub.Hub.publish`; the event type is ``None`` for
        ``message``.
    :param reactor: the reactor for the client and the retry timers.
    :param queue_size: upstream events read ahead before the upstream
        connection is paused.
    :param max_retry_delay: the longest wait between publish attempts, seconds.
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
        reactor: Any = None,
        queue_size: int = 100,
        max_retry_delay: float = 5.0,
        **source_options: Any,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.topic = topic
        self.url = url
        self._publish = publish
        self._reactor = reactor
        self._max_retry_delay = max_retry_delay
        self.source = EventSource(url, reactor=reactor, queue_size=queue_size, **source_options)
        self.relayed = 0
        self._loop: Deferred[None] | None = None

    def startService(self) -> None:
        """Connect upstream and start relaying."""
        super().startService()
        self.source.startService()
        self._loop = Deferred.fromCoroutine(self._relay())
        self._loop.addErrback(self._crashed)

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):  # cancelled: stopService
            self._log.failure(
                "relay of {url} to {topic} crashed", failure, url=self.url, topic=self.topic
            )

    def stopService(self) -> Deferred[None]:
        """Close the upstream connection and stop relaying.

        :returns: a Deferred that fires once the upstream source is closed.
        """
        super().stopService()
        if self._loop is not None:
            self._loop.cancel()
            self._loop = None
        return self.source.close()

    async def _relay(self) -> None:
        """Take each upstream event and publish it; stop when the source is closed."""
        try:
            async for event in self.source:
                await self._publish_until_stored(event.data, event.event)
        except StreamClosed:
            return

    async def _publish_until_stored(self, data: str, event_type: str) -> None:
        """Publish one event, retrying with backoff while the channel is unavailable."""
        event = None if event_type == "message" else event_type
        delay = 0.1
        while True:
            try:
                await maybeDeferred(self._publish, self.topic, data, event)
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
