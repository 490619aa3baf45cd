"""EventStreamService: what happens to open streams when the service stops."""

from __future__ import annotations

from typing import Protocol

from twisted.application.service import Service

from txsse._validate import check_seconds


class Closable(Protocol):
    """Something whose streams can be closed and opened again: a resource, a router, a hub."""

    def close(self, retry: float | None = None, *, spread: bool = True) -> None:
        """End every open stream and refuse new ones."""

    def reopen(self) -> None:
        """Accept new streams again."""


class EventStreamService(Service):
    """Tie the streams of a resource (or router) to a service's lifetime.

    Put it in the same :class:`~twisted.application.service.MultiService` as
    the listening port. On ``stopService`` it either closes every stream
    (after a final ``retry:`` when ``final_retry`` is set, spread over clients
    so they do not reconnect all at once) or leaves them connected. Started
    again, it accepts new streams again (``reopen``).

    :param streams: an :class:`EventStreamResource` or :class:`ChannelRouter`.
    :param close_streams: close the streams on stop (``True``) or keep the
        clients connected (``False``; the process decides when they go).
    :param final_retry: seconds for the final ``retry:`` field, or ``None``.
    :param spread: randomize the final delay per client up to ``final_retry``.
    :raises ValueError: if ``final_retry`` is negative or not a number.
    """

    def __init__(
        self,
        streams: Closable,
        *,
        close_streams: bool = True,
        final_retry: float | None = None,
        spread: bool = True,
    ) -> None:
        check_seconds("final_retry", final_retry, positive=False)
        self.streams = streams
        self.close_streams = close_streams
        self.final_retry = final_retry
        self.spread = spread

    def startService(self) -> None:
        """Accept streams (again, after a stop that closed them)."""
        super().startService()
        if self.close_streams:
            self.streams.reopen()

    def stopService(self) -> None:
        """Close the streams, or not, as configured."""
        super().stopService()
        if self.close_streams:
            self.streams.close(self.final_retry, spread=self.spread)
