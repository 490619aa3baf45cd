"""MemoryChannel: ids, bounded history, replay and gap answers, fan-out."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txsse import EventStreamParser
from txsse.server import IEventChannel, ISubscriber, MemoryChannel, Replay


@implementer(ISubscriber)
class Collector:
    """A subscriber that keeps what it receives."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ended = False

    def send(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def end(self) -> None:
        self.ended = True

    def events(self) -> list[Any]:
        return EventStreamParser().feed(b"".join(self.chunks))


def test_provides_the_interface() -> None:
    """MemoryChannel implements every IEventChannel method and attribute."""
    assert verifyObject(IEventChannel, MemoryChannel())


def test_ids_are_monotonic_decimal_strings() -> None:
    """Assigned ids count up by one from ``first_id``."""
    channel = MemoryChannel(first_id=41)
    assert [channel.publish("x") for _ in range(3)] == ["41", "42", "43"]


def test_default_ids_start_from_the_clock() -> None:
    """By default ids start at the time in microseconds, so restarts never reuse one."""
    first = int(MemoryChannel().publish("x"))
    later = int(MemoryChannel().publish("x"))
    assert 1_600_000_000_000_000 < first <= later


def test_given_ids_are_kept_and_move_the_counter() -> None:
    """A caller's id is used as is; a decimal one moves the counter past it."""
    channel = MemoryChannel(first_id=1)
    assert channel.publish("a", id="custom") == "custom"
    assert channel.publish("b", id="100") == "100"
    assert channel.publish("c") == "101"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": ""}, "non-empty id"),
        ({"id": "a\nb"}, "CR or LF"),
        ({"id": "a\0b"}, "NUL"),
        ({"event": "a\rb"}, "CR or LF"),
    ],
)
def test_bad_events_are_refused(kwargs: dict[str, str], message: str) -> None:
    """Events that cannot be encoded raise ValueError and are neither stored nor sent."""
    channel = MemoryChannel(first_id=1)
    subscriber = Collector()
    channel.subscribe(subscriber)
    with pytest.raises(ValueError, match=message):
        channel.publish("data", **kwargs)
    assert subscriber.chunks == []
    assert channel.last_id is None


def test_duplicate_id_in_history_is_refused() -> None:
    """An id still in the history cannot be published again (resume would be ambiguous)."""
    channel = MemoryChannel(first_id=1)
    channel.publish("a", id="x")
    with pytest.raises(ValueError, match="already in the channel's history"):
        channel.publish("b", id="x")


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_bad_history_is_refused(value: Any) -> None:
    """``history`` must be a non-negative int."""
    with pytest.raises(ValueError, match="history must be a non-negative int"):
        MemoryChannel(history=value)


def test_publish_json_is_compact() -> None:
    """publish_json encodes with compact separators and delivers the same bytes."""
    channel = MemoryChannel(first_id=1)
    subscriber = Collector()
    channel.subscribe(subscriber)
    channel.publish_json({"a": [1, 2]}, event="update")
    (event,) = subscriber.events()
    assert (event.data, event.event, event.id) == ('{"a":[1,2]}', "update", "1")
    with pytest.raises(TypeError):
        channel.publish_json(object())


def test_one_encoding_per_broadcast() -> None:
    """Every subscriber receives the very same bytes object for one event."""
    channel = MemoryChannel(first_id=1)
    subscribers = [Collector() for _ in range(3)]
    for subscriber in subscribers:
        channel.subscribe(subscriber)
    channel.publish("hello")
    chunks = [subscriber.chunks[0] for subscriber in subscribers]
    assert all(chunk is chunks[0] for chunk in chunks)
    assert chunks[0] == b"id: 1\ndata: hello\n\n"


def test_history_is_bounded() -> None:
    """Only the last ``history`` events are kept."""
    channel = MemoryChannel(history=3, first_id=1)
    for n in range(10):
        channel.publish(str(n))
    replay = channel.subscribe(Collector(), "9")
    assert replay == Replay(b"id: 10\ndata: 9\n\n", False, "8", "10")
    assert len(channel._chunks) == len(channel._index) == 3


def test_replay_after_id_and_gap() -> None:
    """Replay holds what follows a kept id; an evicted or unknown id is a gap with everything."""
    channel = MemoryChannel(history=3, first_id=1)
    for n in range(5):
        channel.publish(f"e{n}")
    assert channel.subscribe(Collector(), "4").chunk == b"id: 5\ndata: e4\n\n"
    assert channel.subscribe(Collector(), "5") == Replay(b"", False, "3", "5")
    whole = b"id: 3\ndata: e2\n\nid: 4\ndata: e3\n\nid: 5\ndata: e4\n\n"
    assert channel.subscribe(Collector(), "1") == Replay(whole, True, "3", "5")
    assert channel.subscribe(Collector(), "999") == Replay(whole, True, "3", "5")
    assert channel.subscribe(Collector(), None) == Replay(b"", False, "3", "5")
    assert channel.subscribe(Collector(), "") == Replay(b"", False, "3", "5")


def test_history_zero_keeps_nothing() -> None:
    """With ``history=0`` every resume is a gap and nothing is stored."""
    channel = MemoryChannel(history=0, first_id=1)
    channel.publish("a")
    assert channel.subscribe(Collector(), "1") == Replay(b"", True, None)
    assert channel.subscribe(Collector()).position is None, "no resume point without history"
    assert channel.publish("b") == "2"


def test_position_of_an_empty_channel_resumes_from_the_first_event() -> None:
    """An empty channel's position replays everything published since, without a gap."""
    channel = MemoryChannel(history=3, first_id=1)
    position = channel.subscribe(Collector()).position
    assert position is not None
    assert channel.subscribe(Collector(), position) == Replay(b"", False, None, position)
    ids = [channel.publish(f"e{n}") for n in range(2)]
    replay = channel.subscribe(Collector(), position)
    assert (replay.gap, replay.position) == (False, ids[-1])
    assert [e.id for e in EventStreamParser().feed(replay.chunk)] == ids


def test_position_of_an_empty_channel_is_a_gap_once_events_were_dropped() -> None:
    """If the history dropped events published after the position, resuming from it is a gap."""
    channel = MemoryChannel(history=2, first_id=1)
    position = channel.subscribe(Collector()).position
    for n in range(3):
        channel.publish(f"e{n}")
    assert channel.subscribe(Collector(), position).gap
    assert MemoryChannel(history=2, first_id=5).subscribe(Collector(), position).gap


def test_unsubscribe_is_immediate_and_idempotent() -> None:
    """An unsubscribed subscriber gets nothing more; unsubscribing twice is harmless."""
    channel = MemoryChannel(first_id=1)
    subscriber = Collector()
    channel.subscribe(subscriber)
    channel.publish("a")
    channel.unsubscribe(subscriber)
    channel.unsubscribe(subscriber)
    channel.publish("b")
    assert [e.data for e in subscriber.events()] == ["a"]
    assert channel.subscriber_count == 0


def test_unsubscribing_during_broadcast() -> None:
    """A subscriber may unsubscribe another while an event is being fanned out."""
    channel = MemoryChannel(first_id=1)
    second = Collector()

    @implementer(ISubscriber)
    class Unsubscriber(Collector):
        def send(self, chunk: bytes) -> None:
            super().send(chunk)
            channel.unsubscribe(second)

    first = Unsubscriber()
    channel.subscribe(first)
    channel.subscribe(second)
    channel.publish("a")
    channel.publish("b")
    assert len(first.chunks) == 2
    assert len(second.chunks) == 1  # the snapshot of the first broadcast included it


def test_failing_subscriber_does_not_stop_the_others(logged_errors: list[Any]) -> None:
    """A subscriber that raises is logged; everyone else still receives the event."""
    channel = MemoryChannel(first_id=1)

    @implementer(ISubscriber)
    class Broken(Collector):
        def send(self, chunk: bytes) -> None:
            raise RuntimeError("boom")

    healthy = Collector()
    channel.subscribe(Broken())
    channel.subscribe(healthy)
    channel.publish("a")
    assert len(healthy.chunks) == 1
    assert len(logged_errors) == 1
    logged_errors.clear()


def test_identical_replays_share_one_bytes_object() -> None:
    """Clients resuming after the same id get the same replay bytes, until the log changes."""
    channel = MemoryChannel(history=10, first_id=1)
    for n in range(5):
        channel.publish(f"e{n}")
    first, second = channel.subscribe(Collector(), "2"), channel.subscribe(Collector(), "2")
    assert first.chunk is second.chunk
    assert first.chunk.count(b"data:") == 3
    gap1, gap2 = channel.subscribe(Collector(), "x"), channel.subscribe(Collector(), "y")
    assert gap1.chunk is gap2.chunk and gap1.chunk.count(b"data:") == 5
    channel.publish("e5")
    assert channel.subscribe(Collector(), "2").chunk.count(b"data:") == 4
