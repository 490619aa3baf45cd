"""The direct socket write: its checks of the transport's private state, and byte order."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.testing import StringTransport

from txsse.server._direct import DirectWriter, direct_socket


class _Protocol:
    """The least a tcp.Connection needs of its protocol here."""

    def makeConnection(self, transport: object) -> None:
        pass


@pytest.fixture
def connection() -> Iterator[tuple[Any, socket.socket]]:
    """A real tcp.Connection over one end of a socket pair, and the other end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    transport = tcp.Connection(ours, _Protocol())  # type: ignore[arg-type]
    yield transport, theirs
    ours.close()
    theirs.close()


def test_plain_tcp_connection_takes_the_direct_path(connection: tuple[Any, socket.socket]) -> None:
    """An idle cleartext tcp.Connection with the expected private state gives its socket."""
    transport, _ = connection
    assert direct_socket(transport) is transport.socket


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_tempDataBuffer", ()),
        ("dataBuffer", bytearray()),
        ("_aborting", None),
        ("_aborting", 0),
        ("disconnecting", True),
        ("socket", object()),
    ],
)
def test_fallback_when_private_state_differs(
    connection: tuple[Any, socket.socket], name: str, value: object
) -> None:
    """A private attribute of another type or value means transport.write, not the socket."""
    transport, _ = connection
    setattr(transport, name, value)
    assert direct_socket(transport) is None


@pytest.mark.parametrize("name", ["_tempDataBuffer", "socket"])
def test_fallback_when_private_state_is_missing(
    connection: tuple[Any, socket.socket], name: str
) -> None:
    """A private attribute that does not exist (another Twisted) means transport.write."""
    transport, _ = connection
    delattr(transport, name)
    assert direct_socket(transport) is None


def test_fallback_for_other_transports() -> None:
    """Anything that is not a plain tcp.Connection (here an in-memory one) falls back."""
    assert direct_socket(StringTransport()) is None


def test_fallback_under_tls(connection: tuple[Any, socket.socket]) -> None:
    """A tcp.Connection that provides ISSLTransport (TLS started on it) falls back."""
    from twisted.internet.interfaces import ISSLTransport
    from zope.interface import alsoProvides

    transport, _ = connection
    alsoProvides(transport, ISSLTransport)
    assert direct_socket(transport) is None


class _Partial:
    """A socket that takes at most ``take`` bytes per send, then raises EAGAIN-like errors."""

    def __init__(self, take: int, fail_after: int = 1_000_000) -> None:
        self.take = take
        self.sent = bytearray()
        self.calls = 0
        self.fail_after = fail_after

    def send(self, data: bytes) -> int:
        self.calls += 1
        if self.calls > self.fail_after:
            raise BlockingIOError("full")
        part = bytes(data[: self.take])
        self.sent += part
        return len(part)


class _Buffering:
    """A transport with tcp.Connection's buffer attributes; write() keeps the bytes."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self._tempDataBuffer: list[bytes] = []
        self.disconnecting = False
        self._aborting = False

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)


class _Request:
    sentLength = 0


def _frame(chunk: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)


@pytest.mark.parametrize(("take", "fail_after"), [(5, 1_000_000), (0, 1_000_000), (7, 1)])
def test_bytes_stay_in_order_when_the_socket_takes_part(take: int, fail_after: int) -> None:
    """What the socket does not take is buffered, and nothing overtakes the buffered bytes."""
    sock, transport, request = _Partial(take, fail_after), _Buffering(), _Request()
    writer = DirectWriter(request, transport, sock, _frame)  # type: ignore[arg-type]
    chunks = [b"first event\n\n", b"second\n\n", b"third\n\n"]
    for chunk in chunks:
        writer.write(chunk)
    wire = bytes(sock.sent) + b"".join(transport._tempDataBuffer)
    assert wire == b"".join(_frame(c) for c in chunks)
    assert sock.calls <= 1, "once bytes are buffered, the socket is not written to any more"
    assert request.sentLength == sum(map(len, chunks))


def test_whole_writes_go_to_the_socket_while_nothing_is_buffered(
    connection: tuple[Any, socket.socket],
) -> None:
    """On a real idle connection every write goes to the socket at once, in order."""
    transport, peer = connection
    request = _Request()
    writer = DirectWriter(request, transport, transport.socket, _frame)
    chunks = [b"a\n\n", b"bb\n\n", b"ccc\n\n"]
    for chunk in chunks:
        writer.write(chunk)
    assert transport.dataBuffer == b"" and transport._tempDataBuffer == []
    expected = b"".join(_frame(c) for c in chunks)
    received = b""
    while len(received) < len(expected):
        received += peer.recv(65536)
    assert received == expected
