"""One open event stream: the subscriber between a channel and an HTTP response."""

from __future__ import annotations

import socket
from typing import Any, Protocol

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request
from zope.interface import implementer

from txsse.server._channel import ISubscriber

_log = Logger()


class StreamOwner(Protocol):
    """What a stream needs from the resource serving it (``EventStreamResource``).

    Defined here, so that this module does not import the resource's (which imports
    this one): no import cycle, not even for type checking.
    """

    max_unsent: int

    def frame(self, chunk: bytes) -> bytes:
        """The chunked HTTP/1.1 framing of ``chunk``, computed once per broadcast."""

    def evict(self, stream: _Stream) -> None:
        """Disconnect ``stream``'s client: it has too many bytes unsent."""

    def finish_stream(self, stream: _Stream, last: bytes) -> None:
        """Write ``last`` and end ``stream``'s response."""

    def release(self, stream: _Stream) -> None:
        """Forget ``stream``: its connection is gone."""


@implementer(ISubscriber, IPushProducer)
class _Stream:
    """The response side of one subscription.

    Registered as the request's streaming producer, it learns from the
    transport when the client stops reading (``pauseProducing``). From then
    on every byte written is counted; past the resource's ``max_unsent`` the
    client is disconnected, and it resumes from the history when it
    reconnects. Everyone else keeps receiving meanwhile.

    On a plain HTTP/1.1 connection the chunked framing of each broadcast is
    computed once by the resource and written straight to the TCP transport;
    other transports (HTTP/1.0, HTTP/2) go through ``Request.write``. On a
    cleartext TCP transport whose write buffer is empty, the bytes are sent to
    the socket at once (as asyncio's transports do), which saves the reactor
    two ``epoll_ctl`` calls per event and client; whatever the socket does not
    take goes to the transport's buffer as usual.
    """

    __slots__ = (
        "_queued",
        "_resource",
        "_socket",
        "_transport",
        "open",
        "paused",
        "pending",
        "request",
    )

    def __init__(self, resource: StreamOwner, request: Request) -> None:
        self._resource = resource
        self.request = request
        self.paused = False
        self.open = True
        self._queued = 0
        # The subscribe Deferred while the channel has not answered yet.
        self.pending: Deferred[Any] | None = None
        # Set once the headers are out, for the chunked fast path.
        self._transport: Any = None
        self._socket: socket.socket | None = None

    def start(self, first: bytes) -> None:
        """Write the headers and the first bytes; enable the fast path."""
        request = self.request
        request.write(first)
        channel = request.channel
        if request.chunked and isinstance(channel, HTTPChannel):
            transport: Any = channel.transport
            self._transport = transport
            if (
                isinstance(transport, tcp.Connection)
                and not ISSLTransport.providedBy(transport)
                and isinstance(getattr(transport, "_tempDataBuffer", None), list)
                and isinstance(getattr(transport, "dataBuffer", None), bytes)
                and getattr(transport, "_aborting", None) is False
            ):
                self._socket = transport.socket

    def send(self, chunk: bytes) -> None:
        """Write encoded events, counting them while the client is not reading."""
        if self.paused:
            self._queued += len(chunk)
            if self._queued > self._resource.max_unsent:
                self._resource.evict(self)
                return
        transport = self._transport
        if transport is not None:
            framed = self._resource.frame(chunk)
            self.request.sentLength += len(chunk)  # for the access log
            sock = self._socket
            if sock is not None and not (
                transport.dataBuffer
                or transport._tempDataBuffer
                or transport.disconnecting
                or transport._aborting
            ):
                try:
                    sent = sock.send(framed)
                except OSError:
                    # Full (EAGAIN) or broken: the transport buffers it, and
                    # finds and reports a broken connection itself.
                    sent = 0
                if sent == len(framed):
                    return
                framed = framed[sent:]
            transport.write(framed)
        else:
            self.request.write(chunk)

    def end(self) -> None:
        """The channel dropped us: end the response so the client resumes."""
        self._resource.finish_stream(self, b"")

    def pauseProducing(self) -> None:
        """The transport's buffer is full: start counting what we queue."""
        if not self.paused:
            self.paused = True
            self._queued = 0

    def resumeProducing(self) -> None:
        """The client caught up with its buffer."""
        self.paused = False
        self._queued = 0

    def stopProducing(self) -> None:
        """The connection is going away; ``notifyFinish`` releases us."""

    def abort(self) -> None:
        """Drop the connection at once, without flushing what is queued."""
        channel: Any = self.request.channel
        if channel is None:
            return
        abort = getattr(channel, "abortConnection", None)
        if abort is None:
            abort = channel.transport.abortConnection
        abort()

    def finished(self, result: object) -> None:
        """The response finished or the connection was lost: release it now."""
        self._resource.release(self)
        if isinstance(result, Failure):
            _log.debug("event stream to {peer} lost: {reason}", peer=self.peer(), reason=result)

    def peer(self) -> str:
        """The client's address, for logs."""
        channel: Any = self.request.channel
        return str(channel.getPeer()) if channel is not None else "(disconnected)"
