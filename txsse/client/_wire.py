"""HTTP plumbing for the client: the default agents, request bodies, unread bodies."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from txsse.client._http11 import HTTP11StreamAgent


def make_agent(reactor: IReactorTime, tls: IPolicyForHTTPS | None = None) -> IAgent:
    """The default agent: txsse's own HTTP/1.1 client, a new connection per request.

    :param reactor: the reactor to connect with (also an ``IReactorTCP`` and,
        for ``https``, TLS-capable).
    :param tls: the TLS policy; by default :class:`BrowserLikePolicyForHTTPS`
        (the system's trusted CAs, host name checked).
    :returns: an :class:`~txsse.client._http11.HTTP11StreamAgent`.
    """
    return HTTP11StreamAgent(reactor, tls)


def twisted_agent(reactor: IReactorTime, tls: IPolicyForHTTPS | None = None) -> IAgent:
    """A ``twisted.web.client.Agent`` set up as a stream needs: TLS verified, no reuse.

    :param reactor: the reactor to connect with (also an ``IReactorTCP`` and,
        for ``https``, an ``IReactorSSL``).
    :param tls: the TLS policy; by default :class:`BrowserLikePolicyForHTTPS`
        (the system's trusted CAs, host name checked).
    :returns: a ``twisted.web.client.Agent``.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    policy = tls or BrowserLikePolicyForHTTPS()
    return Agent(reactor, contextFactory=policy, pool=pool)


class TreqClient(TypingProtocol):
    """What the source uses of a ``treq.HTTPClient`` (or ``treq.testing.StubTreq``).

    ``request`` returns an awaitable, not a ``Deferred[IResponse]``: treq's
    ``Deferred[_Response]`` is not one (``Deferred`` is invariant).
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Headers | None = ...,
        data: IBodyProducer | None = ...,
        unbuffered: bool = ...,
        allow_redirects: bool = ...,
    ) -> Awaitable[IResponse]: ...


@implementer(IAgent)
class TreqAgent:
    """An ``IAgent`` over a ``treq.HTTPClient``: how the source sends requests with ``client=``.

    Every request is ``unbuffered=True`` (otherwise treq keeps the whole endless
    body in memory) and ``allow_redirects=False`` (the source follows redirects
    itself, dropping credentials across origins); no ``timeout=`` (the source's
    own timeouts apply).

    :param client: the treq client.
    """

    def __init__(self, client: TreqClient) -> None:
        self.client = client

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        """Send the request through the treq client.

        :param method: the HTTP method.
        :param uri: the URL, UTF-8.
        :param headers: the request headers.
        :param bodyProducer: the body, or ``None``.
        :returns: a Deferred of treq's response (an ``IResponse``); cancelling
            it cancels treq's request.
        """
        return Deferred.fromCoroutine(self._send(method, uri, headers, bodyProducer))

    async def _send(
        self, method: bytes, uri: bytes, headers: Headers | None, body: IBodyProducer | None
    ) -> IResponse:
        return await self.client.request(
            method.decode("ascii"),
            uri.decode("utf-8"),
            headers=headers,
            data=body,
            unbuffered=True,
            allow_redirects=False,
        )


@implementer(IBodyProducer)
class BytesProducer:
    """An ``IBodyProducer`` for a body already in memory (no cooperator, no timers).

    :param body: the bytes to send.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """Write the whole body.

        :param consumer: where to write it.
        :returns: a Deferred that has already fired.
        """
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body is written at once."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


class _Discard(Protocol):
    """Drop a body at once by closing its connection."""

    def connectionMade(self) -> None:
        cast(IPushProducer, self.transport).stopProducing()

    def connectionLost(self, reason: object = None) -> None:
        """The body is gone; nothing to do."""


def discard_body(response: IResponse) -> None:
    """Throw away a response body we will not read, closing its connection.

    :param response: the response.
    """
    response.deliverBody(_Discard())


__all__ = [
    "BytesProducer",
    "TreqAgent",
    "TreqClient",
    "discard_body",
    "make_agent",
    "twisted_agent",
]
