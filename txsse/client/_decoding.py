"""Content-Encoding of event-stream bodies: gzip and deflate decoded, streaming and bounded.

The source asks for ``Accept-Encoding: identity``; a server may still compress
(a proxy, a framework's default). ``gzip`` (and ``x-gzip``) and ``deflate`` (zlib or,
as some servers send it, raw) are decoded on the fly; any other coding is refused
with :class:`~txsse.errors.ContentEncodingError` before a byte reaches the parser.

Decoding is bounded: at most :data:`PIECE` decompressed bytes are produced at a
time, each handed to the body protocol (which parses it at once) before the next
is produced, so a decompression bomb hits the parser's ``max_line_length`` /
``max_event_size`` and is dropped, instead of filling memory. When the body
protocol pauses (back-pressure), decompression stops too, keeping the compressed
rest.
"""

from __future__ import annotations

import zlib
from typing import cast

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from txsse.errors import ContentEncodingError, DecompressionError

#: The codings decoded (lower case).
DECODED = frozenset({"gzip", "x-gzip", "deflate"})
#: The most decompressed bytes handed to the body protocol in one call.
PIECE = 64 * 1024


def content_codings(headers: Headers) -> list[str]:
    """The body's content codings, in the order applied, lower case, ``identity`` left out.

    :param headers: the response headers.
    :returns: the codings; empty for an unencoded body.
    """
    codings = []
    for value in headers.getRawHeaders(b"content-encoding") or []:
        for coding in value.decode("latin-1").split(","):
            coding = coding.strip().lower()
            if coding and coding != "identity":
                codings.append(coding)
    return codings


def check_encoding(headers: Headers, url: str) -> ContentEncodingError | None:
    """The error for a body txsse cannot decode, or ``None``.

    :param headers: the response headers.
    :param url: the URL that answered, for the message.
    :returns: a :class:`~txsse.errors.ContentEncodingError` for any coding but one
        ``gzip`` or ``deflate``, else ``None``.
    """
    codings = content_codings(headers)
    if len(codings) > 1 or (codings and codings[0] not in DECODED):
        return ContentEncodingError(", ".join(codings), url)
    return None


def deliver_body(response: IResponse, protocol: Protocol) -> None:
    """``response.deliverBody(protocol)``, decoding a gzip or deflate body on the way.

    Call :func:`check_encoding` first: a coding that is not decoded here is
    delivered as is.

    :param response: the response.
    :param protocol: the body protocol.
    """
    codings = content_codings(response.headers)
    if len(codings) == 1 and codings[0] in DECODED:
        response.deliverBody(DecodingProtocol(codings[0], protocol))
    else:
        response.deliverBody(protocol)


def _is_zlib(head: bytes) -> bool:
    """Whether ``head`` (two bytes at least) starts a zlib stream (else: raw deflate)."""
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class DecodingProtocol(Protocol):
    """A body protocol that decompresses, and hands the result to another.

    It is the inner protocol's transport: pausing it stops decompression (and
    reading); stopping it drops the connection. The inner protocol sees a
    ``delivers_per_read`` transport, so it parses each piece at once.

    :param coding: ``gzip``, ``x-gzip`` or ``deflate``.
    :param inner: the protocol that receives the decoded body.
    """

    delivers_per_read = True

    def __init__(self, coding: str, inner: Protocol) -> None:
        self._coding = coding
        self._inner = inner
        self._decompressor: zlib._Decompress | None = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if coding != "deflate" else None
        )
        self._input = b""
        self._more = False  # the last piece was full: zlib may hold more output
        self._paused = False
        self._done = False
        self._end: Failure | None = None

    def connectionMade(self) -> None:
        """Connect the inner protocol, with this object as its transport."""
        self._inner.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        """Decompress a piece of the body.

        :param data: compressed bytes.
        """
        if self._done:
            return
        self._input += data
        self._decode()

    def _decode(self) -> None:
        """Decompress what is pending, one bounded piece at a time, until paused."""
        while not self._paused and not self._done and (self._input or self._more):
            decompressor = self._decompressor
            if decompressor is None:  # deflate: zlib-wrapped, or raw as some servers send
                if len(self._input) < 2 and self._end is None:
                    return
                wbits = zlib.MAX_WBITS if _is_zlib(self._input + b"\0") else -zlib.MAX_WBITS
                decompressor = self._decompressor = zlib.decompressobj(wbits)
            try:
                out = decompressor.decompress(self._input, PIECE)
            except zlib.error as error:
                self._fail(DecompressionError(self._coding, str(error)))
                return
            self._input = decompressor.unconsumed_tail
            self._more = len(out) == PIECE
            if decompressor.eof:
                # gzip may hold several members; anything after a deflate stream is ignored
                rest = decompressor.unused_data
                self._input = rest if self._coding != "deflate" else b""
                if rest and self._coding != "deflate":
                    self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if out:
                self._inner.dataReceived(out)
        if self._end is not None and not self._input and not self._more:
            self._finish(self._end)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The compressed body ended: end the inner one once what is pending is decoded.

        :param reason: the reason, passed on.
        """
        if self._done:
            return
        self._end = reason
        self._decode()

    def _finish(self, reason: Failure) -> None:
        """End the inner body (once)."""
        if not self._done:
            self._done = True
            self._input = b""
            self._inner.connectionLost(reason)

    @property
    def _producer(self) -> IPushProducer | None:
        """The body's transport, an ``IPushProducer`` as ``IResponse.deliverBody`` says."""
        return cast("IPushProducer | None", self.transport)

    def _fail(self, error: BaseException) -> None:
        """The body cannot be decompressed: drop the connection, end the inner body."""
        transport = self._producer
        if transport is not None:
            transport.stopProducing()
        self._finish(Failure(error))

    # the inner protocol's transport

    def pauseProducing(self) -> None:
        """Stop decompressing and reading."""
        if not self._paused:
            self._paused = True
            transport = self._producer
            if transport is not None and self._end is None:
                transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Decompress what is pending, then read again."""
        if self._paused and not self._done:
            self._paused = False
            self._decode()
            transport = self._producer
            if not self._paused and transport is not None and self._end is None:
                transport.resumeProducing()

    def stopProducing(self) -> None:
        """Drop the body: stop decompressing, drop the connection."""
        self._done = True
        self._input = b""
        transport = self._producer
        if transport is not None and self._end is None:
            transport.stopProducing()


__all__ = ["DecodingProtocol", "check_encoding", "content_codings", "deliver_body"]
