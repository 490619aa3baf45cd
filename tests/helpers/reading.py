"""Reading an event stream over real HTTP: the one SSE body reader, and opening a stream."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from tests.helpers.waiting import TIMEOUT
from txsse import Event, EventStreamParser


class EventReader(Protocol):
    """A response body protocol: feeds ``parser``; events go to ``events`` and ``queue``.

    ``done`` fires (with ``None``) when the body ends, however it ends.
    """

    def __init__(self, parser: EventStreamParser | None = None) -> None:
        self.parser = parser if parser is not None else EventStreamParser()
        self.events: list[Event] = []
        self.queue: DeferredQueue[Event] = DeferredQueue()
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            if isinstance(item, Event):
                self.events.append(item)
                self.queue.put(item)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(None)

    async def take(self, count: int) -> list[Event]:
        """The next ``count`` events from ``queue``, each waited for with a timeout."""
        return [await self.queue.get().addTimeout(TIMEOUT, reactor) for _ in range(count)]  # type: ignore[arg-type]


async def connect(
    url: str, parser: EventStreamParser | None = None, headers: dict[str, str] | None = None
) -> tuple[IResponse, EventReader]:
    """GET ``url`` on a fresh connection and read its body with an :class:`EventReader`.

    :param parser: the reader's parser; a reconnection sends its ``last_event_id``.
    :param headers: more request headers.
    :returns: the response (headers in) and its reader.
    """
    reader = EventReader(parser)
    sent = Headers({b"Accept": [b"text/event-stream"]})
    for name, value in (headers or {}).items():
        sent.setRawHeaders(name, [value])
    if reader.parser.last_event_id:
        sent.setRawHeaders(b"Last-Event-ID", [reader.parser.last_event_id.encode()])
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    response = await agent.request(b"GET", url.encode(), sent).addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    response.deliverBody(reader)
    return response, reader


class Stream:
    """One subscription over one connection (no reconnection), for exact checks.

    :param url: the stream's URL.
    :param last_event_id: sent as ``Last-Event-ID`` when not empty.
    :param headers: more request headers, ``_`` standing for ``-`` in their names.
    """

    def __init__(self, url: str, last_event_id: str | None = None, **headers: str) -> None:
        self.url = url
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}
        self.parser = EventStreamParser(last_event_id=last_event_id or "")
        self.reader = EventReader(self.parser)
        self.status = 0
        self.response: IResponse | None = None

    async def open(self) -> Stream:
        """Send the request; once the headers are in, read events in the background."""
        self.response, self.reader = await connect(self.url, self.parser, self.headers)
        self.status = self.response.code
        return self

    @property
    def events(self) -> list[Event]:
        """The events received so far."""
        return self.reader.events

    @property
    def data(self) -> list[str]:
        """The ``data`` of the events received so far."""
        return [e.data for e in self.events]

    @property
    def ended(self) -> Deferred[None]:
        """Fires when the body ends."""
        return self.reader.done

    @property
    def is_ended(self) -> bool:
        """Whether the body has ended."""
        return self.reader.done.called

    async def close(self) -> None:
        """Drop the connection and wait until it is gone."""
        if self.response is None:
            return
        transport: Any = self.reader.transport
        if not self.reader.done.called:
            transport.stopProducing()
        await self.reader.done
