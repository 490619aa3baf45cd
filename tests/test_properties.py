"""Hypothesis properties of the parser and the serializer.

- Any chunking of any input gives what one feed gives, which is what the
  literal reference (``sse_reference``) gives, for arbitrary bytes and for
  SSE-like streams built from fields, line ends, BOMs and broken UTF-8.
- With limits, the events before the error and the error itself do not depend
  on the chunking; nothing but ``ParseError`` ever escapes.
- ``parse(format_event(e)) == [e]`` for every event the parser can produce, and
  a stream of formatted events and comments parses back to the list.
- ``format_event`` either refuses an input with ``ValueError`` (exactly when the
  input cannot be encoded) or produces bytes that parse back to it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.chunking import bytewise, cut, feed_all, feed_until_error
from tests.helpers.reference import reference_parse
from txsse import Comment, Event, EventStreamParser, format_comment, format_event
from txsse.errors import ParseError

PROPERTY = settings(max_examples=200, deadline=None, report_multiple_bugs=False)

BOM = "\ufeff"
LINE_ENDS = st.sampled_from([b"\n", b"\r", b"\r\n"])
NAMES = st.sampled_from(
    ["data", "data", "data", "id", "event", "retry", "Data", "ID", "", "foo", " data", "data "]
)
SPECIAL_VALUES = ["", " ", "1", "42", " 7", "  2", "+1", "1.5", "x:y", "\0", "a\0b", BOM, "é"]
SPECIAL_VALUES += ["\u0661", "\xb2"]  # ARABIC-INDIC DIGIT ONE, SUPERSCRIPT TWO
VALUES = st.one_of(st.sampled_from(SPECIAL_VALUES), st.text(max_size=6))
#: Bytes that are not (complete) UTF-8 on their own: broken and split sequences.
JUNK = st.one_of(
    st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80"]),
    st.binary(min_size=1, max_size=3),
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """One line of an SSE-like stream, with its line end (or a piece of junk)."""
    kind = draw(st.sampled_from(["field", "field", "field", "bare", "comment", "blank", "junk"]))
    if kind == "junk":
        return draw(JUNK)
    if kind == "field":
        text = draw(NAMES) + ":" + draw(VALUES)
    elif kind == "bare":
        text = draw(NAMES)
    elif kind == "comment":
        text = ":" + draw(VALUES)
    else:
        text = ""
    return text.encode("utf-8") + draw(LINE_ENDS)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """An SSE-like byte stream: fields, blank lines, comments, BOMs, broken UTF-8."""
    head = draw(st.sampled_from([b"", b"", BOM.encode(), (BOM + BOM).encode(), b"\xef\xbb"]))
    body = b"".join(draw(st.lists(lines(), max_size=25)))
    tail = draw(st.sampled_from([b"", b"", b"data: unfinished", b"\xe2\x82", b"\r"]))
    return head + body + tail


STREAMS = st.one_of(st.binary(max_size=200), sse_streams())
OPTIONS = st.fixed_dictionaries(
    {"comments": st.booleans(), "last_event_id": st.sampled_from(["", "seed"])}
)
LIMITS = st.fixed_dictionaries(
    {
        "comments": st.booleans(),
        "max_line_length": st.integers(1, 40),
        "max_event_size": st.integers(1, 40),
    }
)


def chunkings(stream: bytes) -> st.SearchStrategy[list[bytes]]:
    """Every way of cutting ``stream`` into chunks (empty ones included)."""
    return st.lists(st.integers(0, len(stream)), max_size=12).map(lambda p: cut(stream, p))


def state(parser: EventStreamParser) -> tuple[str, int | None, bool]:
    """What a parser exposes besides the events."""
    return parser.last_event_id, parser.retry, parser.pending


# --- parsing -------------------------------------------------------------------------------


@PROPERTY
@given(stream=STREAMS, options=OPTIONS, data=st.data())
def test_any_chunking_gives_the_same_as_one_feed(
    stream: bytes, options: dict[str, Any], data: st.DataObject
) -> None:
    """Cutting the stream anywhere changes neither the events nor the parser's state."""
    whole = EventStreamParser(**options)
    expected = whole.feed(stream)
    chunked = EventStreamParser(**options)
    assert feed_all(chunked, data.draw(chunkings(stream))) == expected
    assert state(chunked) == state(whole)


@PROPERTY
@given(stream=STREAMS, options=OPTIONS, data=st.data())
def test_parser_agrees_with_the_reference(
    stream: bytes, options: dict[str, Any], data: st.DataObject
) -> None:
    """The parser gives what the literal reading of the standard gives."""
    outcome = reference_parse(stream, **options)
    parser = EventStreamParser(**options)
    assert feed_all(parser, data.draw(chunkings(stream))) == outcome.items
    assert (parser.last_event_id, parser.retry) == (outcome.last_event_id, outcome.retry)


@PROPERTY
@given(stream=STREAMS, options=LIMITS, data=st.data())
def test_limits_do_not_depend_on_chunking(
    stream: bytes, options: dict[str, Any], data: st.DataObject
) -> None:
    """With limits, the events before the error and the error are chunking-proof.

    They are those of the reference, which stops at the first line over
    ``max_line_length`` or the first data line that takes the event's data over
    ``max_event_size``, whether the stream is cut anywhere or fed byte by byte.
    """
    outcome = reference_parse(stream, **options)
    for chunks in (data.draw(chunkings(stream)), bytewise(stream)):
        items, error = feed_until_error(EventStreamParser(**options), chunks)
        assert items == outcome.items
        assert type(error) is (outcome.error or type(None))


@PROPERTY
@given(
    stream=st.binary(max_size=300),
    comments=st.booleans(),
    max_line_length=st.integers(1, 64) | st.none(),
    max_event_size=st.integers(1, 64) | st.none(),
    data=st.data(),
)
def test_arbitrary_bytes_raise_only_parse_errors(
    stream: bytes,
    comments: bool,
    max_line_length: int | None,
    max_event_size: int | None,
    data: st.DataObject,
) -> None:
    """Arbitrary bytes in arbitrary chunks raise nothing but ``ParseError`` subclasses.

    After one, the parser keeps refusing with ``ParseError``.
    """
    limits = {"max_line_length": max_line_length, "max_event_size": max_event_size}
    parser = EventStreamParser(
        comments=comments, **{name: value for name, value in limits.items() if value}
    )
    items, error = feed_until_error(parser, data.draw(chunkings(stream)))
    assert all(type(item) in (Event, Comment) for item in items)
    if error is not None:
        assert type(error) is not ParseError
        _, again = feed_until_error(parser, [b"data: x\n\n"])
        assert type(again) is ParseError


# --- serializing -------------------------------------------------------------------------

#: Encodable text with the characters that matter to the format mixed in generously.
TEXT = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("\r\n\0\ufeff: \u2028\x85")),
    max_size=30,
)
DATA = TEXT
EVENT_TYPES = TEXT.filter(lambda t: t != "" and "\r" not in t and "\n" not in t)
IDS = TEXT.filter(lambda t: "\r" not in t and "\n" not in t and "\0" not in t)
RETRIES = st.none() | st.integers(0, 10**12)


def normalize(data: str) -> str:
    """What data becomes on the wire: every CRLF and CR is a LF."""
    return data.replace("\r\n", "\n").replace("\r", "\n")


@st.composite
def events(draw: st.DrawFn) -> Event:
    """Any event the parser can produce (its data has no CR)."""
    return Event(
        normalize(draw(DATA)), draw(EVENT_TYPES | st.just("message")), draw(IDS), draw(RETRIES)
    )


@PROPERTY
@given(event=events())
def test_format_event_round_trips(event: Event) -> None:
    """``parse(format_event(e)) == [e]`` for every event the parser can produce."""
    stream = format_event(event.data, event=event.event, id=event.id, retry=event.retry)
    assert EventStreamParser("not this").feed(stream) == [event]


@PROPERTY
@given(data=DATA, event=EVENT_TYPES | st.none(), id=IDS | st.none(), retry=RETRIES)
def test_format_event_normalizes_line_breaks(
    data: str, event: str | None, id: str | None, retry: int | None
) -> None:
    """Data with CR, LF and CRLF comes back with LF; missing fields take their defaults."""
    parsed = EventStreamParser("seed").feed(format_event(data, event=event, id=id, retry=retry))
    expected_id = "seed" if id is None else id
    assert parsed == [Event(normalize(data), event or "message", expected_id, retry)]


@st.composite
def blocks(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments for one ``format_event`` call, ``data`` possibly absent."""
    return {
        "data": draw(DATA | st.none()),
        "event": draw(EVENT_TYPES | st.none()),
        "id": draw(IDS | st.none()),
        "retry": draw(RETRIES),
        "comment": draw(TEXT | st.none()),
    }


@PROPERTY
@given(
    calls=st.lists(blocks() | TEXT, max_size=8),
    start_id=st.sampled_from(["", "seed"]),
    data=st.data(),
)
def test_formatted_stream_parses_back(
    calls: list[dict[str, Any] | str], start_id: str, data: st.DataObject
) -> None:
    """Several formatted events and comments, however chunked, parse back to the events.

    An event without ``id`` carries the last one set before it; a block without
    data dispatches nothing but still sets the id and the retry.
    """
    chunks: list[bytes] = []
    expected: list[Event] = []
    last_id = start_id
    last_retry = None
    for call in calls:
        if isinstance(call, str):
            chunks.append(format_comment(call))
            continue
        chunks.append(format_event(**call))
        if call["id"] is not None:
            last_id = call["id"]
        if call["retry"] is not None:
            last_retry = call["retry"]
        if call["data"] is not None:
            event = Event(normalize(call["data"]), call["event"] or "message", last_id)
            expected.append(event._replace(retry=call["retry"]))
    stream = b"".join(chunks)
    parser = EventStreamParser(start_id)
    assert feed_all(parser, data.draw(chunkings(stream))) == expected
    assert (parser.last_event_id, parser.retry) == (last_id, last_retry)


SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
ANY_TEXT = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("\r\n\0"), SURROGATES)
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@PROPERTY
@given(
    data=ANY_TEXT | st.none(),
    event=ANY_TEXT | st.none(),
    id=ANY_TEXT | st.none(),
    retry=RETRIES | st.integers(max_value=-1),
)
def test_format_event_refuses_exactly_what_it_cannot_encode(
    data: str | None, event: str | None, id: str | None, retry: int | None
) -> None:
    """``format_event`` raises ``ValueError`` exactly for unencodable values, else round-trips."""
    texts = [text for text in (data, event, id) if text is not None]
    faithful = (
        all(map(_encodable, texts))
        and (event is None or ("\r" not in event and "\n" not in event))
        and (id is None or not any(c in id for c in "\r\n\0"))
        and (retry is None or retry >= 0)
    )
    try:
        stream = format_event(data, event=event, id=id, retry=retry)
    except ValueError:
        assert not faithful
        return
    assert faithful
    parser = EventStreamParser()
    parsed = parser.feed(stream)
    if data is None:
        assert parsed == []
    else:
        assert parsed == [Event(normalize(data), event or "message", id or "", retry)]
    assert (parser.last_event_id, parser.retry) == (id or "", retry)
