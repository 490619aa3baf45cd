"""The states of an event source: each holds exactly what must be cancelled when it is left.

:class:`Idle` (never started), :class:`Connecting` (an attempt in flight),
:class:`Open` (reading the body), :class:`Waiting` (before the next attempt),
:class:`Failed` (stopped by a final error) and :class:`Closed` (stopped by the
user). :meth:`cancel` cancels what a state holds: the attempt, the body's
connection, a timer; a cancelled resource reports nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.web.iweb import IResponse

from txsse._event import Comment, Event
from txsse.client._attempt import RequestSettings
from txsse.client._policy import StatusPolicy
from txsse.client._protocol import EventStreamProtocol
from txsse.client._request import RequestAttempt
from txsse.errors import SSEError


class OpenReceiver(Protocol):
    """Where an :class:`Open` state relays what its protocol reports (the machine)."""

    def received(self, state: Open, items: Sequence[Event | Comment]) -> None:
        """A chunk was parsed."""

    def retry_changed(self, state: Open, milliseconds: int) -> None:
        """The server sent a new ``retry:``."""

    def stream_ended(self, state: Open, reason: BaseException) -> None:
        """The body ended."""


@dataclass
class Idle:
    """Never started: nothing to cancel."""

    def cancel(self) -> None:
        """Nothing to cancel."""


@dataclass
class Connecting:
    """A request is in flight (hook, redirects, waiting for headers).

    :ivar attempt: the attempt number.
    :ivar deferred: the attempt; cancelling it aborts the request.
    """

    attempt: int
    deferred: Deferred[tuple[IResponse, RequestAttempt]] | None = None

    def cancel(self) -> None:
        """Abort the request."""
        if self.deferred is not None:
            self.deferred.cancel()


@dataclass
class Open:
    """The stream is open and the body is being read; the protocol reports here.

    :ivar machine: where reports go.
    :ivar url: the URL that answered.
    :ivar protocol: the body's protocol; aborting it drops the connection.
    :ivar opened_at: when it opened, for the backoff reset.
    :ivar last_data: when bytes last arrived, for the idle timeout.
    :ivar idle: the idle-timeout check.
    :ivar delivered: whether it delivered an event (then it was healthy).
    """

    machine: OpenReceiver
    url: str
    protocol: EventStreamProtocol | None = None
    opened_at: float = 0.0
    last_data: float = 0.0
    idle: IDelayedCall | None = None
    delivered: bool = False

    def items_received(self, items: Sequence[Event | Comment]) -> None:
        """Relay a chunk's items to the machine (the protocol's report)."""
        self.machine.received(self, items)

    def retry_changed(self, milliseconds: int) -> None:
        """Relay a new ``retry:`` to the machine."""
        self.machine.retry_changed(self, milliseconds)

    def stream_ended(self, reason: BaseException) -> None:
        """Relay the end of the body to the machine."""
        self.machine.stream_ended(self, reason)

    def cancel(self) -> None:
        """Stop the idle check and drop the connection."""
        if self.idle is not None and self.idle.active():
            self.idle.cancel()
        if self.protocol is not None:
            self.protocol.abort()


@dataclass
class Waiting:
    """Waiting before the next reconnection.

    :ivar call: the scheduled reconnection.
    """

    call: IDelayedCall | None = None

    def cancel(self) -> None:
        """Cancel the reconnection."""
        if self.call is not None and self.call.active():
            self.call.cancel()


@dataclass
class Failed:
    """Failed for good (a final status, a broken redirect...).

    :ivar error: what ``next()`` and ``when_open()`` fail with.
    """

    error: SSEError

    def cancel(self) -> None:
        """Nothing to cancel."""


@dataclass
class Closed:
    """Closed by the user; queued events may still be read while draining.

    :ivar error: what ``next()`` fails with once the queue is empty.
    :ivar drain: the drain deadline, while queued events may still be read.
    :ivar drained: Deferreds fired when the queue is dropped.
    """

    error: SSEError
    drain: IDelayedCall | None = None
    drained: list[Deferred[None]] = field(default_factory=list)

    def cancel(self) -> None:
        """Nothing to cancel: a restart drops the queue first."""


State = Idle | Connecting | Open | Waiting | Failed | Closed


@dataclass
class Settings:
    """What the machine needs besides the request settings (checked by the source).

    :ivar request: the request settings.
    :ivar connect_timeout: seconds for response headers, or ``None``.
    :ivar idle_timeout: seconds without a byte, or ``None``.
    :ivar policy: the status policy.
    :ivar queue_size: ``None``, 0 (off) or the back-pressure bound.
    :ivar reset_backoff_after: seconds open that make a connection healthy.
    :ivar max_line_length: passed to the parser.
    :ivar max_event_size: passed to the parser.
    """

    request: RequestSettings
    connect_timeout: float | None
    idle_timeout: float | None
    policy: StatusPolicy
    queue_size: int | None
    reset_backoff_after: float
    max_line_length: int
    max_event_size: int


__all__ = ["Closed", "Connecting", "Failed", "Idle", "Open", "Settings", "State", "Waiting"]
