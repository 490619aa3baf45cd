"""txsse's own HTTP/1.1 client for event streams: one request per connection.

:class:`HTTP11StreamAgent` is an ``IAgent`` made for long-lived streamed
responses. It connects through Twisted endpoints (``HostnameEndpoint``, and for
``https`` ``wrapClientTLS`` with the TLS policy's connection creator, exactly as
``twisted.web.client.Agent`` does), writes the request itself and parses the
response with ``httptools`` (the C binding of llhttp, Node's HTTP parser): status
line, headers, a chunked, length-delimited or close-delimited body, trailers
(ignored), ``1xx`` interim responses (skipped).

The response it fires with behaves like an ``IResponse``: ``deliverBody`` gives
the body protocol a push-producer transport (pause, resume, stop) and ends it with
``ResponseDone``, ``PotentialDataLoss`` (a close-delimited body) or
``ResponseFailed``, as Twisted's own. The difference that matters for speed: the
body of one network read, however many HTTP chunks it holds (a server that flushes
every event sends one chunk per event), reaches the body protocol as **one**
``dataReceived`` call, during that read, with no reactor turn in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import httptools
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import (
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    BrowserLikePolicyForHTTPS,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    UNKNOWN_LENGTH,
    IAgent,
    IBodyProducer,
    IClientRequest,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from txsse.errors import InvalidResponse

_DEFAULT_PORTS = ((b"http", 80), (b"https", 443))


def _response_failed(reason: Failure) -> Failure:
    """A ``Failure`` of ``ResponseFailed([reason])``, Twisted's broken-body reason."""
    return Failure(ResponseFailed([reason]))


def _clean(value: bytes) -> bytes:
    """A header name or value with CR, LF and NUL replaced by spaces (as Twisted does)."""
    if b"\r" in value or b"\n" in value or b"\0" in value:
        return value.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\0", b" ")
    return value


def _host_value(uri: URI) -> bytes:
    """The ``Host`` header for ``uri`` (the port only when it is not the default)."""
    host: bytes = uri.host
    if b":" in host:
        host = b"[" + host + b"]"
    if (uri.scheme, uri.port) in _DEFAULT_PORTS:
        return host
    return b"%b:%d" % (host, uri.port)


def request_head(method: bytes, uri: URI, headers: Headers | None, length: int | None) -> bytes:
    """The request line and headers of a one-request connection.

    :param method: the HTTP method.
    :param uri: the parsed URL.
    :param headers: the caller's headers; a ``Host`` of theirs replaces the computed one.
    :param length: the body's length, ``-1`` for a body of unknown length (sent
        chunked), ``None`` for no body.
    :returns: the bytes to write before the body.
    """
    lines = [b"%b %b HTTP/1.1" % (_clean(method), _clean(uri.originForm))]
    has_host = False
    for name, values in (headers or Headers()).getAllRawHeaders():
        lowered = name.lower()
        if lowered in (b"connection", b"content-length", b"transfer-encoding"):
            continue  # this client decides those
        has_host = has_host or lowered == b"host"
        lines.extend(b"%b: %b" % (_clean(name), _clean(value)) for value in values)
    if not has_host:
        lines.insert(1, b"Host: " + _host_value(uri))
    lines.append(b"Connection: close")
    if length is not None:
        lines.append(
            b"Transfer-Encoding: chunked" if length < 0 else b"Content-Length: %d" % length
        )
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _ChunkedWriter:
    """A consumer that frames what a body producer writes as HTTP/1.1 chunks."""

    def __init__(self, transport: ITransport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        """Write one chunk (nothing for empty data: that would end the body)."""
        if data:
            self._transport.writeSequence([b"%x\r\n" % len(data), data, b"\r\n"])

    def finish(self) -> None:
        """Write the last chunk."""
        self._transport.write(b"0\r\n\r\n")


class _BodyTransport:
    """The transport a body protocol sees: pause, resume or stop the connection.

    :ivar delivers_per_read: this transport hands over the body of one network read
        in one ``dataReceived`` call (see :class:`~txsse.EventStreamProtocol`).
    """

    delivers_per_read = True

    def __init__(self, connection: _StreamClientProtocol) -> None:
        self._connection = connection

    def pauseProducing(self) -> None:
        """Stop reading from the network."""
        transport = self._connection.producer
        if transport is not None and not self._connection.finished:
            transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Read from the network again."""
        transport = self._connection.producer
        if transport is not None and not self._connection.finished:
            transport.resumeProducing()

    def stopProducing(self) -> None:
        """Drop the body: close the connection."""
        self._connection.stop()

    def loseConnection(self) -> None:
        """Drop the body (as ``stopProducing``)."""
        self._connection.stop()


@implementer(IResponse)
class StreamResponse:
    """A response of :class:`HTTP11StreamAgent`: an ``IResponse`` for one body reader.

    :ivar version: ``(b"HTTP", major, minor)``.
    :ivar code: the status code.
    :ivar phrase: the reason phrase.
    :ivar headers: the response headers.
    :ivar length: the ``Content-Length``, or ``UNKNOWN_LENGTH``.
    :ivar request: ``None`` (no ``IClientRequest`` is kept).
    :ivar previousResponse: ``None``.
    """

    request: IClientRequest | None = None
    previousResponse: IResponse | None = None

    def __init__(
        self,
        connection: _StreamClientProtocol,
        version: tuple[bytes, int, int],
        code: int,
        phrase: bytes,
        headers: Headers,
        length: int | object,
    ) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = length
        self._connection = connection
        self._protocol: Protocol | None = None
        self._buffer: list[bytes] = []
        self._end: Failure | None = None

    def setPreviousResponse(self, response: IResponse) -> None:
        """Part of ``IResponse``; redirects are followed by the caller, so unused.

        :param response: the previous response.
        """
        self.previousResponse = response

    def deliverBody(self, protocol: Protocol) -> None:
        """Deliver the body to ``protocol``: bytes as they arrive, then ``connectionLost``.

        :param protocol: the body protocol; its transport (an ``IPushProducer``, not
            an ``ITransport``, as with Twisted's own responses) pauses, resumes and
            stops the connection.
        :raises RuntimeError: when called a second time.
        """
        if self._protocol is not None:
            raise RuntimeError("the body of this response is already being delivered")
        self._protocol = protocol
        protocol.makeConnection(_BodyTransport(self._connection))
        buffered, self._buffer = self._buffer, []
        if buffered:
            protocol.dataReceived(b"".join(buffered))
        if self._end is not None:
            protocol.connectionLost(self._end)
        else:
            self._connection.deliver_to(protocol.dataReceived)

    def body_data(self, data: bytes) -> None:
        """Keep body bytes that arrived before :meth:`deliverBody`."""
        self._buffer.append(data)

    def body_ended(self, reason: Failure) -> None:
        """The body ended: tell the reader, or keep it for :meth:`deliverBody`."""
        if self._end is not None:
            return
        self._end = reason
        if self._protocol is not None:
            self._protocol.connectionLost(reason)


class _StreamClientProtocol(Protocol):
    """One connection: write one request, parse one response, hand its body over.

    :param head: the request line and headers.
    :param body: the request body producer, or ``None``.
    :param head_only: the request was ``HEAD``: the response has no body.
    """

    def __init__(self, head: bytes, body: IBodyProducer | None, head_only: bool) -> None:
        self._head = head
        self._body = body
        self._head_only = head_only
        self.response: Deferred[IResponse] = Deferred(self._cancel)
        self._stopped = False
        self._ended = False
        self._got_bytes = False
        self._header_list: list[tuple[bytes, bytes]] = []
        self._phrase = b""
        self._headers_done = False
        self._message_done = False
        self._result: StreamResponse | None = None
        self._close_delimited = False
        # The body of the current read: httptools appends every piece here (the
        # callback is this list's own append, looked up once by the parser).
        self._pieces: list[bytes] = []
        self.on_body = self._pieces.append
        self._sink: Callable[[bytes], object] | None = None
        self._parser = httptools.HttpResponseParser(self)

    # httptools callbacks (they must not raise)

    def on_status(self, status: bytes) -> None:
        """The reason phrase."""
        self._phrase = status

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header (or, after the headers, a trailer: ignored)."""
        if not self._headers_done:
            self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        """The headers ended: keep them, unless it was an interim ``1xx``."""
        if self._parser.get_status_code() < 200:
            self._header_list = []
            return
        self._headers_done = True

    def on_message_complete(self) -> None:
        """The response (or an interim ``1xx``) ended."""
        if self._headers_done:
            self._message_done = True

    # the connection

    def connectionMade(self) -> None:
        """Send the request."""
        transport = self.transport
        assert transport is not None  # makeConnection set it
        transport.write(self._head)
        body = self._body
        if body is not None:
            if body.length is UNKNOWN_LENGTH:
                writer = _ChunkedWriter(transport)
                body.startProducing(writer).addCallbacks(
                    lambda _: writer.finish(), self._body_failed
                )
            else:
                body.startProducing(transport).addErrback(self._body_failed)

    def _body_failed(self, failure: Failure) -> None:
        """The request body could not be produced: give up the request."""
        self._fail_response(failure)
        self.stop()

    def dataReceived(self, data: bytes) -> None:
        """Parse a network read; deliver its body in one piece, after the parse.

        :param data: the bytes read.
        """
        if self.finished or self._message_done:
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._invalid("the server switched protocols (Upgrade), not an event stream")
            return
        except httptools.HttpParserError as error:
            if not self._message_done:  # bytes after the end of the response are ignored
                self._invalid(str(error))
                return
        if self._result is None:
            if not self._headers_done:
                return
            self._fire()
            if self._stopped:  # the response's reader dropped it at once
                return
        pieces = self._pieces
        if pieces:
            body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces.clear()
            sink = self._sink
            if sink is not None:
                sink(body)
            else:
                assert self._result is not None
                self._result.body_data(body)
        if self._message_done or self._head_only:
            self._end_body(Failure(ResponseDone("the response body ended")))
            transport = self.transport
            assert transport is not None  # a connection is receiving
            transport.loseConnection()

    def _fire(self) -> None:
        """The headers are complete: fire the response."""
        headers = Headers()
        length: int | object = UNKNOWN_LENGTH
        chunked = False
        for name, value in self._header_list:
            headers.addRawHeader(name, value)
            lowered = name.lower()
            if lowered == b"content-length" and value.strip().isdigit():
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            length = UNKNOWN_LENGTH
        self._header_list = []
        self._close_delimited = length is UNKNOWN_LENGTH and not chunked
        major, _, minor = self._parser.get_http_version().partition(".")
        result = self._result = StreamResponse(
            self,
            (b"HTTP", int(major or 1), int(minor or 1)),
            self._parser.get_status_code(),
            self._phrase,
            headers,
            length,
        )
        self.response.callback(result)

    def deliver_to(self, sink: Callable[[bytes], object]) -> None:
        """Hand body bytes straight to ``sink`` from now on."""
        if not self.finished:
            self._sink = sink

    def _invalid(self, detail: str) -> None:
        """The server's answer is not valid HTTP/1.1: give up the connection."""
        error = InvalidResponse(detail)
        if self._result is None:
            self._fail_response(Failure(error))
        else:
            self._end_body(_response_failed(Failure(error)))
        self.stop()

    def _fail_response(self, failure: Failure) -> None:
        """Fail the response Deferred (once, and only before the headers)."""
        if not self.response.called:
            self.response.errback(failure)

    @property
    def producer(self) -> IPushProducer | None:
        """The connection's transport as what it also is: a push producer.

        TCP and TLS transports pause and resume reading (``TLSMemoryBIOProtocol``
        without declaring ``IPushProducer``); ``None`` before the connection is made.
        """
        return cast("IPushProducer | None", self.transport)

    @property
    def finished(self) -> bool:
        """Whether the body ended or the connection was dropped."""
        return self._stopped or self._ended

    def _end_body(self, reason: Failure) -> None:
        """End the body (once)."""
        self._ended = True
        self._sink = None
        if self._result is not None:
            self._result.body_ended(reason)

    def stop(self) -> None:
        """Drop the connection now (the body, if any, ends when it is gone)."""
        self._stopped = True
        # TCP and TLS transports (``TLSMemoryBIOProtocol`` is an ``ITLSTransport``)
        transport = cast("ITCPTransport | None", self.transport)
        if transport is not None:
            transport.abortConnection()

    def _cancel(self, deferred: Deferred[IResponse]) -> None:
        """Cancelling the response drops the connection (the Deferred fails with CancelledError)."""
        self.stop()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection is gone: end the response or its body accordingly.

        :param reason: why.
        """
        if self._result is None:
            if not self.response.called:
                error = ResponseNeverReceived if not self._got_bytes else ResponseFailed
                self.response.errback(Failure(error([reason])))
            return
        if self._ended:
            return
        if self._close_delimited and not self._stopped:
            self._end_body(Failure(PotentialDataLoss()))
        else:
            self._end_body(_response_failed(reason))


@implementer(IAgent)
class HTTP11StreamAgent:
    """An ``IAgent`` for event streams: a new connection per request, never reused.

    :param reactor: the reactor to connect with: an ``IReactorTime`` that is
        also an ``IReactorTCP`` (``HostnameEndpoint`` needs both; ``https`` adds
        TLS through ``wrapClientTLS``).
    :param tls: the ``IPolicyForHTTPS`` giving each host's TLS connection creator;
        by default ``BrowserLikePolicyForHTTPS`` (system CAs, host name checked).
    """

    def __init__(self, reactor: IReactorTime, tls: IPolicyForHTTPS | None = None) -> None:
        self._reactor = reactor
        self._tls: IPolicyForHTTPS = tls or BrowserLikePolicyForHTTPS()

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        """Send one request on a new connection.

        :param method: the HTTP method.
        :param uri: the absolute ``http`` or ``https`` URL.
        :param headers: the request headers.
        :param bodyProducer: the request body, or ``None``.
        :returns: a Deferred that fires with a :class:`StreamResponse` once the
            headers are in, or fails (``ResponseNeverReceived``,
            ``ResponseFailed``, :class:`~txsse.errors.InvalidResponse`, a
            connection error); cancelling it drops the connection.
        """
        parsed = URI.fromBytes(uri)
        if parsed.scheme not in (b"http", b"https"):
            return fail(ValueError(f"unsupported URL scheme {parsed.scheme!r}"))
        try:
            host = parsed.host.decode("ascii")
        except UnicodeDecodeError:
            return fail(ValueError(f"the host of {uri!r} is not ASCII (use IDNA)"))
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self._reactor, host, parsed.port)
        if parsed.scheme == b"https":
            creator = self._tls.creatorForNetloc(parsed.host, parsed.port)
            endpoint = wrapClientTLS(creator, endpoint)
        length = None
        if bodyProducer is not None:
            length = -1 if bodyProducer.length is UNKNOWN_LENGTH else int(bodyProducer.length)
        head = request_head(method, parsed, headers, length)
        protocol = _StreamClientProtocol(head, bodyProducer, method.upper() == b"HEAD")
        connected: Deferred[object] = connectProtocol(endpoint, protocol)
        return connected.addCallback(lambda _: protocol.response)


__all__ = ["HTTP11StreamAgent", "StreamResponse", "request_head"]
