"""The serializer: events and comments to event-stream bytes.

Whatever it returns parses back to exactly the event it was given; whatever it
cannot encode faithfully raises :class:`ValueError` instead.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile("\r\n|\r|\n")


def _check_field(field: str, value: object, nul: bool = False) -> str:
    """Return ``value`` if it is a string that fits on one ``field:`` line."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a str, not {type(value).__name__}")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{field} {value!r} contains CR or LF, which would end the field early")
    if nul and "\0" in value:
        raise ValueError(f"{field} {value!r} contains NUL, which makes clients ignore the field")
    return value


def _encode(text: str, what: str) -> bytes:
    """Encode ``text`` as UTF-8 with an error naming the field."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} cannot be encoded as UTF-8: {e.reason}") from None


def format_comment(text: str = "") -> bytes:
    """Serialize a comment, for example a keep-alive.

    A comment is ignored by clients but keeps proxies and idle timers alive.
    Text with line breaks becomes several comment lines.

    :param text: the comment text (may be empty).
    :returns: the bytes to write, ending with a line break (never a blank line,
        so a comment never dispatches an event).
    :raises ValueError: if ``text`` is not a string or cannot be encoded.
    """
    if not isinstance(text, str):
        raise ValueError(f"comment must be a str, not {type(text).__name__}")
    if not text:
        return b":\n"
    lines = _LINE_BREAK.split(text)
    return _encode("".join(f": {line}\n" if line else ":\n" for line in lines), "comment")


def format_event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Serialize one event.

    :param data: the event's data. CR, LF and CRLF all become separate ``data:``
        lines, which clients join with LF. ``None`` sends no data, so the block
        dispatches no event but still sets ``id`` and ``retry``. An empty string
        sends one empty ``data:`` line: an event with empty data.
    :param event: the event type; ``None`` leaves it out (clients then use
        ``"message"``).
    :param id: the event ID; ``""`` resets the client's last event ID, ``None``
        leaves it unchanged.
    :param retry: the reconnection time to ask clients for, in milliseconds.
    :param comment: a comment written before the fields.
    :returns: the bytes of one complete block, ending with a blank line.
    :raises ValueError: ``event`` or ``id`` contain CR or LF, ``id`` contains NUL,
        ``retry`` is not a non-negative integer, or a value cannot be encoded as
        UTF-8. The message names the field and the reason.
    """
    parts: list[str] = []
    if comment is not None:
        parts.append(format_comment(comment).decode("utf-8"))
    if event is not None:
        parts.append(f"event: {_check_field('event', event)}\n")
    if id is not None:
        parts.append(f"id: {_check_field('id', id, nul=True)}\n" if id else "id\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int):
            raise ValueError(f"retry must be an int of milliseconds, not {retry!r}")
        if retry < 0:
            raise ValueError(f"retry must not be negative, got {retry}")
        parts.append(f"retry: {retry}\n")
    if data is not None:
        if not isinstance(data, str):
            raise ValueError(f"data must be a str, not {type(data).__name__}")
        if "\n" in data or "\r" in data:
            parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
        else:
            parts.append(f"data: {data}\n")
    parts.append("\n")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        for field, value in (("comment", comment), ("event", event), ("id", id), ("data", data)):
            if value is not None:
                _encode(value, field)
        raise  # pragma: no cover - one of the fields above failed to encode
