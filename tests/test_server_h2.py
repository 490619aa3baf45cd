"""The HTTP/2 bound of a stream, in memory: how often it asks Twisted what is queued."""

from __future__ import annotations

from twisted.internet.task import Clock

from txsse.server._stream import H2_LIMIT, _Stream


class _Connection:
    """The parts of Twisted's H2Connection that ``txsse.server._h2`` reads, with a counter."""

    def __init__(self) -> None:
        self.conn = self
        self.queued = 0
        self.measures = 0

    def local_flow_control_window(self, stream_id: int) -> int:
        self.measures += 1
        return 2**30

    def remainingOutboundWindow(self, stream_id: int) -> int:
        return 2**30 - self.queued


class _H2Stream:
    """An H2Stream as a request's channel: its connection and id."""

    def __init__(self, connection: _Connection) -> None:
        self._conn = connection
        self.streamID = 1


class _Request:
    """A request on an HTTP/2 stream whose writes land in the connection's queue."""

    chunked = False

    def __init__(self, connection: _Connection) -> None:
        self.channel = _H2Stream(connection)
        self._connection = connection

    def write(self, data: bytes) -> None:
        self._connection.queued += len(data)


class _Owner:
    """The resource's side, as a stream needs it."""

    max_unsent = 64 * 1024
    slow_client_timeout = 10.0
    direct_writes = True

    def __init__(self) -> None:
        self._reactor = Clock()


def _stream() -> tuple[_Stream, _Connection]:
    connection = _Connection()
    stream = _Stream(_Owner(), _Request(connection))  # type: ignore[arg-type]
    stream.start(b":\n")
    return stream, connection


def test_a_fast_client_costs_one_measure_per_limit_of_bytes() -> None:
    """A draining stream asks Twisted for its queue once per H2_LIMIT bytes, not per event."""
    stream, connection = _stream()
    event = b"data: x\n\n" * 10
    for _ in range(1000):
        stream.send(event)
        connection.queued = 0  # the client reads: the connection sent everything
    assert connection.measures <= 1000 * len(event) // H2_LIMIT + 1
    assert not stream.paused


def test_a_stalled_client_is_held_past_the_limit() -> None:
    """A stream whose queue does not drain stops writing once Twisted holds H2_LIMIT bytes."""
    stream, connection = _stream()
    event = b"data: x\n\n" * 10
    for _ in range(2 * H2_LIMIT // len(event)):
        stream.send(event)
    assert stream.paused
    assert H2_LIMIT < connection.queued <= H2_LIMIT + len(event)
    stream.discard()
