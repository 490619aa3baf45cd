"""The value types: ``Event`` and ``Comment``."""

from __future__ import annotations

import json

import pytest

from txsse import Comment, Event


def test_event_defaults() -> None:
    """An ``Event`` defaults to empty data of type ``message``, no id and no retry."""
    assert tuple(Event()) == ("", "message", "", None)
    assert Event("x") == Event(data="x", event="message", id="", retry=None)


def test_event_is_immutable() -> None:
    """Fields cannot be reassigned."""
    event = Event("x")
    with pytest.raises(AttributeError):
        event.data = "y"


def test_event_equality_and_hash() -> None:
    """Events are values: equal fields make equal, hash-equal events."""
    assert Event("x", "t", "1", 5) == Event("x", "t", "1", 5)
    assert Event("x") != Event("x", id="1")
    assert hash(Event("x", retry=1)) == hash(Event("x", retry=1))
    assert len({Event("a"), Event("a"), Event("b")}) == 2


def test_event_is_not_equal_to_tuples_or_comments() -> None:
    """An ``Event`` equals only another ``Event``, not a plain tuple or a ``Comment``."""
    assert Event("x") != ("x", "message", "", None)
    assert ("x", "message", "", None) != Event("x")  # noqa: SIM300 - the reflected operator
    assert Event("x") != Comment("x")
    assert (Event("x") == Comment("x")) is False


@pytest.mark.parametrize(
    ("data", "lines"),
    [("", [""]), ("a", ["a"]), ("a\nb", ["a", "b"]), ("a\n", ["a", ""]), ("\n\n", ["", "", ""])],
    ids=repr,
)
def test_event_lines(data: str, lines: list[str]) -> None:
    """``lines`` splits the data on LF, keeping empty lines."""
    assert Event(data).lines == lines


def test_event_json() -> None:
    """``json()`` decodes the data and passes keyword arguments to ``json.loads``."""
    assert Event('{"x": [1, 2.5]}').json() == {"x": [1, 2.5]}
    assert Event("[1.5]").json(parse_float=str) == ["1.5"]
    with pytest.raises(json.JSONDecodeError):
        Event("not json").json()


def test_event_repr_names_fields() -> None:
    """The repr shows every field by name."""
    assert repr(Event("d", "t", "i", 3)) == "Event(data='d', event='t', id='i', retry=3)"


def test_comment_value() -> None:
    """A ``Comment`` is a value holding its text, equal only to another ``Comment``."""
    assert Comment(" hi") == Comment(" hi")
    assert Comment(" hi") != Comment("hi")
    assert Comment("x") != ("x",)
    assert hash(Comment("x")) == hash(Comment("x"))
    assert Comment("x").text == "x"
