"""An in-memory ``IAgent`` for client tests: scripted responses, writable bodies.

Every request is recorded as a :class:`MemoryRequest`; the test answers it with
:meth:`MemoryRequest.respond` (or fails it), then writes into the returned
:class:`MemoryResponse` body. Body writes honour ``pauseProducing`` (they are held
back until ``resumeProducing``), as a real socket would. Each write is one network
read: after it, the agent's clock runs what was scheduled for the reactor's next
turn (``callLater(0, ...)``), as a real reactor would before the next read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

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
        response = MemoryResponse(code, EVENT_STREAM if headers is None else headers, self)
        self.response = response
        if body:
            response.write(body)
        self.deferred.callback(response)
        return response

    def fail(self, error: BaseException) -> None:
        """Fail the request (connection refused, DNS error...)."""
        self.deferred.errback(Failure(error))


@implementer(IAgent)
class MemoryAgent:
    """An ``IAgent`` that records requests for the test to answer."""

    def __init__(self, clock: Clock | None = None) -> None:
        """:param clock: the reactor's clock, turned after every body write."""
        self.requests: list[MemoryRequest] = []
        self.clock = clock

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
            request.deferred.errback(Failure(CancelledError()))

        request = MemoryRequest(
            method, uri, headers or Headers(), body, Deferred(cancel), clock=self.clock
        )
        self.requests.append(request)
        return request.deferred

    @property
    def last(self) -> MemoryRequest:
        """The most recent request."""
        return self.requests[-1]

    def pending(self) -> list[MemoryRequest]:
        """Requests not answered (nor cancelled) yet."""
        return [r for r in self.requests if not r.deferred.called]
