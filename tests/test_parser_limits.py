"""The parser's limits: ``LineTooLong``, ``EventTooLarge`` and what follows them."""

from __future__ import annotations

import pytest

from tests.helpers.chunking import CHUNKERS, Chunker, feed_all, feed_until_error
from txsse import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_LENGTH,
    Comment,
    Event,
    EventStreamParser,
)
from txsse.errors import EventTooLarge, LineTooLong, ParseError, SSEError

MB = 1024 * 1024
chunkers = pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())


def feed_counting(parser: EventStreamParser, chunks: list[bytes]) -> tuple[int, ParseError]:
    """Feed until the parser fails.

    :returns: how many bytes had been fed when it failed (the failing chunk
        included), and the error.
    """
    fed = 0
    for chunk in chunks:
        fed += len(chunk)
        try:
            parser.feed(chunk)
        except ParseError as error:
            return fed, error
    raise AssertionError("the parser never failed")


# --- max_line_length ---------------------------------------------------------------------


@chunkers
def test_line_at_the_limit_passes(chunker: Chunker) -> None:
    """A line of exactly ``max_line_length`` characters is accepted."""
    parser = EventStreamParser(max_line_length=10)
    assert feed_all(parser, chunker(b"data:12345\r\n\r\n")) == [Event("12345")]


@chunkers
def test_line_over_the_limit_fails(chunker: Chunker) -> None:
    """A line one character over ``max_line_length`` raises ``LineTooLong``."""
    parser = EventStreamParser(max_line_length=10)
    with pytest.raises(LineTooLong) as info:
        feed_all(parser, chunker(b"data:123456\n\n"))
    assert info.value.limit == 10
    assert "max_line_length=10" in str(info.value)


@chunkers
def test_line_length_counts_characters(chunker: Chunker) -> None:
    """The limit counts decoded characters, not bytes, and not the BOM."""
    parser = EventStreamParser(max_line_length=10)
    stream = b"\xef\xbb\xbf" + "data:é€😀豆你".encode() + b"\n\n"
    assert feed_all(parser, chunker(stream)) == [Event("é€😀豆你")]


@chunkers
def test_comment_lines_are_limited_too(chunker: Chunker) -> None:
    """A comment longer than the limit raises, whether comments are returned or not."""
    for comments in (False, True):
        parser = EventStreamParser(max_line_length=10, comments=comments)
        with pytest.raises(LineTooLong):
            feed_all(parser, chunker(b":" + b"x" * 10 + b"\n"))


@pytest.mark.parametrize("size", [1, 3, 7, 64])
def test_unfinished_line_fails_as_soon_as_it_passes_the_limit(size: int) -> None:
    """Fed in small chunks, an endless line fails within one chunk of the limit."""
    limit = 100
    parser = EventStreamParser(max_line_length=limit)
    stream = b"data: " + b"x" * 10_000
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    fed, error = feed_counting(parser, chunks)
    assert isinstance(error, LineTooLong)
    assert limit < fed <= limit + size


def test_unfinished_line_in_one_huge_chunk_fails() -> None:
    """One huge chunk without a line end fails at once."""
    parser = EventStreamParser(max_line_length=1000)
    with pytest.raises(LineTooLong):
        parser.feed(b"data: " + b"x" * 100_000)


def test_unfinished_multibyte_line_fails_as_soon_as_it_passes_the_limit() -> None:
    """Counting characters, a line of 4-byte characters fails at the 101st character."""
    parser = EventStreamParser(max_line_length=100)
    stream = "😀".encode() * 1000
    fed, error = feed_counting(parser, [stream[i : i + 1] for i in range(len(stream))])
    assert isinstance(error, LineTooLong)
    assert fed == 101 * 4


def test_long_line_inside_a_chunk_keeps_earlier_events() -> None:
    """A long complete line in the middle of a chunk keeps the events before it."""
    parser = EventStreamParser(max_line_length=50)
    with pytest.raises(LineTooLong) as info:
        parser.feed(b"id: 1\ndata: a\n\ndata: b\n\ndata: " + b"x" * 100 + b"\n\ndata: c\n\n")
    assert list(info.value.events) == [Event("a", id="1"), Event("b", id="1")]
    assert parser.last_event_id == "1"


def test_long_unfinished_line_after_events_in_the_same_chunk_keeps_them() -> None:
    """Events completed earlier in a chunk are in ``.events`` when its tail is too long."""
    parser = EventStreamParser(max_line_length=10)
    with pytest.raises(LineTooLong) as info:
        parser.feed(b"id: 1\ndata: a\n\n" + b"x" * 20)
    assert list(info.value.events) == [Event("a", id="1")]
    assert parser.last_event_id == "1"


def test_long_line_completed_by_a_later_chunk() -> None:
    """A line started in one chunk and finished over the limit in the next fails."""
    parser = EventStreamParser(max_line_length=20)
    assert parser.feed(b"data: 0123456789") == []
    with pytest.raises(LineTooLong) as info:
        parser.feed(b"0123456789\n\n")
    assert list(info.value.events) == []


def test_line_too_long_keeps_comments_before_it() -> None:
    """With comments on, ``.events`` holds the comments completed before the bad line too."""
    parser = EventStreamParser(max_line_length=10, comments=True)
    with pytest.raises(LineTooLong) as info:
        parser.feed(b": hi\ndata: a\n\n" + b"y" * 30 + b"\n")
    assert list(info.value.events) == [Comment(" hi"), Event("a")]


# --- max_event_size ----------------------------------------------------------------------


@chunkers
def test_event_at_the_limit_passes(chunker: Chunker) -> None:
    """Event data of exactly ``max_event_size`` characters is accepted however it is fed."""
    parser = EventStreamParser(max_event_size=5)
    assert feed_all(parser, chunker(b"data: abcde\n\n")) == [Event("abcde")]


@chunkers
def test_multiline_event_at_the_limit_passes(chunker: Chunker) -> None:
    """The size is the joined data: two lines of two characters are five characters."""
    parser = EventStreamParser(max_event_size=5)
    assert feed_all(parser, chunker(b"data: ab\ndata: cd\n\n")) == [Event("ab\ncd")]


@chunkers
def test_event_over_the_limit_fails(chunker: Chunker) -> None:
    """Event data one character over ``max_event_size`` raises ``EventTooLarge``."""
    parser = EventStreamParser(max_event_size=5)
    with pytest.raises(EventTooLarge) as info:
        feed_all(parser, chunker(b"data: ab\ndata: cde\n\n"))
    assert info.value.limit == 5
    assert "max_event_size=5" in str(info.value)


@chunkers
def test_many_data_lines_fail(chunker: Chunker) -> None:
    """Many short data lines add up and fail with ``EventTooLarge``."""
    parser = EventStreamParser(max_event_size=100)
    with pytest.raises(EventTooLarge):
        feed_all(parser, chunker(b"data: x\n" * 1000 + b"\n"))


@pytest.mark.parametrize("size", [1, 8, 100])
def test_many_data_lines_fail_without_waiting_for_the_blank_line(size: int) -> None:
    """Fed in chunks, an endless event fails soon after its data passes the limit."""
    parser = EventStreamParser(max_event_size=100)
    stream = b"data: x\n" * 10_000
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    fed, error = feed_counting(parser, chunks)
    assert isinstance(error, EventTooLarge)
    # 51 lines of "x" make 101 characters of data ("x\n" * 50 + "x").
    assert fed <= 51 * 8 + size


def test_event_too_large_keeps_earlier_events() -> None:
    """``.events`` holds the events completed before the oversized one, in order."""
    parser = EventStreamParser(max_event_size=100)
    with pytest.raises(EventTooLarge) as info:
        parser.feed(b"id: 3\ndata: a\n\ndata: b\n\ndata: " + b"x" * 200 + b"\n\ndata: c\n\n")
    assert list(info.value.events) == [Event("a", id="3"), Event("b", id="3")]
    assert parser.last_event_id == "3"


def test_event_too_large_at_end_of_chunk_keeps_earlier_events() -> None:
    """An oversized unfinished event at the end of a chunk keeps that chunk's events."""
    parser = EventStreamParser(max_event_size=10)
    with pytest.raises(EventTooLarge) as info:
        parser.feed(b"data: a\n\n" + b"data: 0123456789\n" * 3)
    assert list(info.value.events) == [Event("a")]


@chunkers
def test_event_too_large_events_exclude_later_comments(chunker: Chunker) -> None:
    """A comment after the data line that passed the limit is not in ``.events``."""
    parser = EventStreamParser(max_event_size=3, comments=True)
    items, error = feed_until_error(parser, chunker(b": before\ndata: 0123\n: after\n"))
    assert items == [Comment(" before")]
    assert isinstance(error, EventTooLarge)


def test_event_size_does_not_carry_over_to_the_next_event() -> None:
    """An event fed over several chunks does not count against the next one."""
    parser = EventStreamParser(max_event_size=10)
    assert parser.feed(b"data: 123456789\n") == []
    assert parser.feed(b"\n") == [Event("123456789")]
    assert parser.feed(b"data: a\ndata: b\n") == []
    assert parser.feed(b"\n") == [Event("a\nb")]


def test_event_size_counted_from_the_first_line_after_a_previous_event() -> None:
    """After an event of many lines, the next event's first oversized chunk fails at once."""
    parser = EventStreamParser(max_event_size=10)
    assert parser.feed(b"data\n" * 5) == []
    assert parser.feed(b"\n") == [Event("\n" * 4)]
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: " + b"x" * 50 + b"\n")


@chunkers
def test_many_events_each_under_the_limit(chunker: Chunker) -> None:
    """The limit is per event: many events below it never fail."""
    parser = EventStreamParser(max_event_size=10, max_line_length=20)
    stream = b"data: 0123\ndata: 4567\n\n" * 200
    assert feed_all(parser, chunker(stream)) == [Event("0123\n4567")] * 200


# --- after an error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "stream"),
    [
        ({"max_line_length": 10}, b"data: 0123456789\n"),
        ({"max_event_size": 3}, b"data: 0123\n"),
    ],
    ids=["LineTooLong", "EventTooLarge"],
)
def test_parser_refuses_feeding_after_an_error(options: dict[str, int], stream: bytes) -> None:
    """After an error every later ``feed()``, even an empty one, raises ``ParseError``."""
    parser = EventStreamParser(**options)
    with pytest.raises(ParseError) as first:
        parser.feed(stream)
    for chunk in (b"", b"data: fine\n\n"):
        with pytest.raises(ParseError) as again:
            parser.feed(chunk)
        assert again.value.__cause__ is first.value
        assert "create a new one" in str(again.value)


def test_errors_are_sse_errors() -> None:
    """Both limit errors derive from ``ParseError`` and ``SSEError``."""
    assert issubclass(LineTooLong, ParseError)
    assert issubclass(EventTooLarge, ParseError)
    assert issubclass(ParseError, SSEError)
    assert list(ParseError("x").events) == []


def test_new_parser_resumes_from_last_event_id() -> None:
    """A new parser seeded with the failed one's ``last_event_id`` carries on from there."""
    parser = EventStreamParser(max_line_length=20)
    with pytest.raises(LineTooLong):
        parser.feed(b"id: 7\ndata: a\n\ndata: " + b"x" * 30 + b"\n")
    fresh = EventStreamParser(parser.last_event_id, max_line_length=20)
    assert fresh.feed(b"data: b\n\n") == [Event("b", id="7")]


# --- defaults and arguments ----------------------------------------------------------------


def test_defaults_allow_a_5_mb_single_line_event_in_one_chunk() -> None:
    """The default limits accept a 5 MB event on one line."""
    payload = b"x" * (5 * MB)
    events = EventStreamParser().feed(b"data: " + payload + b"\n\n")
    assert len(events) == 1
    assert len(events[0].data) == 5 * MB


def test_defaults_allow_a_5_mb_single_line_event_in_64k_chunks() -> None:
    """The default limits accept a 5 MB one-line event arriving in 64 KiB chunks."""
    stream = b"data: " + b"y" * (5 * MB) + b"\n\n"
    size = 64 * 1024
    parser = EventStreamParser()
    events = feed_all(parser, (stream[i : i + size] for i in range(0, len(stream), size)))
    assert [len(event.data) for event in events] == [5 * MB]


def test_defaults_allow_a_5_mb_event_on_many_lines() -> None:
    """The default limits accept a 5 MB event made of 1 KiB lines."""
    line = b"data: " + b"z" * 1023 + b"\n"
    events = EventStreamParser().feed(line * (5 * 1024) + b"\n")
    assert [len(event.data) for event in events] == [5 * MB - 1]


def test_default_limits() -> None:
    """The documented defaults are in force and leave room for multi-megabyte events."""
    parser = EventStreamParser()
    assert parser.max_line_length == DEFAULT_MAX_LINE_LENGTH == 16 * MB
    assert parser.max_event_size == DEFAULT_MAX_EVENT_SIZE == 32 * MB


@pytest.mark.parametrize(
    "options",
    [
        {"max_line_length": 0},
        {"max_line_length": -1},
        {"max_event_size": 0},
        {"max_event_size": -5},
    ],
    ids=repr,
)
def test_non_positive_limits_are_refused(options: dict[str, int]) -> None:
    """A limit below one is a ``ValueError`` naming the arguments."""
    with pytest.raises(ValueError, match="max_line_length and max_event_size"):
        EventStreamParser(**options)


def test_feed_until_error_helper_returns_events_and_error() -> None:
    """The helper used by the properties reports events before the error and the error."""
    parser = EventStreamParser(max_line_length=10)
    items, error = feed_until_error(parser, [b"data: a\n\n", b"data: 0123456789\n"])
    assert items == [Event("a")]
    assert isinstance(error, LineTooLong)


def test_encoded_surrogate_start_counts_at_once() -> None:
    """``ED A0`` can never start a character: it is two U+FFFD now, so the limit sees it now."""
    parser = EventStreamParser(max_line_length=1)
    with pytest.raises(LineTooLong):
        parser.feed(b"\xed\xa0")
