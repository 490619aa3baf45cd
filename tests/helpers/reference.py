"""A slow, literal reading of the WHATWG event stream rules: the tests' oracle.

It shares no code with ``txsse._parser``: it decodes the whole stream with the
WHATWG "UTF-8 decode" algorithm written out below, then walks the text one
line at a time exactly as the HTML Standard words it ("interpreting an event
stream"). The limits are modelled too: the first line longer than
``max_line_length`` (a trailing unfinished line included) or the first data
line that takes the event's data past ``max_event_size`` characters stops
parsing, and only the events dispatched before that point count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from txsse import Comment, Event
from txsse.errors import EventTooLarge, LineTooLong, ParseError

REPLACEMENT = "\ufffd"


def utf8_decode(data: bytes, *, final: bool = True) -> str:
    """Decode ``data`` as the WHATWG Encoding Standard's UTF-8 decoder does.

    Each maximal invalid subpart becomes one U+FFFD. With ``final`` false an
    incomplete but so far valid sequence at the end is dropped (it may still be
    completed by bytes not received yet), as a streaming decoder holds it back.
    """
    out: list[str] = []
    code_point = needed = seen = 0
    lower, upper = 0x80, 0xBF
    i = 0
    while i < len(data):
        byte = data[i]
        if needed == 0:
            i += 1
            if byte <= 0x7F:
                out.append(chr(byte))
            elif 0xC2 <= byte <= 0xDF:
                needed, code_point = 1, byte & 0x1F
            elif 0xE0 <= byte <= 0xEF:
                lower = 0xA0 if byte == 0xE0 else 0x80
                upper = 0x9F if byte == 0xED else 0xBF
                needed, code_point = 2, byte & 0x0F
            elif 0xF0 <= byte <= 0xF4:
                lower = 0x90 if byte == 0xF0 else 0x80
                upper = 0x8F if byte == 0xF4 else 0xBF
                needed, code_point = 3, byte & 0x07
            else:
                out.append(REPLACEMENT)
            continue
        if not lower <= byte <= upper:
            # The byte is not consumed: it starts over ("prepend to stream").
            code_point = needed = seen = 0
            lower, upper = 0x80, 0xBF
            out.append(REPLACEMENT)
            continue
        i += 1
        lower, upper = 0x80, 0xBF
        code_point = (code_point << 6) | (byte & 0x3F)
        seen += 1
        if seen == needed:
            out.append(chr(code_point))
            code_point = needed = seen = 0
    if needed and final:
        out.append(REPLACEMENT)
    return "".join(out)


def split_lines(text: str) -> tuple[list[str], str]:
    """Split ``text`` on CRLF, lone LF and lone CR.

    :returns: the complete lines, and what follows the last line end.
    """
    lines: list[str] = []
    start = i = 0
    while i < len(text):
        char = text[i]
        if char == "\r" or char == "\n":
            lines.append(text[start:i])
            i += 2 if text.startswith("\r\n", i) else 1
            start = i
        else:
            i += 1
    return lines, text[start:]


@dataclass
class Outcome:
    """What parsing a stream produced."""

    items: list[Event | Comment] = field(default_factory=list)
    last_event_id: str = ""
    retry: int | None = None
    error: type[ParseError] | None = None


def _is_ascii_digits(value: str) -> bool:
    return value != "" and all("0" <= char <= "9" for char in value)


def _lines(text: str, max_line_length: int | None) -> Iterator[str | type[ParseError]]:
    """The complete lines, then ``LineTooLong`` if a line is over the limit."""
    lines, rest = split_lines(text)
    for line in lines:
        if max_line_length is not None and len(line) > max_line_length:
            yield LineTooLong
            return
        yield line
    if max_line_length is not None and len(rest) > max_line_length:
        yield LineTooLong


def reference_parse(
    stream: bytes,
    *,
    last_event_id: str = "",
    comments: bool = False,
    max_line_length: int | None = None,
    max_event_size: int | None = None,
) -> Outcome:
    """Interpret ``stream`` (all bytes received so far) by the letter of the standard."""
    text = utf8_decode(stream, final=False)
    if text.startswith("\ufeff"):
        text = text[1:]
    outcome = Outcome(last_event_id=last_event_id)
    data: list[str] = []
    event_type = ""
    id_buffer = last_event_id
    block_retry: int | None = None
    for line in _lines(text, max_line_length):
        if not isinstance(line, str):
            outcome.error = line
            return outcome
        if line == "":
            outcome.last_event_id = id_buffer
            if data:
                outcome.items.append(
                    Event("\n".join(data), event_type or "message", id_buffer, block_retry)
                )
            data = []
            event_type = ""
            block_retry = None
            continue
        if line.startswith(":"):
            if comments:
                outcome.items.append(Comment(line[1:]))
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            if max_event_size is not None and len("\n".join(data)) > max_event_size:
                outcome.error = EventTooLarge
                return outcome
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and _is_ascii_digits(value):
            outcome.retry = block_retry = int(value)
    return outcome
