"""One open event stream: the subscriber between a channel and an HTTP response."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request
from zope.interface import implementer

from txsse.server._channel import ISubscriber
from txsse.server._direct import DirectWriter, direct_socket
from txsse.server._h2 import h2_queued

_log = Logger()

#: The most bytes handed to the transport in one write when a backlog is sent:
#: a replay goes out in pieces, as the transport asks for more.
PIECE = 64 * 1024
#: Bytes an HTTP/2 stream may hold in Twisted's send queue before we hold the rest.
H2_LIMIT = 64 * 1024
#: Seconds between checks of a held HTTP/2 stream's queue.
H2_POLL = 0.01


class StreamOwner(Protocol):
    """What a stream needs from the resource serving it (``EventStreamResource``).

    Defined here, so that this module does not import the resource's (which imports
    this one): no import cycle, not even for type checking.
    """

    max_unsent: int
    slow_client_timeout: float
    direct_writes: bool

    _reactor: IReactorTime

    def _frame(self, chunk: bytes | memoryview) -> bytes:
        """The HTTP/1.1 chunked framing of ``chunk`` (shared per broadcast)."""

    def _release(self, stream: _Stream) -> None:
        """Forget the stream and unsubscribe it."""

    def _evict(self, stream: _Stream) -> None:
        """Disconnect the stream's client: it did not keep up."""

    def _finish_stream(self, stream: _Stream, last: bytes) -> None:
        """End the response cleanly after ``last``."""


class _ChunkedWriter:
    """HTTP/1.1 on any transport: the shared chunked framing, through ``transport.write``."""

    __slots__ = ("_frame", "_request", "_transport")

    def __init__(
        self,
        request: Request,
        transport: ITransport,
        frame: Callable[[bytes | memoryview], bytes],
    ) -> None:
        self._request = request
        self._transport = transport
        self._frame = frame

    def write(self, chunk: bytes | memoryview) -> None:
        self._request.sentLength += len(chunk)  # for the access log
        self._transport.write(self._frame(chunk))


@implementer(ISubscriber, IPushProducer)
class _Stream:
    """The response side of one subscription.

    Bytes go to the transport at once while it takes them. Once it pauses us
    (``pauseProducing``: its write buffer is full), or while a backlog waits,
    they are kept in the stream's backlog and counted; ``resumeProducing``
    sends the backlog on, in pieces of at most :data:`PIECE` bytes, until the
    transport pauses us again. A replay starts as a backlog, so it is paced
    the same way and counted against the same bound.

    A client whose backlog stays above the resource's ``max_unsent`` for
    ``slow_client_timeout`` seconds without falling back under it is
    disconnected (it resumes from the history when it reconnects); a burst
    that a reading client takes in less time never is. Everyone else keeps
    receiving meanwhile.

    How bytes are written is chosen once the headers are out: the direct
    socket write (:mod:`txsse.server._direct`) on cleartext HTTP/1.1, the
    shared chunked framing through ``transport.write`` on other HTTP/1.1
    transports, ``Request.write`` otherwise (HTTP/1.0, HTTP/2). An HTTP/2
    stream also holds its bytes while Twisted's queue for it exceeds
    :data:`H2_LIMIT` (see :mod:`txsse.server._h2`).
    """

    __slots__ = (
        "_backlog",
        "_deadline",
        "_h2_bound",
        "_h2_queued",
        "_h2_timer",
        "_owner",
        "_queued",
        "_write",
        "evicted",
        "open",
        "paused",
        "pending",
        "request",
    )

    def __init__(self, owner: StreamOwner, request: Request) -> None:
        self._owner = owner
        self.request = request
        self.paused = False
        self.open = True
        #: Set when the client is disconnected for not keeping up (metrics read it).
        self.evicted = False
        # Bytes (or views of shared bytes) waiting for the transport, and their total;
        # no deque at all while nothing waits (most streams, most of the time).
        self._backlog: deque[bytes | memoryview] | None = None
        self._queued = 0
        self._deadline: IDelayedCall | None = None
        self._h2_queued: Callable[[], int] | None = None
        self._h2_bound = 0
        self._h2_timer: IDelayedCall | None = None
        # The subscribe Deferred while the channel has not answered yet.
        self.pending: Deferred[object] | None = None
        self._write: Callable[[bytes | memoryview], object] = self._write_request

    # -- writing -------------------------------------------------------------

    def start(self, *parts: bytes) -> None:
        """Write the headers and the first piece of ``parts``; the rest follows as asked.

        :param parts: the opening bytes (retry hint, resume point, notice) and
            the replay; kept as they are (a shared replay is never copied whole).
        """
        for part in parts:
            if part:
                self._push(part)
        self._write_request(self._take())  # the headers go out with the first piece
        self._write = self._writer()
        self._flush()

    def _writer(self) -> Callable[[bytes | memoryview], object]:
        """How this stream's bytes reach the transport (see the class docstring)."""
        request = self.request
        # Twisted annotates Request.channel as HTTPChannel; on HTTP/2 it is an H2Stream.
        channel: object = request.channel
        owner = self._owner
        if request.chunked and isinstance(channel, HTTPChannel) and channel.transport is not None:
            transport = channel.transport
            if owner.direct_writes and isinstance(transport, tcp.Connection):
                sock = direct_socket(transport)
                if sock is not None:
                    return DirectWriter(request, transport, sock, owner._frame).write
            return _ChunkedWriter(request, transport, owner._frame).write
        queued = h2_queued(channel)
        if queued is not None:
            self._h2_queued = queued
            self._h2_bound = queued()  # the first piece, written with the headers
            return self._write_h2
        return self._write_request

    def send(self, chunk: bytes) -> None:
        """Write encoded events now, or add them to the backlog while one waits."""
        if self.paused or self._queued:
            self._enqueue(chunk)
        else:
            self._write(chunk)

    def _push(self, chunk: bytes) -> None:
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.append(chunk)
        self._queued += len(chunk)

    def _enqueue(self, chunk: bytes) -> None:
        self._push(chunk)
        self._check_bound()

    def _check_bound(self) -> None:
        """Start the eviction deadline once over the bound; drop it once back under."""
        owner = self._owner
        deadline = self._deadline
        if self._queued <= owner.max_unsent:
            if deadline is not None:
                self._deadline = None
                deadline.cancel()
        elif deadline is None and self.open:
            if owner.slow_client_timeout == 0:
                owner._evict(self)
            else:
                self._deadline = owner._reactor.callLater(owner.slow_client_timeout, self._stalled)

    def _take(self) -> bytes | memoryview:
        """The next piece of the backlog, at most :data:`PIECE` bytes, for one write.

        Small items waiting together (a burst of events) are joined into one
        piece: one write and one HTTP chunk per piece, not per event. A large
        item (a shared replay) is cut into views of it, never copied here.
        """
        backlog = self._backlog
        assert backlog is not None
        item = backlog.popleft()
        size = len(item)
        if size > PIECE:
            view = memoryview(item)
            backlog.appendleft(view[PIECE:])
            item = view[:PIECE]
            size = PIECE
        elif backlog and size + len(backlog[0]) <= PIECE:
            items = [item]
            while backlog and size + len(backlog[0]) <= PIECE:
                following = backlog.popleft()
                items.append(following)
                size += len(following)
            item = b"".join(items)
        self._queued -= size
        return item

    def _flush(self) -> None:
        """Send the backlog on while the transport takes it; drop the deadline once under."""
        while self._backlog and not self.paused and self.open:
            self._write(self._take())
        if not self._backlog:
            self._backlog = None
        self._check_bound()

    def _stalled(self) -> None:
        """The backlog stayed over the bound for the whole timeout: disconnect."""
        self._deadline = None
        if self.open and self._queued > self._owner.max_unsent:
            self._owner._evict(self)

    def _write_request(self, chunk: bytes | memoryview) -> None:
        """``Request.write``, which takes ``bytes`` only (a view of a replay is copied here)."""
        self.request.write(bytes(chunk))

    def _write_h2(self, chunk: bytes | memoryview) -> None:
        """``Request.write``, then hold the stream while Twisted's queue for it is full.

        Measuring that queue walks it (Twisted sums its items), so it is measured
        only when what was written since the last measure may have filled it:
        ``_h2_bound`` (the last measure plus the bytes written since) never
        undercounts, as only our writes add to the queue.
        """
        self._write_request(chunk)
        self._h2_bound += len(chunk)
        queued = self._h2_queued
        if self._h2_bound > H2_LIMIT and self._h2_timer is None and queued is not None:
            self._h2_bound = queued()
            if self._h2_bound > H2_LIMIT:
                self.paused = True
                self._h2_timer = self._owner._reactor.callLater(H2_POLL, self._h2_check)

    def _h2_check(self) -> None:
        """Resume once the HTTP/2 connection has sent what it held for us."""
        self._h2_timer = None
        if not self.open or self._h2_queued is None:
            return
        self._h2_bound = self._h2_queued()
        if self._h2_bound > H2_LIMIT // 2:
            self._h2_timer = self._owner._reactor.callLater(H2_POLL, self._h2_check)
        else:
            self.resumeProducing()

    # -- IPushProducer ---------------------------------------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: keep what follows in the backlog."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport wants more: send the backlog on."""
        if self._h2_timer is not None:
            return  # still held: Twisted's HTTP/2 queue for us is full
        self.paused = False
        self._flush()

    def stopProducing(self) -> None:
        """The connection is going away; ``notifyFinish`` releases us."""

    # -- ending ----------------------------------------------------------------

    def end(self) -> None:
        """The channel dropped us: end the response so the client resumes."""
        self._owner._finish_stream(self, b"")

    def discard(self) -> None:
        """Drop the backlog and cancel the stream's timers (it is being released)."""
        self._backlog = None
        self._queued = 0
        for timer in (self._deadline, self._h2_timer):
            if timer is not None:  # set to None as each one fires: never a spent call
                timer.cancel()
        self._deadline = self._h2_timer = None

    def flush_backlog(self) -> None:
        """Hand the whole backlog to the transport, for a clean end of the stream."""
        while self._backlog:
            self._write(self._take())

    def abort(self) -> None:
        """Drop the connection at once, without flushing what is queued."""
        # An HTTP/2 stream aborts itself; HTTP/1.x aborts the channel's transport.
        channel: object = self.request.channel
        if isinstance(channel, HTTPChannel):
            channel = channel.transport
        abort: Callable[[], object] | None = getattr(channel, "abortConnection", None)
        if abort is not None:
            abort()

    def finished(self, result: object) -> None:
        """The response finished or the connection was lost: release it now."""
        self._owner._release(self)
        if isinstance(result, Failure):
            _log.debug("event stream to {peer} lost: {reason}", peer=self.peer(), reason=result)

    def peer(self) -> str:
        """The client's address, for logs."""
        channel: object = self.request.channel
        get_peer: Callable[[], object] | None = getattr(channel, "getPeer", None)
        return str(get_peer()) if get_peer is not None else "(disconnected)"
