"""The exception hierarchy in ``txsse.errors`` and its page in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import txsse.errors as errors
from txsse.errors import (
    ContentTypeError,
    EventTooLarge,
    HTTPStatusError,
    LineTooLong,
    NoContent,
    ParseError,
    SSEError,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def _documented_tree() -> dict[str, str]:
    """Map each class in the tree drawn in docs/errors.md to its drawn parent."""
    block = DOCS.read_text(encoding="utf-8").split("```")[1]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in block.strip().splitlines():
        match = re.match(r"^([\s│├└─]*?)(\w+)", line)
        assert match, line
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` lists every exception class of the module, sorted."""
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert sorted(errors.__all__) == errors.__all__
    assert set(errors.__all__) == classes


def test_every_error_derives_from_sse_error() -> None:
    """One ``except SSEError`` catches every txsse error."""
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), SSEError), name


def test_docs_draw_the_real_hierarchy() -> None:
    """The tree in docs/errors.md names every class once, under its real base class."""
    parents = _documented_tree()
    assert set(parents) | {"SSEError"} == set(errors.__all__)
    for name, parent in parents.items():
        first, *others = getattr(errors, name).__bases__
        assert first is getattr(errors, parent), name
        # Besides its drawn parent, a class may keep a built-in base it always had.
        assert all(base.__module__ == "builtins" for base in others), name


def test_parse_error_events_default_to_empty() -> None:
    """A ``ParseError`` built without events has an empty ``events``."""
    assert list(ParseError("broken").events) == []
    assert str(ParseError("broken")) == "broken"


@pytest.mark.parametrize(
    ("cls", "option"), [(LineTooLong, "max_line_length"), (EventTooLarge, "max_event_size")]
)
def test_limit_errors_name_the_limit_and_the_remedy(cls: type[ParseError], option: str) -> None:
    """The limit errors say which limit was passed and that it can be raised."""
    error = cls(10, ["e"])
    assert error.limit == 10
    assert list(error.events) == ["e"]
    assert f"{option}=10" in str(error)
    assert f"raise {option}" in str(error)


def test_http_errors_carry_status_and_url() -> None:
    """HTTP errors keep the status and URL and show both."""
    error = HTTPStatusError(503, "http://x/s", "Service Unavailable")
    assert (error.status, error.url) == (503, "http://x/s")
    assert str(error) == "http://x/s answered HTTP 503: Service Unavailable"
    no_content = NoContent("http://x/s")
    assert isinstance(no_content, HTTPStatusError)
    assert no_content.status == 204


def test_content_type_error_says_what_came() -> None:
    """``ContentTypeError`` names what the server sent, or that it sent none."""
    assert "'text/html'" in str(ContentTypeError("text/html", "http://x/"))
    assert "no Content-Type" in str(ContentTypeError("", "http://x/"))
