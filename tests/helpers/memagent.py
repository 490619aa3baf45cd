"""An in-memory ``IAgent`` for client tests: scripted responses, writable bodies.

Every request is recorded as a :class:`MemoryRequest`; the test answers it with
:meth:`MemoryRequest.respond` (or fails it), then writes into the returned
:class:`MemoryResponse` body. Body writes honour ``pauseProducing`` (they are held
back until ``resumeProducing``), as a real socket would. Each write is one network
read: after it, the agent's clock runs what was scheduled for the reactor's next
turn (``callLater(0, ...)``), as a real reactor would before the next read.

With ``http11=True`` every request instead goes through txsse's own HTTP/1.1
client protocol (the one the source uses without ``agent=``) over an in-memory
transport: ``respond`` writes a real status line and headers, each body write is
one real HTTP chunk, and what the source receives is what httptools parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

from txsse.client._http11 import _StreamClientProtocol, request_head

EVENT_STREAM = {"Content-Type": "text/event-stream"}


class _Collect:
    """A consumer that collects what a body producer writes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


class MemoryResponse:
    """A response whose body the test writes into."""

    def __init__(self, code: int, headers: dict[str, str], request: MemoryRequest) -> None:
        self.code = code
        self.phrase = b"OK"
        self.version = (b"HTTP", 1, 1)
        self.length: Any = None
        self.request = request
        self.headers = Headers()
        for name, value in headers.items():
            self.headers.addRawHeader(name.encode(), value.encode())
        self.protocol: Any = None
        self.paused = False
        self.stopped = False
        self.ended = False
        self._held: list[bytes] = []
        self._end: Failure | None = None
        self.pauses = 0

    # the body transport (IPushProducer)
    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self._flush()

    def stopProducing(self) -> None:
        self.stopped = True
        self._held = []
        self._lose(Failure(ResponseFailed([Failure(ConnectionLost("aborted"))])))

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)
        self._flush()

    # what the test does
    def write(self, data: bytes) -> None:
        """Send body bytes (held back while paused or before deliverBody)."""
        assert not self.ended, "the body already ended"
        self._held.append(data)
        self._flush()

    def finish(self) -> None:
        """End the body cleanly."""
        self._end = Failure(ResponseDone())
        self._flush()

    def drop(self) -> None:
        """Break the connection."""
        self._end = Failure(ResponseFailed([Failure(ConnectionLost("dropped"))]))
        self._flush()

    def _flush(self) -> None:
        if self.protocol is None or self.stopped:
            return
        while self._held and not self.paused and not self.stopped:
            self.protocol.dataReceived(self._held.pop(0))
        if self._end is not None and not self._held and not self.ended:
            self._lose(self._end)
        clock = self.request.clock
        if clock is not None:
            clock.advance(0)  # the reactor's next turn

    def _lose(self, reason: Failure) -> None:
        if self.ended:
            return
        self.ended = True
        if self.protocol is not None:
            self.protocol.connectionLost(reason)


@dataclass
class MemoryRequest:
    """One request the agent received."""

    method: bytes
    uri: bytes
    headers: Headers
    body: bytes | None
    deferred: Deferred[Any] = field(default_factory=Deferred)
    cancelled: bool = False
    response: MemoryResponse | None = None
    clock: Clock | None = None
    wire: _Wire | None = None

    @property
    def url(self) -> str:
        return self.uri.decode()

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def respond(
        self, code: int = 200, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> MemoryResponse:
        """Answer with ``code`` and ``headers`` (an event stream by default)."""
        kind = MemoryResponse if self.wire is None else WireResponse
        response = kind(code, EVENT_STREAM if headers is None else headers, self)
        self.response = response
        if self.wire is not None:
            self.wire.respond(code, response.headers)
        if body:
            response.write(body)
        if self.wire is None:
            self.deferred.callback(response)
        return response

    def fail(self, error: BaseException) -> None:
        """Fail the request (connection refused, DNS error...)."""
        self.deferred.errback(Failure(error))


class _Wire:
    """The in-memory transport under txsse's HTTP/1.1 client protocol, for one request."""

    def __init__(
        self, request: MemoryRequest, method: bytes, uri: bytes, headers: Headers | None
    ) -> None:
        self.request = request
        self.written: list[bytes] = []
        self.paused = False
        self.pauses = 0
        self.closed = False
        head = request_head(method, URI.fromBytes(uri), headers, None)
        self.connection = _StreamClientProtocol(head, None, method.upper() == b"HEAD")
        self.connection.makeConnection(self)  # type: ignore[arg-type]

        def answered(response: Any) -> None:
            if not request.deferred.called:
                request.deferred.callback(response)

        self.connection.response.addCallbacks(answered, lambda failure: None)

    def respond(self, code: int, headers: Headers) -> None:
        """Send the status line and headers; the body will be chunked."""
        lines = [b"HTTP/1.1 %d Status" % code]
        lines += [b"%s: %s" % (n, v) for n, vs in headers.getAllRawHeaders() for v in vs]
        lines.append(b"Transfer-Encoding: chunked")
        self.connection.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")

    def read(self, data: bytes) -> None:
        """One network read of body bytes, framed as one HTTP chunk."""
        if data and not self.closed:
            self.connection.dataReceived(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        """The last chunk."""
        if not self.closed:
            self.connection.dataReceived(b"0\r\n\r\n")

    def lose(self, reason: Failure) -> None:
        """The connection is gone."""
        if not self.closed:
            self.closed = True
            self.connection.connectionLost(reason)

    # ITransport / IPushProducer, as the protocol uses them

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.written.extend(data)

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        response = self.request.response
        if isinstance(response, WireResponse):
            response._flush()

    def stopProducing(self) -> None:
        self.abortConnection()

    def loseConnection(self) -> None:
        self.lose(Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        response = self.request.response
        if response is not None:
            response.stopped = True
        self.lose(Failure(ConnectionAborted()))


class WireResponse(MemoryResponse):
    """A response read through txsse's HTTP/1.1 client protocol (``http11=True``).

    ``write``, ``finish`` and ``drop`` become chunks, the last chunk and a lost
    connection on the in-memory wire; ``paused`` is the wire's.
    """

    @property
    def wire(self) -> _Wire:
        assert self.request.wire is not None
        return self.request.wire

    @property  # type: ignore[override]
    def paused(self) -> bool:
        return self.request.wire is not None and self.request.wire.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        pass  # the wire's state is the truth

    @property  # type: ignore[override]
    def pauses(self) -> int:
        return self.wire.pauses if self.request.wire is not None else 0

    @pauses.setter
    def pauses(self, value: int) -> None:
        pass

    @property  # type: ignore[override]
    def protocol(self) -> Any:
        return _ReadInto(self.wire)

    @protocol.setter
    def protocol(self, value: Any) -> None:
        pass

    def write(self, data: bytes) -> None:
        """Send body bytes: one chunk per write (held back while paused)."""
        assert not self.ended, "the body already ended"
        self._held.append(data)
        self._flush()

    def _flush(self) -> None:
        wire = self.wire
        while self._held and not wire.paused and not wire.closed:
            wire.read(self._held.pop(0))
        if self._end is not None and not self._held and not self.ended:
            self.ended = True
            if self._end.check(ResponseDone):
                wire.end()
            else:
                wire.lose(self._end)
        clock = self.request.clock
        if clock is not None:
            clock.advance(0)  # the reactor's next turn


class _ReadInto:
    """``response.protocol`` in wire mode: ``dataReceived`` is one read of one chunk."""

    def __init__(self, wire: _Wire) -> None:
        self._wire = wire

    def dataReceived(self, data: bytes) -> None:
        self._wire.read(data)


@implementer(IAgent)
class MemoryAgent:
    """An ``IAgent`` that records requests for the test to answer."""

    def __init__(self, clock: Clock | None = None, http11: bool = False) -> None:
        """Record requests; answer them from the test.

        :param clock: the reactor's clock, turned after every body write.
        :param http11: go through txsse's HTTP/1.1 client protocol (see the module).
        """
        self.requests: list[MemoryRequest] = []
        self.clock = clock
        self.http11 = http11

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Any]:
        body = None
        if bodyProducer is not None:
            sink = _Collect()
            bodyProducer.startProducing(sink)
            body = b"".join(sink.chunks)

        def cancel(_: Deferred[Any]) -> None:
            request.cancelled = True
            if request.wire is not None:
                request.wire.connection.response.cancel()
            request.deferred.errback(Failure(CancelledError()))

        request = MemoryRequest(
            method,
            uri,
            headers or Headers(),
            body,
            Deferred(cancel),
            clock=self.clock,
        )
        if self.http11:
            request.wire = _Wire(request, method, uri, headers)
        self.requests.append(request)
        return request.deferred

    @property
    def last(self) -> MemoryRequest:
        """The most recent request."""
        return self.requests[-1]

    def pending(self) -> list[MemoryRequest]:
        """Requests not answered (nor cancelled) yet."""
        return [r for r in self.requests if not r.deferred.called]
