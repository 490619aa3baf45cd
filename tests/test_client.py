"""EventSource: deterministic tests with a Clock and an in-memory agent."""

from __future__ import annotations

from twisted.python.failure import Failure

from tests._harness import Harness, harness, results
from txsse import Event, ReadyState
from txsse.errors import StreamClosed

__all__ = ["harness"]


def test_opens_and_delivers_events(harness: Harness) -> None:
    """A 200 text/event-stream response opens the stream and its events come out of next()."""
    source = harness.started()
    assert source.ready_state == ReadyState.CONNECTING
    got = results(source.next())
    body = harness.agent.last.respond()
    assert source.ready_state == ReadyState.OPEN
    body.write(b"data: hello\n\n")
    assert got == [Event("hello", "message", "")]


def test_close_fails_pending_next(harness: Harness) -> None:
    """close() fails a pending next() with StreamClosed and aborts the body."""
    source = harness.started()
    body = harness.agent.last.respond()
    got = results(source.next())
    source.close()
    assert isinstance(got[0], Failure) and got[0].check(StreamClosed)
    assert body.stopped
    assert source.ready_state == ReadyState.CLOSED
