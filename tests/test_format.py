"""The serializer: ``format_event`` and ``format_comment`` outputs and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from txsse import Comment, Event, EventStreamParser, format_comment, format_event


def parse(stream: bytes, **options: Any) -> list[Event | Comment]:
    """Parse a complete stream with a fresh parser."""
    return EventStreamParser(**options).feed(stream)


# --- outputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": " lead"}, b"data:  lead\n\n"),
        ({}, b"\n"),
        ({"id": "5"}, b"id: 5\n\n"),
        ({"id": ""}, b"id\n\n"),
        ({"retry": 0}, b"retry: 0\n\n"),
        ({"retry": 3000}, b"retry: 3000\n\n"),
        ({"event": "update", "data": "x"}, b"event: update\ndata: x\n\n"),
        ({"event": "", "data": "x"}, b"event: \ndata: x\n\n"),
        ({"data": "x", "comment": "c"}, b": c\ndata: x\n\n"),
        ({"data": "x", "comment": ""}, b":\ndata: x\n\n"),
        (
            {"data": "a\r\nb", "event": "update", "id": "7", "retry": 3000},
            b"event: update\nid: 7\nretry: 3000\ndata: a\ndata: b\n\n",
        ),
        ({"data": "é€😀"}, "data: é€😀\n\n".encode()),
        ({"data": "a\0b\ufeff"}, "data: a\0b\ufeff\n\n".encode()),
        ({"data": "a\u2028b\x85c"}, "data: a\u2028b\x85c\n\n".encode()),
        ({"id": "a b:c", "data": "x"}, b"id: a b:c\ndata: x\n\n"),
    ],
    ids=repr,
)
def test_format_event_output(kwargs: dict[str, Any], expected: bytes) -> None:
    """``format_event`` writes the expected bytes."""
    assert format_event(**kwargs) == expected


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        ("a\nb", ["a", "b"]),
        ("a\rb", ["a", "b"]),
        ("a\r\nb", ["a", "b"]),
        ("a\n", ["a", ""]),
        ("\n", ["", ""]),
        ("\r\n", ["", ""]),
        ("\n\r", ["", "", ""]),
        ("\r\r\n", ["", "", ""]),
        ("a\r\n\r\nb", ["a", "", "b"]),
        ("\ra\n", ["", "a", ""]),
    ],
    ids=repr,
)
def test_line_breaks_in_data_become_data_lines(data: str, lines: list[str]) -> None:
    """CR, LF and CRLF in data each end one ``data:`` line; the parser joins them with LF."""
    expected = "".join(f"data: {line}\n" for line in lines) + "\n"
    assert format_event(data) == expected.encode()
    assert parse(format_event(data)) == [Event("\n".join(lines))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b":\n"),
        ("keep-alive", b": keep-alive\n"),
        ("a\nb", b": a\n: b\n"),
        ("a\r\n\r\nb", b": a\n:\n: b\n"),
        ("a\r", b": a\n:\n"),
        ("é", ": é\n".encode()),
    ],
    ids=repr,
)
def test_format_comment_output(text: str, expected: bytes) -> None:
    """``format_comment`` writes one comment line per line of text."""
    assert format_comment(text) == expected


def test_format_comment_default_is_empty_comment() -> None:
    """Called without text, ``format_comment`` writes a bare colon line (a keep-alive)."""
    assert format_comment() == b":\n"


@pytest.mark.parametrize("text", ["", "x", "a\n\nb", "\r\n\r\n", "\n", ":data: x"], ids=repr)
def test_comment_never_dispatches(text: str) -> None:
    """A formatted comment, even with blank lines in its text, completes no event."""
    parser = EventStreamParser()
    assert parser.feed(b"data: pending\n" + format_comment(text)) == []
    assert parser.feed(b"\n") == [Event("pending")]


@pytest.mark.parametrize("text", ["x", " two", "a\nb", "a\r\n\r\nb"], ids=repr)
def test_comment_parses_back_line_by_line(text: str) -> None:
    """Each line of a formatted comment comes back as a ``Comment`` after one space."""
    lines = text.replace("\r\n", "\n").split("\n")
    parsed = parse(format_comment(text), comments=True)
    assert parsed == [Comment(f" {line}" if line else "") for line in lines]


# --- refusals ----------------------------------------------------------------------------

LONE_SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"event": "a\nb"}, "event", "CR or LF"),
        ({"event": "a\rb"}, "event", "CR or LF"),
        ({"event": "a\r\nb"}, "event", "CR or LF"),
        ({"event": "\n"}, "event", "CR or LF"),
        ({"id": "a\nb"}, "id", "CR or LF"),
        ({"id": "a\rb"}, "id", "CR or LF"),
        ({"id": "a\r\n"}, "id", "CR or LF"),
        ({"id": "a\0b"}, "id", "NUL"),
        ({"id": "\0"}, "id", "NUL"),
        ({"retry": -1}, "retry", "negative"),
        ({"retry": True}, "retry", "int"),
        ({"retry": False}, "retry", "int"),
        ({"retry": 1.5}, "retry", "int"),
        ({"retry": 1.0}, "retry", "int"),
        ({"retry": "1000"}, "retry", "int"),
        ({"data": b"bytes"}, "data", "str"),
        ({"data": 5}, "data", "str"),
        ({"data": ["a"]}, "data", "str"),
        ({"event": 5}, "event", "str"),
        ({"event": b"x"}, "event", "str"),
        ({"id": 7}, "id", "str"),
        ({"comment": 5}, "comment", "str"),
        ({"data": f"a{LONE_SURROGATE}"}, "data", "UTF-8"),
        ({"data": "\udfff"}, "data", "UTF-8"),
        ({"event": LONE_SURROGATE}, "event", "UTF-8"),
        ({"id": LONE_SURROGATE}, "id", "UTF-8"),
        ({"comment": LONE_SURROGATE}, "comment", "UTF-8"),
    ],
    ids=repr,
)
def test_format_event_refuses(kwargs: dict[str, Any], field: str, reason: str) -> None:
    """What cannot be encoded faithfully is a ``ValueError`` naming the field and the reason."""
    with pytest.raises(ValueError) as info:
        format_event(**({"data": "x"} | kwargs))
    message = str(info.value)
    assert message.startswith(field), message
    assert reason in message, message


@pytest.mark.parametrize(
    ("text", "reason"),
    [(5, "str"), (b"x", "str"), (None, "str"), (LONE_SURROGATE, "UTF-8")],
    ids=repr,
)
def test_format_comment_refuses(text: Any, reason: str) -> None:
    """``format_comment`` refuses non-strings and unencodable text, naming the comment."""
    with pytest.raises(ValueError) as info:
        format_comment(text)
    assert str(info.value).startswith("comment")
    assert reason in str(info.value)


@pytest.mark.parametrize("retry", [0, 1, 10**30], ids=repr)
def test_format_event_accepts_any_non_negative_retry(retry: int) -> None:
    """Any non-negative int is a valid ``retry``, and the parser reads it back."""
    parser = EventStreamParser()
    assert parser.feed(format_event(retry=retry)) == []
    assert parser.retry == retry


def test_format_event_none_data_sets_id_and_retry_without_an_event() -> None:
    """``data=None`` writes a block that sets the id and retry but dispatches nothing."""
    parser = EventStreamParser()
    assert parser.feed(format_event(id="4", retry=10)) == []
    assert (parser.last_event_id, parser.retry) == ("4", 10)
    assert parser.feed(format_event("x")) == [Event("x", id="4")]


def test_format_event_empty_id_resets() -> None:
    """``id=""`` resets the client's last event ID."""
    parser = EventStreamParser("old")
    assert parser.feed(format_event("x", id="")) == [Event("x")]
    assert parser.last_event_id == ""


def test_format_event_empty_event_type_is_message() -> None:
    """``event=""`` is written, and clients read it as the default type ``message``."""
    assert parse(format_event("x", event="")) == [Event("x")]
