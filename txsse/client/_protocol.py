"""The response-body protocol: bytes from ``deliverBody`` in, parsed items out.

:class:`EventStreamProtocol` knows the parser and the transport of one response
body, and nothing about reconnection, status codes or timers: that policy lives in
:class:`~txsse.EventSource`, which receives what the protocol reports through a
:class:`StreamReceiver`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from txsse._event import Comment, Event
from txsse._parser import EventStreamParser
from txsse.errors import ParseError, StreamEnded


class StreamReceiver(TypingProtocol):
    """What an :class:`EventStreamProtocol` reports to."""

    def items_received(self, items: Sequence[Event | Comment]) -> None:
        """A chunk of the body arrived; ``items`` may be empty.

        :param items: the events (and comments) this chunk completed, in order.
        """

    def retry_changed(self, milliseconds: int) -> None:
        """The server sent a new valid ``retry:`` value.

        :param milliseconds: the new reconnection time.
        """

    def stream_ended(self, reason: BaseException) -> None:
        """The body ended; called once, and never after :meth:`EventStreamProtocol.abort`.

        :param reason: :class:`~txsse.errors.StreamEnded` when the server ended
            the body cleanly, the :class:`~txsse.errors.ParseError` when the
            stream could not be parsed further, or the network failure.
        """


class EventStreamProtocol(Protocol):
    """Parse a response body delivered by ``IResponse.deliverBody``.

    Every chunk goes through the parser; completed events and comments go to
    :meth:`StreamReceiver.items_received`, a changed ``retry:`` to
    :meth:`StreamReceiver.retry_changed`, and the end of the body (clean, broken
    or unparsable) to :meth:`StreamReceiver.stream_ended`, exactly once.

    On a :class:`~txsse.errors.ParseError` the events completed before the bad
    line are reported first, then the body is aborted and the error reported as
    its end.

    With a ``clock``, the chunks of one network read (a server that flushes every
    event sends one HTTP chunk per event, and one read holds hundreds) are parsed
    together on the reactor's next turn, ``callLater(0)``: the parser then runs
    once per read instead of once per event. Without one, every chunk is parsed
    as it arrives; and so it is, whatever the clock, when the transport already
    hands over the body of one read in one call (its ``delivers_per_read``
    attribute is true, as with txsse's own HTTP/1.1 client): no reactor turn is
    then spent between the network and the parser.

    :param parser: the parser for this body, already seeded with the last event ID.
    :param receiver: where to report.
    :param clock: the reactor's clock, to parse once per reactor turn.
    """

    def __init__(
        self, parser: EventStreamParser, receiver: StreamReceiver, clock: IReactorTime | None = None
    ) -> None:
        self.parser = parser
        self._receiver = receiver
        self._items_received = receiver.items_received
        self._retry = parser.retry
        self._done = False
        self._paused = False
        #: The length of the chunk being parsed (or last parsed), in bytes.
        self.chunk_size = 0
        self._clock = clock
        self._chunks: list[bytes] = []
        self._turn: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Parse at once when the transport delivers each network read in one call."""
        if getattr(self.transport, "delivers_per_read", False):
            self._clock = None

    @property
    def done(self) -> bool:
        """Whether the body ended or was aborted."""
        return self._done

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` stopped the transport."""
        return self._paused

    def dataReceived(self, data: bytes) -> None:
        """Feed a chunk of the body to the parser and report what it completed.

        :param data: the next bytes of the body.
        """
        if self._done:
            return
        if self._clock is not None:
            self._chunks.append(data)
            if self._turn is None:
                self._turn = self._clock.callLater(0, self._parse_turn)
            return
        self._parse(data)

    def _parse_turn(self) -> None:
        """Parse what arrived during the last reactor turn."""
        self._turn = None
        chunks, self._chunks = self._chunks, []
        if chunks and not self._done:
            self._parse(b"".join(chunks))  # one chunk: joined is the same object

    def _parse(self, data: bytes) -> None:
        """Feed ``data`` to the parser and report what it completed."""
        parser = self.parser
        self.chunk_size = len(data)
        try:
            items = parser.feed(data)
        except ParseError as error:
            self._items_received(error.events)
            self._finish(error, abort=True)
            return
        self._items_received(items)
        retry = parser.retry
        if retry != self._retry and not self._done:
            self._retry = retry
            if retry is not None:
                self._receiver.retry_changed(retry)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The body ended: report it, unless :meth:`abort` was called first.

        :param reason: ``ResponseDone`` or ``PotentialDataLoss`` for a clean
            end (reported as :class:`~txsse.errors.StreamEnded`), anything
            else for a broken one.
        """
        error = reason.value
        if error is None or isinstance(error, ResponseDone | PotentialDataLoss):
            error = StreamEnded("the server ended the event stream")
        self._flush_turn()
        self._finish(error, abort=False)

    def _flush_turn(self) -> None:
        """Parse at once what waits for the next reactor turn."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.cancel()
            self._parse_turn()

    def abort(self) -> None:
        """Drop the body now; nothing more is reported."""
        if not self._done:
            self._done = True
            self._drop_turn()
            self._stop_transport()

    def _drop_turn(self) -> None:
        """Forget what waits for the next reactor turn."""
        self._chunks = []
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.cancel()

    def pause(self) -> None:
        """Stop reading from the network (back-pressure)."""
        if not self._paused and not self._done:
            self._paused = True
            producer = cast("IPushProducer | None", self.transport)
            if producer is not None:
                producer.pauseProducing()

    def resume(self) -> None:
        """Read from the network again after :meth:`pause`."""
        if self._paused and not self._done:
            self._paused = False
            producer = cast("IPushProducer | None", self.transport)
            if producer is not None:
                producer.resumeProducing()

    def _finish(self, reason: BaseException, *, abort: bool) -> None:
        """Report the end of the body once, aborting the transport if asked."""
        if self._done:
            return
        self._done = True
        self._drop_turn()
        if abort:
            self._stop_transport()
        self._receiver.stream_ended(reason)

    def _stop_transport(self) -> None:
        """Close the connection under the body (it is never reused)."""
        producer = cast("IPushProducer | None", self.transport)
        if producer is not None:
            producer.stopProducing()
