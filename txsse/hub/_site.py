"""The hub's HTTP connections: the body limit, refusals at header time, connections per IP.

twisted.web reads a request's whole body before it renders anything. A hub
must not: an unauthenticated or too-large publish is refused as soon as its
headers are in (:class:`HubRequest`), and one address cannot hold more than
its share of connections (:class:`HubSite`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, responses
from twisted.web.server import Request, Site


@dataclass(frozen=True)
class Refusal:
    """A plain-text error answer: the status, one line saying what to do, more headers.

    :ivar status: the HTTP status code.
    :ivar message: the text of the body (a newline is added).
    :ivar headers: more response headers, by lower-case name.
    """

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Request) -> bytes:
        """Set the status and headers on ``request``.

        :returns: the body to send.
        """
        request.setResponseCode(self.status)
        for name, value in self._headers().items():
            request.setHeader(name.encode(), value.encode())
        return self._body()

    def raw(self) -> bytes:
        """The whole HTTP/1.1 response, closing the connection, as bytes for a transport."""
        body = self._body()
        reason = responses.get(self.status, b"Error")
        lines = [b"HTTP/1.1 %d %s" % (self.status, reason)]
        headers = {**self._headers(), "content-length": str(len(body)), "connection": "close"}
        lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _headers(self) -> dict[str, str]:
        return {
            "content-type": "text/plain; charset=utf-8",
            "cache-control": "no-store",
            **self.headers,
        }

    def _body(self) -> bytes:
        return self.message.encode() + b"\n"


EarlyCheck = Callable[["HubRequest", bytes, bytes, "int | None"], "Refusal | None"]
"""``check(request, method, uri, length)``: a refusal decided from the headers alone, or None."""


class HubRequest(Request):
    """A request whose body is never buffered past ``max_body`` bytes, nor parsed as a form.

    Past the limit the body is dropped (then answered ``413``), whatever
    ``Content-Length`` says or however long a chunked body goes on. Over
    HTTP/1.x, ``early_check`` is asked as soon as the headers are in: a
    refusal is sent at once (no ``100 Continue``), the body that may follow
    is read and dropped, and the connection is closed once it is over.
    """

    max_body: ClassVar[int] = 64 * 1024
    early_check: ClassVar[EarlyCheck | None] = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The body is data: do not let twisted.web parse it as a form submission.
        self._parsePOSTFormSubmission = False
        self.body_too_large = False
        self.refused_early = False
        self._body_received = 0

    def gotLength(self, length: int | None) -> None:
        """The headers are in: refuse now if they say enough; never buffer a too-large body."""
        self.body_too_large = length is not None and length > self.max_body
        refusal = self._early_refusal(length)
        if refusal is not None:
            self._refuse_now(refusal)
        if self.body_too_large or self.refused_early:
            self.content = io.BytesIO()
        else:
            super().gotLength(length)

    def _early_refusal(self, length: int | None) -> Refusal | None:
        """Ask ``early_check``, for HTTP/1.x requests that have a body."""
        check = type(self).early_check
        channel = self.channel
        if check is None or not isinstance(channel, HTTPChannel) or length == 0:
            return None
        # twisted.web gives a request its method and URI only once the body
        # is in; HTTPChannel holds them from the request line. Without them
        # (another Twisted), the refusal waits for the body, as before.
        method, uri = getattr(channel, "_command", None), getattr(channel, "_path", None)
        if not isinstance(method, bytes) or not isinstance(uri, bytes):
            return None
        return check(self, method, uri, length)

    def _refuse_now(self, refusal: Refusal) -> None:
        """Send ``refusal`` before the body; the client then needs not send it."""
        self.refused_early = True
        # No "100 Continue" after a final answer: the client sends no body then.
        expects = self.requestHeaders.getRawHeaders(b"expect") or []
        self.requestHeaders.removeHeader(b"expect")
        transport = self.channel.transport
        if transport is None:  # pragma: no cover - a request always has one
            return
        transport.write(refusal.raw())
        if any(value.lower() == b"100-continue" for value in expects):
            self.channel.loseConnection()

    def handleContentChunk(self, data: bytes) -> None:
        """Buffer body bytes up to the limit; past it (or once refused), drop them."""
        if self.body_too_large or self.refused_early:
            return
        self._body_received += len(data)
        if self._body_received > self.max_body:
            self.body_too_large = True
            buffered, self.content = self.content, io.BytesIO()
            if buffered is not None:
                buffered.close()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        """Render, unless the answer went out early: then the body is over, close."""
        if self.refused_early:
            self.channel.loseConnection()
            return
        super().process()


class _TooManyConnections(Protocol):
    """Answer ``503`` at once and close: this address holds its share of connections."""

    def __init__(self, refusal: Refusal) -> None:
        self._refusal = refusal

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._refusal.raw())
        self.transport.loseConnection()


class HubSite(Site):
    """A :class:`~twisted.web.server.Site` that limits the connections of each peer address.

    The HTTP channel keeps the socket's own transport (nothing is wrapped),
    so the server's fast write path stays available.

    :param max_connections_per_ip: the most connections one IP address may
        hold at once, or ``None`` for no limit; a connection past it is
        answered ``503`` with ``Retry-After`` and closed.
    """

    _log = Logger()

    def __init__(
        self, *args: object, max_connections_per_ip: int | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections_per_ip = max_connections_per_ip
        self.connections_per_ip: dict[str, int] = {}

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """A channel for the connection, or a ``503`` past the per-IP limit."""
        # Not narrowed: Twisted declares HTTPFactory.buildProtocol to return its private
        # _GenericHTTPChannelProtocol, and the 503 answer is another protocol.
        limit = self.max_connections_per_ip
        host = getattr(addr, "host", None)
        if limit is None or not isinstance(host, str):
            return super().buildProtocol(addr)
        count = self.connections_per_ip.get(host, 0)
        if count >= limit:
            self._log.info(
                "refusing a connection from {host}: it holds {limit} already"
                " (--max-connections-per-ip)",
                host=host,
                limit=limit,
            )
            return _TooManyConnections(
                Refusal(
                    503,
                    f"Service Unavailable: your address holds {limit} connections to this "
                    "hub already (--max-connections-per-ip); close one or retry later",
                    {"retry-after": "10"},
                )
            )
        self.connections_per_ip[host] = count + 1
        protocol = super().buildProtocol(addr)
        lost = protocol.connectionLost

        def connectionLost(reason: Failure) -> None:
            self._release(host)
            lost(reason)

        # As Site itself sets callLater on its protocols: counted without wrapping.
        protocol.connectionLost = connectionLost
        return protocol

    def _release(self, host: str) -> None:
        count = self.connections_per_ip.get(host, 0) - 1
        if count > 0:
            self.connections_per_ip[host] = count
        else:
            self.connections_per_ip.pop(host, None)
