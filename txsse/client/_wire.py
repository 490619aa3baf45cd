"""HTTP plumbing for the client: the default agents, request bodies, unread bodies."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from txsse.client._http11 import HTTP11StreamAgent
from txsse.client._types import TLSPolicy


def make_agent(reactor: Any, tls: TLSPolicy | None = None) -> Any:
    """The default agent: txsse's own HTTP/1.1 client, a new connection per request.

    :param reactor: the reactor to connect with.
    :param tls: the TLS policy; by default :class:`BrowserLikePolicyForHTTPS`
        (the system's trusted CAs, host name checked).
    :returns: an :class:`~txsse.client._http11.HTTP11StreamAgent`.
    """
    return HTTP11StreamAgent(reactor, tls)


def twisted_agent(reactor: Any, tls: TLSPolicy | None = None) -> Any:
    """A ``twisted.web.client.Agent`` set up as a stream needs: TLS verified, no reuse.

    :param reactor: the reactor to connect with.
    :param tls: the TLS policy; by default :class:`BrowserLikePolicyForHTTPS`
        (the system's trusted CAs, host name checked).
    :returns: a ``twisted.web.client.Agent``.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)  # type: ignore[no-untyped-call]
    policy = tls or BrowserLikePolicyForHTTPS()  # type: ignore[no-untyped-call]
    return Agent(reactor, contextFactory=policy, pool=pool)  # type: ignore[no-untyped-call]


@implementer(IBodyProducer)
class BytesProducer:
    """An ``IBodyProducer`` for a body already in memory (no cooperator, no timers).

    :param body: the bytes to send.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
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
        transport: Any = self.transport
        transport.stopProducing()

    def connectionLost(self, reason: object = None) -> None:
        """The body is gone; nothing to do."""


def discard_body(response: Any) -> None:
    """Throw away a response body we will not read, closing its connection.

    :param response: the response.
    """
    response.deliverBody(_Discard())


__all__ = ["BytesProducer", "discard_body", "make_agent", "twisted_agent"]
