"""txsse's own HTTP/1.1 client (HTTP11StreamAgent) against raw loopback servers."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from tests.helpers.paths import PATHS, options_for
from txsse import Event, EventSource
from txsse.client._http11 import HTTP11StreamAgent, request_head
from txsse.client._wire import BytesProducer
from txsse.errors import InvalidResponse, StreamEnded

TIMEOUT = 10.0
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"


class _Answer(Protocol):
    """Answer the first request with the factory's script, then close (or not)."""

    def __init__(self) -> None:
        self.request = b""

    def dataReceived(self, data: bytes) -> None:
        self.request += data
        server: RawServer = self.factory.server  # type: ignore[attr-defined]
        if b"\r\n\r\n" in self.request and self not in server.connections:
            server.connections.append(self)
            server.requests.append(self.request)
            for piece in server.script:
                self.transport.write(piece)  # type: ignore[union-attr]
            if server.close:
                self.transport.loseConnection()  # type: ignore[union-attr]


class RawServer:
    """A loopback server that writes exact bytes in answer to any request.

    :param script: the pieces written, in order, once the request's head arrived.
    :param close: close the connection after the script.
    """

    def __init__(self, *script: bytes, close: bool = True) -> None:
        self.script = list(script)
        self.close = close
        self.requests: list[bytes] = []
        self.connections: list[_Answer] = []
        factory = Factory.forProtocol(_Answer)
        factory.server = self  # type: ignore[attr-defined]
        self.port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"http://127.0.0.1:{self.port.getHost().port}/events?x=1"

    async def stop(self) -> None:
        """Drop the connections and stop listening."""
        for connection in self.connections:
            connection.transport.abortConnection()  # type: ignore[union-attr]
        await self.port.stopListening()


class Body(Protocol):
    """A body protocol recording each dataReceived call and the end."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.reason: Failure | None = None
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.calls.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.reason = reason
        self.ended.callback(None)


@pytest_twisted.async_yield_fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    """Raw servers made by the test, stopped after it."""
    made: list[RawServer] = []
    yield made
    for server in made:
        await server.stop()


async def fetch(server: RawServer, method: bytes = b"GET", body: bytes | None = None) -> Any:
    """Request ``server`` with the agent; the response and its recorded body."""
    agent = HTTP11StreamAgent(reactor)
    producer = BytesProducer(body) if body is not None else None
    response = await agent.request(
        method, server.url.encode(), Headers({b"Accept": [b"text/event-stream"]}), producer
    ).addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    reader = Body()
    response.deliverBody(reader)
    await reader.ended.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    return response, b"".join(reader.calls), reader.reason


@pytest_twisted.ensureDeferred
async def test_chunked_body_and_trailers(servers: list[RawServer]) -> None:
    """A chunked body is de-chunked, trailers are ignored, the end is ResponseDone."""
    server = RawServer(
        HEAD + b"Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
        b"9\r\ndata: a\n\n\r\n9\r\ndata: b\n\n\r\n0\r\nX-Sum: 2\r\n\r\n",
        close=False,
    )
    servers.append(server)
    response, body, reason = await fetch(server)
    assert (response.code, response.phrase, response.version) == (200, b"OK", (b"HTTP", 1, 1))
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
    assert response.headers.getRawHeaders(b"x-sum") is None
    assert body == b"data: a\n\ndata: b\n\n"
    assert reason.check(ResponseDone)


@pytest_twisted.ensureDeferred
async def test_identity_body_with_length(servers: list[RawServer]) -> None:
    """A Content-Length body ends after its length, bytes after it are ignored."""
    server = RawServer(HEAD + b"Content-Length: 9\r\n\r\ndata: a\n\nEXTRA", close=False)
    servers.append(server)
    response, body, reason = await fetch(server)
    assert response.length == 9
    assert body == b"data: a\n\n"
    assert reason.check(ResponseDone)


@pytest.mark.parametrize(
    ("script", "expected", "end"),
    [
        pytest.param(
            (HEAD + b"\r\ndata: a\n\n", b"data: b\n\n"),
            b"data: a\n\ndata: b\n\n",
            PotentialDataLoss,
            id="close-delimited",
        ),
        pytest.param(
            (HEAD + b"Transfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n",),
            b"data: a\n\n",
            ResponseFailed,
            id="truncated-chunked",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_body_cut_by_the_close(
    servers: list[RawServer], script: tuple[bytes, ...], expected: bytes, end: type[Exception]
) -> None:
    """At the close, a close-delimited body ends with PotentialDataLoss, a cut chunked one fails."""
    server = RawServer(*script)
    servers.append(server)
    _, body, reason = await fetch(server)
    assert body == expected
    assert reason.check(end)


@pytest_twisted.ensureDeferred
async def test_interim_responses_skipped(servers: list[RawServer]) -> None:
    """100 Continue and 103 Early Hints are skipped; their headers are not kept."""
    server = RawServer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
        HEAD + b"Content-Length: 9\r\n\r\ndata: a\n\n",
    )
    servers.append(server)
    response, body, _ = await fetch(server, b"POST", b'{"q": 1}')
    assert response.code == 200
    assert response.headers.getRawHeaders(b"link") is None
    assert body == b"data: a\n\n"
    assert server.requests[0].endswith(b'\r\n\r\n{"q": 1}') or b'{"q": 1}' not in server.requests[0]


@pytest_twisted.ensureDeferred
async def test_one_read_is_one_data_received(servers: list[RawServer]) -> None:
    """The many HTTP chunks of one network read reach the body protocol in one call."""
    chunks = b"".join(b"9\r\ndata: %d\n\n\r\n" % (n % 10) for n in range(200))
    server = RawServer(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    servers.append(server)
    agent = HTTP11StreamAgent(reactor)
    response = await agent.request(b"GET", server.url.encode())
    reader = Body()
    response.deliverBody(reader)
    await reader.ended.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    assert b"".join(reader.calls).count(b"\n\n") == 200
    assert len(reader.calls) < 10  # 200 chunks, a few socket reads


@pytest_twisted.ensureDeferred
async def test_request_bytes_on_the_wire(servers: list[RawServer]) -> None:
    """The request line, Host, the caller's headers, Connection: close and the body."""
    server = RawServer(HEAD + b"Content-Length: 0\r\n\r\n")
    servers.append(server)
    await fetch(server, b"POST", b"hello")
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /events?x=1 HTTP/1.1"
    assert lines[1] == b"Host: 127.0.0.1:%d" % server.port.getHost().port
    assert b"Accept: text/event-stream" in lines
    assert b"Connection: close" in lines
    assert b"Content-Length: 5" in lines
    assert body == b"hello"


def test_request_head_host_forms() -> None:
    """Host omits default ports, brackets IPv6; CR/LF in values cannot split a header."""
    head = request_head(b"GET", URI.fromBytes(b"https://[::1]/a"), None, None)
    assert head == b"GET /a HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n"
    headers = Headers({b"X-A": [b"1\r\nInjected: yes"], b"Host": [b"h.test"]})
    head = request_head(b"GET", URI.fromBytes(b"http://e.test:8080/"), headers, -1)
    assert b"\r\nInjected" not in head
    assert head.count(b"Host:") == 1 and b"Host: h.test" in head
    assert b"Transfer-Encoding: chunked" in head


@pytest.mark.parametrize(
    "answer",
    [b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03"],
)
@pytest_twisted.ensureDeferred
async def test_garbage_http_is_invalid_response(servers: list[RawServer], answer: bytes) -> None:
    """A server that does not speak HTTP fails the request with InvalidResponse."""
    server = RawServer(answer, close=False)
    servers.append(server)
    agent = HTTP11StreamAgent(reactor)
    with pytest.raises(InvalidResponse, match=r"not valid HTTP/1\.1"):
        await agent.request(b"GET", server.url.encode()).addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_garbage_http_reported_and_retried_by_the_source(servers: list[RawServer]) -> None:
    """EventSource reports InvalidResponse (typed) and tries again."""
    server = RawServer(b"SSH-2.0-OpenSSH_9.6\r\n", close=False)
    servers.append(server)
    source = EventSource(server.url, reconnect_delay=0.01, max_reconnect_delay=0.05)
    errors: list[BaseException] = []
    two: Deferred[None] = Deferred()

    def seen(error: BaseException) -> None:
        errors.append(error)
        if len(errors) == 2 and not two.called:
            two.callback(None)

    source.on("error", seen)
    source.startService()
    try:
        await two.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    finally:
        await source.close()
    assert all(isinstance(error, InvalidResponse) for error in errors)


@pytest_twisted.ensureDeferred
async def test_source_reads_identity_and_close_delimited(servers: list[RawServer]) -> None:
    """The source reads a Content-Length body and a close-delimited one; both end cleanly."""
    for script in (
        HEAD + b"Content-Length: 17\r\n\r\nid: 1\ndata: one\n\n",
        HEAD + b"\r\nid: 1\ndata: one\n\n",
    ):
        server = RawServer(script)
        servers.append(server)
        source = EventSource(server.url, reconnect_delay=30)
        ended: Deferred[BaseException] = Deferred()
        source.on("error", lambda e, d=ended: d.called or d.callback(e))
        source.startService()
        try:
            event = await source.next().addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
            error = await ended.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
        finally:
            await source.close()
        assert event == Event("one", id="1")
        assert isinstance(error, StreamEnded)


@pytest.mark.parametrize("http_path", PATHS)
@pytest_twisted.ensureDeferred
async def test_gzip_stream_over_a_real_socket(servers: list[RawServer], http_path: str) -> None:
    """A gzip-compressed chunked stream is decoded on both paths; identity was asked for."""
    compressor = zlib.compressobj(wbits=31)
    body = b"".join(
        compressor.compress(b"id: %d\ndata: %d\n\n" % (n, n)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        for n in range(1, 4)
    )
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    server = RawServer(
        HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", chunked
    )
    servers.append(server)
    source = EventSource(server.url, **options_for(http_path, reconnect_delay=30))
    source.startService()
    try:
        events = [await source.next().addTimeout(TIMEOUT, reactor) for _ in range(3)]  # type: ignore[arg-type]
    finally:
        await source.close()
    assert [e.data for e in events] == ["1", "2", "3"]
    assert b"\r\nAccept-Encoding: identity\r\n" in server.requests[0]
