"""Loopback event-stream servers on the real reactor: a recording resource, an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from txsse.server import EventStreamResource, MemoryChannel


class Recording(Resource):
    """Serve an EventStreamResource and remember each request (to cut it server-side)."""

    isLeaf = True

    def __init__(self, stream: EventStreamResource) -> None:
        super().__init__()
        self.stream = stream
        self.requests: list[Any] = []

    def render(self, request: Any) -> Any:
        self.requests.append(request)
        return self.stream.render(request)

    def cut(self) -> None:
        """Abort the newest connection, as a crash or network failure would."""
        channel = self.requests[-1].channel
        connection = getattr(channel, "_conn", None)  # an HTTP/2 stream's connection
        (connection or channel).transport.abortConnection()


class Upstream:
    """A loopback upstream event stream: a memory channel served with retry: 50 ms."""

    def __init__(self) -> None:
        self.channel = MemoryChannel(100)
        self.resource = EventStreamResource(self.channel, keepalive=None, retry=0.05)
        self.port: Any = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Site(self.resource), interface="127.0.0.1"
        )
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/"


@pytest_twisted.async_yield_fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An :class:`Upstream`, closed after the test."""
    server = Upstream()
    yield server
    server.resource.close()
    await server.port.stopListening()
