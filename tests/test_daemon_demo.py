"""The built-in demo stream: numbered events, resumable with Last-Event-ID."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from txsse import Event, EventStreamParser
from txsse._demo import DEMO_RETRY, DemoStream, demo_event


def stream(last_event_id: bytes | None = None) -> tuple[Clock, DummyRequest, EventStreamParser]:
    clock = Clock()
    request = DummyRequest([b"events"])
    if last_event_id is not None:
        request.requestHeaders.setRawHeaders(b"last-event-id", [last_event_id])
    assert DemoStream(clock, interval=1.0).render_GET(request) == NOT_DONE_YET
    return clock, request, EventStreamParser()


def events(request: DummyRequest, parser: EventStreamParser) -> list[Event]:
    data = b"".join(request.written)
    del request.written[:]
    return parser.feed(data)


def test_demo_event() -> None:
    """Ticks carry JSON data; every fifth event is a two-line message."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    (tick,) = EventStreamParser().feed(demo_event(4, now))
    assert (tick.event, tick.id) == ("tick", "4")
    assert tick.json() == {"n": 4, "time": "2026-01-02T03:04:05+00:00"}
    (message,) = EventStreamParser().feed(demo_event(5, now))
    assert (message.event, message.id, message.lines) == (
        "message",
        "5",
        ["event 5 is a message", "of two lines"],
    )


def test_stream_headers_and_pace() -> None:
    """The stream is text/event-stream, asks for a retry, and sends one event per interval."""
    clock, request, parser = stream()
    assert request.responseHeaders.getRawHeaders(b"content-type") == [
        b"text/event-stream; charset=utf-8"
    ]
    assert [e.id for e in events(request, parser)] == ["1"]
    assert parser.retry == DEMO_RETRY
    clock.advance(0.5)
    assert events(request, parser) == []
    clock.advance(0.5)
    clock.advance(1.0)
    assert [e.id for e in events(request, parser)] == ["2", "3"]
    request.finish()
    assert clock.getDelayedCalls() == []


def test_resumes_after_last_event_id() -> None:
    """After Last-Event-ID: 41 the first event is number 42."""
    _, request, parser = stream(b"41")
    assert [e.id for e in events(request, parser)] == ["42"]
    request.finish()


def test_bad_last_event_id_starts_over() -> None:
    """A Last-Event-ID that is not a number restarts the sequence at 1."""
    for bad in (b"abc", b"-3", b"9" * 40):
        _, request, parser = stream(bad)
        assert [e.id for e in events(request, parser)] == ["1"]
        request.finish()


def test_disconnect_stops_the_timer() -> None:
    """A client that goes away leaves no timer behind."""
    clock, request, _ = stream()
    request.processingFailed(Failure(ConnectionDone("gone")))
    assert clock.getDelayedCalls() == []
