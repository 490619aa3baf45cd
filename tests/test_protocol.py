"""EventStreamProtocol: parsing a response body and reporting what happened."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from txsse import Comment, Event, EventStreamParser, EventStreamProtocol
from txsse.errors import EventTooLarge, LineTooLong, StreamEnded


class Receiver:
    """Records what the protocol reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, Any]] = []

    def items_received(self, items: Sequence[Event | Comment]) -> None:
        self.reports.append(("items", list(items)))

    def retry_changed(self, milliseconds: int) -> None:
        self.reports.append(("retry", milliseconds))

    def stream_ended(self, reason: BaseException) -> None:
        self.reports.append(("end", reason))


class Producer:
    """A body transport that records pause/resume/stop."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def connected(
    clock: Clock | None = None, **kw: Any
) -> tuple[EventStreamProtocol, Receiver, Producer]:
    """A protocol connected to a recording producer."""
    receiver, producer = Receiver(), Producer()
    protocol = EventStreamProtocol(EventStreamParser(**kw), receiver, clock)
    protocol.makeConnection(producer)  # type: ignore[arg-type]
    return protocol, receiver, producer


def test_reports_items_per_chunk() -> None:
    """Each chunk reports the items it completed, even none; chunking does not matter."""
    protocol, receiver, _ = connected(comments=True)
    protocol.dataReceived(b"data: a")
    protocol.dataReceived(b"\n\n: c\n")
    assert receiver.reports == [("items", []), ("items", [Event("a"), Comment(" c")])]


def test_reports_retry_changes_once() -> None:
    """A new valid retry: is reported once; the same value again is not."""
    protocol, receiver, _ = connected()
    protocol.dataReceived(b"retry: 100\n\n")
    protocol.dataReceived(b"retry: 100\n\nretry: 200\n\n")
    assert [r for r in receiver.reports if r[0] == "retry"] == [("retry", 100), ("retry", 200)]


def test_clean_end_is_stream_ended() -> None:
    """ResponseDone and PotentialDataLoss both report StreamEnded."""
    for reason in (ResponseDone(), PotentialDataLoss()):
        protocol, receiver, _ = connected()
        protocol.connectionLost(Failure(reason))
        assert isinstance(receiver.reports[-1][1], StreamEnded)
        assert protocol.done


def test_broken_end_reports_the_failure() -> None:
    """A broken body reports the network failure itself, once."""
    protocol, receiver, _ = connected()
    error = ResponseFailed([Failure(ConnectionLost())])
    protocol.connectionLost(Failure(error))
    protocol.connectionLost(Failure(ResponseDone()))
    assert receiver.reports == [("end", error)]


def test_parse_error_reports_events_then_ends() -> None:
    """On a parse error the completed events come first, then the body is aborted and ended."""
    for kw, bad, kind in (
        ({"max_line_length": 10}, b"data: " + b"x" * 20 + b"\n", LineTooLong),
        ({"max_event_size": 10}, b"data: " + b"x" * 8 + b"\ndata: yyyy\n", EventTooLarge),
    ):
        protocol, receiver, producer = connected(**kw)
        protocol.dataReceived(b"data: ok\n\n" + bad)
        assert receiver.reports[0] == ("items", [Event("ok")])
        assert isinstance(receiver.reports[1][1], kind)
        assert producer.calls == ["stop"]
        protocol.dataReceived(b"data: more\n\n")
        protocol.connectionLost(Failure(ResponseDone()))
        assert len(receiver.reports) == 2


def test_abort_stops_transport_and_silences() -> None:
    """abort() stops the transport; nothing is reported afterwards."""
    protocol, receiver, producer = connected()
    protocol.abort()
    protocol.abort()
    protocol.dataReceived(b"data: x\n\n")
    protocol.connectionLost(Failure(ResponseDone()))
    assert producer.calls == ["stop"]
    assert receiver.reports == []


def test_pause_resume() -> None:
    """pause() and resume() drive the transport once each, and not after the end."""
    protocol, _, producer = connected()
    protocol.pause()
    protocol.pause()
    assert protocol.paused
    protocol.resume()
    protocol.resume()
    protocol.connectionLost(Failure(ResponseDone()))
    protocol.pause()
    assert producer.calls == ["pause", "resume"]


class CountingParser(EventStreamParser):
    """A parser that records every chunk it is fed."""

    fed: list[bytes]

    def feed(self, chunk: bytes) -> list[Event | Comment]:
        self.fed.append(chunk)
        return super().feed(chunk)


def test_with_a_clock_one_parse_per_reactor_turn() -> None:
    """With a clock, the chunks of one reactor turn are parsed together on the next turn."""
    clock, receiver = Clock(), Receiver()
    parser = CountingParser()
    parser.fed = []
    protocol = EventStreamProtocol(parser, receiver, clock)
    protocol.makeConnection(Producer())  # type: ignore[arg-type]
    for n in range(3):
        protocol.dataReceived(b"data: %d\n\n" % n)
    assert receiver.reports == []
    clock.advance(0)
    assert parser.fed == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"]
    assert receiver.reports == [("items", [Event("0"), Event("1"), Event("2")])]
    assert clock.getDelayedCalls() == []


def test_with_a_clock_end_parses_what_waits_first() -> None:
    """The end of the body reports the chunks still waiting for their turn first."""
    clock = Clock()
    protocol, receiver, _ = connected(clock)
    protocol.dataReceived(b"data: last\n\n")
    protocol.connectionLost(Failure(ResponseDone()))
    assert receiver.reports[0] == ("items", [Event("last")])
    assert isinstance(receiver.reports[1][1], StreamEnded)
    assert clock.getDelayedCalls() == []


def test_with_a_clock_abort_drops_what_waits() -> None:
    """abort() forgets the waiting chunks and cancels their turn."""
    clock = Clock()
    protocol, receiver, producer = connected(clock)
    protocol.dataReceived(b"data: dropped\n\n")
    protocol.abort()
    assert clock.getDelayedCalls() == []
    assert receiver.reports == []
    assert producer.calls == ["stop"]
