"""Content-Encoding: identity asked for, gzip and deflate decoded (bounded), others refused."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest
from twisted.internet.testing import StringTransport

from tests.helpers.harness import Harness, harness, results
from tests.helpers.memagent import EVENT_STREAM
from txsse import Event, ReadyState
from txsse.client._decoding import PIECE, DecodingProtocol
from txsse.errors import ContentEncodingError, DecompressionError, LineTooLong

__all__ = ["harness"]

EVENTS = b"".join(b"id: %d\ndata: event %d\n\n" % (n, n) for n in range(50))
EXPECTED = [Event(f"event {n}", id=str(n)) for n in range(50)]


def encoded(coding: str) -> dict[str, str]:
    """Event-stream response headers with ``Content-Encoding: coding``."""
    return {**EVENT_STREAM, "Content-Encoding": coding}


def pieces(data: bytes, size: int = 7) -> list[bytes]:
    """``data`` cut in ``size``-byte pieces."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def taken(source: Any) -> list[Event]:
    """Every event queued in ``source``."""
    out: list[Event] = []
    while source.queue.pending:
        out += results(source.next())
    return out


def test_identity_asked_for_unless_the_user_says_otherwise(harness: Harness) -> None:
    """Accept-Encoding: identity is sent by default; the user's own value replaces it."""
    harness.started()
    assert harness.agent.last.header("Accept-Encoding") == "identity"
    harness.started(headers={"accept-encoding": "gzip"})
    assert harness.agent.last.header("Accept-Encoding") == "gzip"


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:])),
        ("deflate", zlib.compress),
        ("Deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("identity, gzip", gzip.compress),
    ],
)
def test_gzip_and_deflate_decoded(harness: Harness, coding: str, compress: Any) -> None:
    """Gzip (one member or several), zlib and raw deflate are decoded, however cut."""
    source = harness.started()
    body = harness.agent.last.respond(200, encoded(coding))
    for piece in pieces(compress(EVENTS)):
        body.write(piece)
    assert taken(source) == EXPECTED
    assert source.ready_state == ReadyState.OPEN


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
def test_other_codings_fail_with_a_typed_error(harness: Harness, coding: str) -> None:
    """Any other coding fails the source with ContentEncodingError; no byte is parsed."""
    source = harness.started()
    errors = harness.record(source, "error")
    body = harness.agent.last.respond(200, encoded(coding))
    assert body.stopped
    assert source.ready_state == ReadyState.CLOSED
    [(_, error)] = errors
    assert isinstance(error, ContentEncodingError)
    assert error.coding == coding and "Accept-Encoding: identity" in str(error)
    assert len(harness.agent.requests) == 1


def test_decompression_bomb_hits_the_line_limit(harness: Harness) -> None:
    """A gzip bomb is decoded a bounded piece at a time and stops at max_line_length."""
    limit = 256 * 1024
    source = harness.started(max_line_length=limit)
    sizes: list[int] = []
    source.on("data", lambda received: sizes.append(received.size))
    errors = harness.record(source, "error")
    bomb = gzip.compress(b"data: " + b"x" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100 * 1024
    body = harness.agent.last.respond(200, encoded("gzip"))
    body.write(bomb)
    assert isinstance(errors[0][1], LineTooLong)
    assert body.stopped
    assert max(sizes) <= PIECE
    assert sum(sizes) <= limit + PIECE  # decoding stopped at the limit, not at 64 MiB


def test_corrupt_gzip_reconnects(harness: Harness) -> None:
    """A corrupt gzip body is a DecompressionError: events before it kept, then a reconnection."""
    source = harness.started()
    errors = harness.record(source, "error")
    body = harness.agent.last.respond(200, encoded("gzip"))
    good = zlib.compressobj(wbits=31)
    body.write(good.compress(b"data: first\n\n") + good.flush(zlib.Z_SYNC_FLUSH))
    body.write(b"\xff" * 64)
    assert taken(source) == [Event("first")]
    assert isinstance(errors[0][1], DecompressionError)
    assert source.ready_state == ReadyState.CONNECTING
    assert body.stopped


def test_back_pressure_stops_decompression(harness: Harness) -> None:
    """A paused compressed body keeps its compressed rest; resuming decodes it, nothing lost."""
    many = b"".join(b"data: %d\n\n" % n for n in range(40_000))
    source = harness.started(queue_size=10)
    body = harness.agent.last.respond(200, encoded("gzip"))
    body.write(gzip.compress(many))
    assert body.paused
    assert len(source.queue.pending) < 10 + PIECE // 9  # at most one piece beyond the bound
    got = taken(source)
    while len(got) < 40_000 and source.queue.pending:
        got += taken(source)
    assert [e.data for e in got] == [str(n) for n in range(40_000)]


def test_end_waits_for_the_paused_rest() -> None:
    """When the body ends while paused, the end comes after the decoded rest."""
    seen: list[Any] = []

    class Inner:
        transport: Any = None

        def makeConnection(self, transport: Any) -> None:
            self.transport = transport

        def dataReceived(self, data: bytes) -> None:
            seen.append(len(data))
            self.transport.pauseProducing()

        def connectionLost(self, reason: Any) -> None:
            seen.append("end")

    inner = Inner()
    decoder = DecodingProtocol("gzip", inner)
    decoder.makeConnection(StringTransport())
    decoder.dataReceived(gzip.compress(b"x" * (PIECE + 10)))
    decoder.connectionLost()
    assert seen == [PIECE]
    decoder.resumeProducing()
    assert seen == [PIECE, 10, "end"]
