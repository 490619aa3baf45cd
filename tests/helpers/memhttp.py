"""In-memory HTTP for the server tests: a real Site and HTTPChannel over StringTransport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site

from txsse import Comment, Event, EventStreamParser

_port = iter(range(20000, 60000))


def dechunk(raw: bytearray) -> bytes:
    """The data of the complete HTTP/1.1 chunks at the start of ``raw``, removed from it.

    A truncated chunk stays in ``raw`` (for more bytes to complete it).
    """
    out = bytearray()
    while (end := raw.find(b"\r\n")) >= 0:
        size = int(raw[:end], 16)
        if len(raw) < end + 2 + size + 2:
            break
        out += raw[end + 2 : end + 2 + size]
        assert raw[end + 2 + size : end + 4 + size] == b"\r\n", "bad chunk framing"
        del raw[: end + 4 + size]
    return bytes(out)


def make_site(resource: Resource, clock: Clock, path: bytes = b"events") -> Site:
    """A Site with ``resource`` at ``/<path>``, on ``clock``, without idle timeouts."""
    root = Resource()
    root.putChild(path, resource)
    return Site(root, timeout=None, reactor=clock)


@dataclass
class Client:
    """One HTTP connection to a Site, with the response decoded incrementally."""

    channel: Any
    transport: StringTransport
    _seen: int = 0
    _head: bytes | None = None
    _body: bytearray = field(default_factory=bytearray)
    _raw: bytearray = field(default_factory=bytearray)
    parser: EventStreamParser = field(default_factory=lambda: EventStreamParser(comments=True))
    items: list[Event | Comment] = field(default_factory=list)

    @property
    def status(self) -> int:
        """The response status code."""
        self.pump()
        assert self._head is not None, "no response yet"
        return int(self._head.split(b" ", 2)[1])

    def header(self, name: str) -> list[str]:
        """Every value of response header ``name`` (case-insensitive)."""
        self.pump()
        assert self._head is not None, "no response yet"
        values = []
        for line in self._head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                values.append(value.strip().decode())
        return values

    @property
    def body(self) -> bytes:
        """The de-chunked body bytes received so far."""
        self.pump()
        return bytes(self._body)

    def pump(self) -> list[Event | Comment]:
        """Decode what the server wrote since the last call; return new items."""
        data = self.transport.value()
        self._raw += data[self._seen :]
        self._seen = len(data)
        if self._head is None:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            self._head = bytes(self._raw[:end])
            del self._raw[: end + 4]
        new = dechunk(self._raw) if self.chunked else self._take_all()
        self._body += new
        items = self.parser.feed(new)
        self.items.extend(items)
        return items

    @property
    def chunked(self) -> bool:
        """Whether the response uses chunked transfer encoding."""
        if self._head is None:
            self.pump()
        assert self._head is not None
        return b"transfer-encoding: chunked" in self._head.lower()

    def _take_all(self) -> bytes:
        data = bytes(self._raw)
        self._raw.clear()
        return data

    def events(self) -> list[Event]:
        """Every event received so far."""
        self.pump()
        return [item for item in self.items if isinstance(item, Event)]

    def comments(self) -> list[Comment]:
        """Every comment received so far."""
        self.pump()
        return [item for item in self.items if isinstance(item, Comment)]

    @property
    def http(self) -> HTTPChannel:
        """The HTTP/1.1 channel inside Site's protocol (pause it like a full transport would)."""
        http = self.channel._channel
        assert isinstance(http, HTTPChannel)
        return http

    def read(self) -> None:
        """Take every byte written so far (a :class:`BufferedTransport` resumes the server)."""
        assert isinstance(self.transport, BufferedTransport), "request(..., buffer=N) first"
        self.transport.read()

    def disconnect(self, reason: Exception | None = None) -> None:
        """The client goes away: the server sees the connection lost."""
        self.channel.connectionLost(Failure(reason or ConnectionError("client went away")))


class BufferedTransport(StringTransport):
    """A StringTransport that pauses its producer past ``buffer`` unread bytes, like TCP's.

    :param buffer: the unread bytes past which the producer is paused.
    """

    def __init__(self, buffer: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buffer = buffer
        self.unread = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.unread += len(data)
        if self.unread > self.buffer and self.producer is not None:
            self.producer.pauseProducing()

    def read(self) -> None:
        """The client reads everything: the producer is asked for more."""
        self.unread = 0
        if self.producer is not None:
            self.producer.resumeProducing()


def request(
    site: Site,
    path: bytes = b"/events",
    method: bytes = b"GET",
    headers: dict[bytes, bytes] | None = None,
    version: bytes = b"HTTP/1.1",
    buffer: int | None = None,
) -> Client:
    """Open a connection to ``site`` and send one request.

    :param buffer: if given, the transport pauses the server past that many
        unread bytes (see :class:`BufferedTransport`; ``Client.read`` reads).
    """
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", next(_port)))
    peer = IPv4Address("TCP", "127.0.0.1", 1)
    transport = (
        StringTransport(peerAddress=peer)
        if buffer is None
        else BufferedTransport(buffer, peerAddress=peer)
    )
    channel.makeConnection(transport)
    lines = [method + b" " + path + b" " + version, b"Host: example.test"]
    lines += [name + b": " + value for name, value in (headers or {}).items()]
    channel.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")
    client = Client(channel, transport)
    # Like a real client, the parser starts from the id it resumes after.
    client.parser.last_event_id = (headers or {}).get(b"Last-Event-ID", b"").decode()
    return client
