"""HTTP plumbing for the client: the default agent, request bodies, unread bodies."""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer


def make_agent(reactor: IReactorTime, tls: IPolicyForHTTPS | None = None) -> IAgent:
    """The default agent: TLS verified, connections never kept for reuse.

    :param reactor: the reactor to connect with (also an ``IReactorTCP`` and,
        for ``https``, an ``IReactorSSL``).
    :param tls: the TLS policy; by default :class:`BrowserLikePolicyForHTTPS`
        (the system's trusted CAs, host name checked).
    :returns: a ``twisted.web.client.Agent``.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    policy = tls or BrowserLikePolicyForHTTPS()
    return Agent(reactor, contextFactory=policy, pool=pool)


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


__all__ = ["BytesProducer", "discard_body", "make_agent"]
