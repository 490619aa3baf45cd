"""Conformance of ``EventStreamParser`` to the event stream rules (SPEC.md, WHATWG).

The table below has one case per rule. Each case runs whole, byte by byte and
in several seeded random chunkings (``tests.helpers.chunking.CHUNKERS``), and is checked
against the independent oracle in ``sse_reference`` as well, so a wrong
expectation in the table cannot pass unnoticed either.

Cases borrowed from public conformance suites name their source file:
``wpt`` is web-platform-tests (``eventsource/``; its ``resources/message.py``
appends two line feeds and then one more to the message, or only the last one
with ``newline=none``), ``ld`` is LaunchDarkly's sse-contract-tests
(``ssetests/``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.chunking import CHUNKERS, Chunker, feed_all
from tests.helpers.reference import reference_parse, utf8_decode
from txsse import Comment, Event, EventStreamParser

BOM = b"\xef\xbb\xbf"
ANY = object()


def case(
    name: str,
    stream: bytes | str,
    expected: list[Event | Comment],
    *,
    last_event_id: str | None = None,
    retry: object = ANY,
    **options: Any,
) -> Any:
    """One table row: the stream, the items it must produce, and the final state."""
    if isinstance(stream, str):
        stream = stream.encode("utf-8")
    return pytest.param(stream, expected, last_event_id, retry, options, id=name)


def E(data: str, event: str = "message", id: str = "", retry: int | None = None) -> Event:
    """Shorthand for an expected event."""
    return Event(data, event, id, retry)


C = Comment

BYTES_TO_LINES = [
    # --- byte order mark
    case("bom-at-start", BOM + b"data: a\n\n", [E("a")]),
    # wpt eventsource/format-bom.js
    case(
        "wpt-format-bom",
        BOM + b"data:1\n\n" + BOM + b"data:2\n\ndata:3\n\n\n",
        [E("1"), E("3")],
    ),
    # wpt eventsource/format-bom-2.any.js
    case(
        "wpt-format-bom-2-second-bom-is-data",
        BOM + BOM + b"data:1\n\ndata:2\n\ndata:3\n\n\n",
        [E("2"), E("3")],
    ),
    # ld ssetests/tests_bom.go "only first BOM at start is stripped"
    case("ld-bom-second-in-value", BOM + b"data: " + BOM + b"Hello\n\n", [E("\ufeffHello")]),
    # ld ssetests/tests_bom.go "BOM only stripped at stream start, not from later data"
    case(
        "ld-bom-later-in-data",
        b"data: First\n\ndata: " + BOM + b"Second\n\n",
        [E("First"), E("\ufeffSecond")],
    ),
    # ld ssetests/tests_bom.go "BOM stripped before first event with type and ID"
    case(
        "ld-bom-type-and-id",
        BOM + b"event: greeting\nid: abc\ndata: Hello\n\n",
        [E("Hello", "greeting", "abc")],
    ),
    # ld ssetests/tests_bom.go "BOM with multi-line data"
    case("ld-bom-multiline", BOM + b"data: Line1\ndata: Line2\n\n", [E("Line1\nLine2")]),
    # ld ssetests/tests_bom.go "BOM does not affect empty data field"
    case("ld-bom-empty-data", BOM + b"data:\n\n", [E("")]),
    # ld ssetests/tests_bom.go "BOM with comment at start"
    case(
        "ld-bom-then-comment",
        BOM + b":comment\ndata: Hello\n\n",
        [C("comment"), E("Hello")],
        comments=True,
    ),
    case("bom-after-blank-line-is-data", b"\n" + BOM + b"data: x\n\n", []),
    case("bom-after-a-line-is-not-a-comment", b"\n" + BOM + b":x\n", [], comments=True),
    case("bom-only-stream", BOM, []),
    case("bom-alone-then-bom", BOM + BOM + b":x\n", [], comments=True),
    case("truncated-bom-is-replacement", b"\xef\xbbdata: x\n\n", []),
    case("truncated-bom-then-line-end", b"\xef\xbb\ndata: x\n\n", [E("x")]),
    case("utf16-bom-is-not-a-bom", b"\xfe\xffdata: x\n\n", []),
    # --- line ends
    case("lf", b"data: a\n\n", [E("a")]),
    case("crlf", b"data: a\r\n\r\n", [E("a")]),
    case("cr", b"data: a\r\r", [E("a")]),
    case("cr-cr-two-line-ends", b"data: a\r\rdata: b\r\r", [E("a"), E("b")]),
    case("lf-cr-two-line-ends", b"data: a\n\rdata: b\n\r", [E("a"), E("b")]),
    case("cr-crlf", b"data: a\r\r\n", [E("a")]),
    case("crlf-lf", b"data: a\r\n\n", [E("a")]),
    case("crlf-cr", b"data: a\r\n\r", [E("a")]),
    case("cr-lf-lf-is-one-blank-line", b"data: a\r\n\ndata: b\r\n\n", [E("a"), E("b")]),
    case("mixed-line-ends", b"data: a\rdata: b\ndata: c\r\ndata: d\r\n\n", [E("a\nb\nc\nd")]),
    case("lf-cr-lf", b"data: a\n\r\ndata: b\n\n", [E("a"), E("b")]),
    case("cr-lf-cr-lf", b"data: a\r\n\r\ndata: b\r\n\r\n", [E("a"), E("b")]),
    case("blank-lines-before-anything", b"\n\r\n\rdata: a\n\n", [E("a")]),
    # wpt eventsource/format-newlines (.htm / .any.js): "newline fest"
    case("wpt-format-newlines", b"data:test\r\ndata\ndata:test\r\n\r\n", [E("test\n\ntest")]),
    # ld ssetests/tests_linefeeds.go "CRLF where CR is end of 1 chunk"
    case(
        "ld-crlf-split",
        b"data: Hello\r\ndata: World\r\n\r\ndata: OK\r\n\r\n",
        [E("Hello\nWorld"), E("OK")],
    ),
    # --- UTF-8
    # ld ssetests/tests_basic_parsing.go "multi-byte characters"
    case("ld-multi-byte", "data: €豆腐\n\n", [E("€豆腐")]),
    case("two-three-four-byte", "data: é€😀\n\n", [E("é€😀")]),
    # wpt eventsource/format-utf-8.js (charset=windows-1252 is ignored: always UTF-8)
    case("wpt-format-utf-8", b"data:ok\xe2\x80\xa6\n\n\n", [E("ok…")]),
    case("nul-in-data", b"data: a\0b\n\n", [E("a\0b")]),
    # wpt eventsource/format-null-character.html
    case("wpt-format-null-character", b"data:\0\n\n\n", [E("\0")]),
    case(
        "unicode-line-separators-are-not-line-ends",
        "data: a\u2028b\x85c\x0bd\x0ce\n\n",
        [E("a\u2028b\x85c\x0bd\x0ce")],
    ),
]

# Invalid UTF-8, with what the WHATWG decoder makes of it (one U+FFFD per
# maximal invalid subpart).
R = "\ufffd"
INVALID_UTF8 = [
    ("ff", b"\xff", R),
    ("fe", b"\xfe", R),
    ("lone-continuation", b"\x80", R),
    ("two-continuations", b"\x80\xbf", R * 2),
    ("truncated-2-byte", b"\xc3x", R + "x"),
    ("truncated-3-byte", b"\xe2\x82x", R + "x"),
    ("truncated-4-byte-after-2", b"\xf0\x9fx", R + "x"),
    ("truncated-4-byte-after-3", b"\xf0\x9f\x98x", R + "x"),
    ("truncated-then-valid", b"\xe2\x82\xe2\x82\xac", R + "€"),
    ("truncated-at-line-end", b"\xe2\x82", R),
    ("overlong-2-byte-c0", b"\xc0\xaf", R * 2),
    ("overlong-2-byte-c1", b"\xc1\xbf", R * 2),
    ("overlong-3-byte", b"\xe0\x80\xaf", R * 3),
    ("overlong-4-byte", b"\xf0\x80\x80\xaf", R * 4),
    ("surrogate-d800", b"\xed\xa0\x80", R * 3),
    ("surrogate-dfff", b"\xed\xbf\xbf", R * 3),
    ("surrogate-pair-cesu", b"\xed\xa0\xbd\xed\xb8\x80", R * 6),
    ("above-10ffff", b"\xf4\x90\x80\x80", R * 4),
    ("f5-lead", b"\xf5\x80\x80\x80", R * 4),
    ("5-byte-form", b"\xf8\x88\x80\x80\x80", R * 5),
    ("max-code-point", b"\xf4\x8f\xbf\xbf", "\U0010ffff"),
    ("last-before-surrogates", b"\xed\x9f\xbf", "\ud7ff"),
    ("first-after-surrogates", b"\xee\x80\x80", "\ue000"),
    ("nonchar-fffe-is-valid", b"\xef\xbf\xbe", "\ufffe"),
]

INVALID_UTF8_CASES = [
    case(f"invalid-utf8-{name}-{end!r}", b"data: <" + raw + b">" + end + end, [E(f"<{text}>")])
    for name, raw, text in INVALID_UTF8
    for end in (b"\n", b"\r", b"\r\n")
] + [
    # An incomplete sequence right before a line end: the line end is not swallowed.
    case(
        f"invalid-utf8-{name}-before-line-end",
        b"data: " + raw + b"\n\n",
        [E(text)],
    )
    for name, raw, text in INVALID_UTF8
]

LINES_TO_FIELDS = [
    # --- space after the colon
    case("one-space-removed", b"data: a\n\n", [E("a")]),
    case("no-space", b"data:a\n\n", [E("a")]),
    # ld ssetests/tests_basic_parsing.go "fields with extra leading space"
    case(
        "ld-only-one-space-removed",
        b"event:  greeting\ndata:  Hello\n\n",
        [E(" Hello", " greeting")],
    ),
    case("tab-is-not-a-space", b"data:\ta\n\n", [E("\ta")]),
    case("trailing-spaces-kept", b"data: a  \n\n", [E("a  ")]),
    case("only-a-space", b"data: \n\n", [E("")]),
    case("two-spaces", b"data:  \n\n", [E(" ")]),
    # --- colon
    case("colon-in-value", b"data: a:b: c\n\n", [E("a:b: c")]),
    case("colon-right-after-space", b"data: :x\n\n", [E(":x")]),
    case("no-colon-data-is-empty-data", b"data\n\n", [E("")]),
    # ld ssetests/tests_basic_parsing.go "field with no colon"
    case("ld-field-with-no-colon", b"data\n\ndata\ndata\n\n", [E(""), E("\n")]),
    # wpt eventsource/format-field-data.js
    case(
        "wpt-format-field-data",
        b"data:\n\ndata\ndata\n\ndata:test\n\n\n",
        [E(""), E("\n"), E("test")],
    ),
    case("no-colon-event-is-message", b"event\ndata: x\n\n", [E("x")]),
    case("name-with-space-before-colon", b"data : x\n\n", []),
    case("space-before-name", b" data: x\n\n", []),
    # --- names are case-sensitive and exact
    case("Data-ignored", b"Data: x\n\n", []),
    case("DATA-ignored", b"DATA: x\n\n", []),
    case(
        "ID-Event-Retry-ignored",
        b"id: 1\ndata: a\n\nID: 2\nEvent: b\nRETRY: 5\nRetry: 6\ndata: c\n\n",
        [E("a", id="1"), E("c", id="1")],
        last_event_id="1",
        retry=None,
    ),
    case("data-with-nul-in-name", b"data\0: x\n\n", []),
    case("dataa-ignored", b"dataa: x\ndat: y\n\n", []),
    # --- unknown fields
    # ld ssetests/tests_basic_parsing.go "unknown field is ignored"
    case(
        "ld-unknown-field",
        b"event: greeting\ncolor: blue\ndata: Hello\n\n",
        [E("Hello", "greeting")],
    ),
    # wpt eventsource/format-field-unknown (.htm / .any.js)
    case(
        "wpt-format-field-unknown",
        b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n\n",
        [E("test\n\ntest")],
    ),
    # wpt eventsource/format-field-parsing (.htm / .any.js)
    case(
        "wpt-format-field-parsing",
        b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
        b"data:\r\n data:32\ndata:4\n\n",
        [E("\0\n 2\n1\n3\n\n4")],
    ),
    # wpt eventsource/format-comments.js
    case(
        "wpt-format-comments",
        b"data:1\r:\0\n:\r\ndata:2\n:"
        + b"x" * 2048
        + b"\rdata:3\n:data:fail\r:"
        + b"x" * 2048
        + b"\ndata:4\n\n",
        [E("1\n2\n3\n4")],
    ),
    # --- event
    # wpt eventsource/format-field-event.htm
    case(
        "wpt-format-field-event-type-reset",
        b"event:test\ndata:x\n\ndata:x\n\n\n",
        [E("x", "test"), E("x")],
    ),
    # wpt eventsource/format-field-event-empty.htm
    case("wpt-format-field-event-empty", b"event: \ndata:data\n\n\n", [E("data")]),
    case("event-empty-no-space", b"event:\ndata: x\n\n", [E("x")]),
    case("event-last-one-wins", b"event: a\nevent: b\ndata: x\n\n", [E("x", "b")]),
    case("event-reset-by-empty-block", b"event: a\n\ndata: x\n\n", [E("x")]),
    case("event-after-data", b"data: x\nevent: late\n\n", [E("x", "late")]),
    case("event-with-colon-and-unicode", "event: a:b é\ndata: x\n\n", [E("x", "a:b é")]),
    # ld ssetests/tests_basic_parsing.go "fields in reverse order"
    case(
        "ld-fields-in-reverse-order",
        b"data: Hello\nid: abc\nevent: greeting\n\n",
        [E("Hello", "greeting", "abc")],
    ),
]

IDS = [
    # ld ssetests/tests_basic_parsing.go "event with ID"
    case("ld-event-with-id", b"id: abc\ndata: Hello\n\n", [E("Hello", id="abc")]),
    # ld ssetests/tests_basic_parsing.go "ID field is ignored if it contains a null"
    case("ld-id-with-nul-ignored", b"id: a\x00bc\ndata: Hello\n\n", [E("Hello")], last_event_id=""),
    # wpt eventsource/format-field-id-null.htm (idvalue=%00%00; today's standard ignores it)
    case(
        "wpt-format-field-id-null",
        b"id: \0\0\nretry: 200\ndata: hello\n\n",
        [E("hello", retry=200)],
        last_event_id="",
    ),
    case(
        "id-with-nul-keeps-previous",
        b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n",
        [E("a", id="1"), E("b", id="1")],
        last_event_id="1",
    ),
    case("id-nul-after-valid-in-block", b"id: 1\nid: \0\ndata: x\n\n", [E("x", id="1")]),
    case("id-valid-after-nul-in-block", b"id: \0\nid: 2\ndata: x\n\n", [E("x", id="2")]),
    # ld ssetests/tests_basic_parsing.go "last ID persists if not overridden by later event"
    case(
        "ld-id-persists",
        b"id: abc\ndata: first\n\ndata: second\n\n",
        [E("first", id="abc"), E("second", id="abc")],
        last_event_id="abc",
    ),
    # ld ssetests/tests_basic_parsing.go "last ID can be overridden by an empty value"
    case(
        "ld-empty-id-resets",
        b"id: abc\ndata: first\n\nid: \ndata: second\n\n",
        [E("first", id="abc"), E("second")],
        last_event_id="",
    ),
    # wpt eventsource/resources/last-event-id2.py type=1 (format-field-id-3.htm "persists")
    case(
        "wpt-last-event-id-persists",
        b"id: 1\ndata: 1\n\ndata:2\n\n",
        [E("1", id="1"), E("2", id="1")],
    ),
    # wpt eventsource/resources/last-event-id2.py type=2 ("changes and persists")
    case(
        "wpt-last-event-id-changes-and-persists",
        b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n",
        [E("1", id="1"), E("2", id="2"), E("3", id="2")],
        last_event_id="2",
    ),
    # wpt eventsource/resources/last-event-id2.py type=3 ("resets")
    case(
        "wpt-last-event-id-resets",
        b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n",
        [E("1", id="1"), E("2"), E("3")],
        last_event_id="",
    ),
    # wpt eventsource/resources/last-event-id.py (format-field-id.htm, format-field-id-2)
    case(
        "wpt-last-event-id-unicode",
        "id: …\nretry: 200\ndata: hello\n\n",
        [E("hello", id="…", retry=200)],
        last_event_id="…",
        retry=200,
    ),
    case("id-without-colon-resets", b"id: 1\n\nid\ndata: x\n\n", [E("x")], last_event_id=""),
    case("id-one-space-removed", b"id:  a b \ndata: x\n\n", [E("x", id=" a b ")]),
    case("id-committed-without-data", b"id: 5\n\n", [], last_event_id="5"),
    case(
        "id-committed-without-data-then-event",
        b"id: 5\n\ndata: x\n\n",
        [E("x", id="5")],
        last_event_id="5",
    ),
    case(
        "id-in-unfinished-block-does-not-count",
        b"id: 1\ndata: a\n\nid: 2\ndata: b\n",
        [E("a", id="1")],
        last_event_id="1",
    ),
    case("id-line-unfinished", b"id: 1\ndata: a\n\nid: 2", [E("a", id="1")], last_event_id="1"),
    # wpt eventsource/format-data-before-final-empty-line.js
    case(
        "wpt-format-data-before-final-empty-line",
        b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n",
        [E("test1", retry=1000)],
        last_event_id="",
        retry=1000,
    ),
    case(
        "id-seeded-from-constructor",
        b"data: a\n\nid: 2\ndata: b\n\ndata: c\n\n",
        [E("a", id="41"), E("b", id="2"), E("c", id="2")],
        last_event_id="2",
        start_id="41",
    ),
    case(
        "id-seed-reset-by-empty-id",
        b"id\ndata: a\n\n",
        [E("a")],
        last_event_id="",
        start_id="41",
    ),
    case(
        "id-seed-kept-without-dispatch", b"id: 9\ndata: a\n", [], last_event_id="41", start_id="41"
    ),
]

RETRIES = [
    case("retry-sets-reconnection-time", b"retry: 1000\n", [], retry=1000),
    case("retry-no-space", b"retry:1000\n", [], retry=1000),
    case("retry-zero", b"retry: 0\n", [], retry=0),
    case("retry-leading-zeros", b"retry: 007\n", [], retry=7),
    case("retry-big", b"retry: 99999999999999999999\n", [], retry=99999999999999999999),
    case("retry-applied-without-dispatch", b"retry: 5\ndata: x\n", [], retry=5),
    case("retry-in-block-without-data", b"retry: 5\n\n", [], retry=5),
    case("retry-last-valid-wins", b"retry: 1\nretry: 2\ndata: x\n\n", [E("x", retry=2)], retry=2),
    # wpt eventsource/format-field-retry-bogus.htm
    case(
        "wpt-format-field-retry-bogus",
        b"retry:2000\nretry:1000x\ndata:x\n\n\n",
        [E("x", retry=2000)],
        retry=2000,
    ),
    case(
        "event-retry-is-the-blocks-retry",
        b"retry: 5\ndata: a\n\ndata: b\n\n",
        [E("a", retry=5), E("b")],
        retry=5,
    ),
    case(
        "retry-in-empty-block-not-on-next-event",
        b"retry: 5\n\ndata: b\n\n",
        [E("b")],
        retry=5,
    ),
    case("retry-after-data-in-block", b"data: a\nretry: 9\n\n", [E("a", retry=9)], retry=9),
] + [
    case(f"retry-rejects-{name}", b"retry: 1\n\nretry" + raw + b"\ndata: x\n\n", [E("x")], retry=1)
    for name, raw in [
        ("plus", b": +1"),
        ("minus", b": -1"),
        ("two-spaces", b":  1"),
        ("space-after-colon-and-before", b": \t1"),
        ("trailing-space", b": 1 "),
        ("fraction", b": 1.5"),
        ("exponent", b": 1e3"),
        ("hex", b": 0x10"),
        ("underscore", b": 1_000"),
        ("empty", b":"),
        ("empty-after-space", b": "),
        ("no-colon", b""),
        ("arabic-indic-digits", "١٢".encode()),
        ("superscript-two", "²".encode()),
        ("fullwidth-digit", "\uff11".encode()),
        ("math-bold-digit", "\U0001d7cf".encode()),
        ("digit-then-letter", b": 1000x"),
        ("nul", b": 1\0"),
    ]
]

DISPATCH = [
    # wpt eventsource/eventsource-onmessage.js (resources/message.py's default message)
    case("wpt-eventsource-onmessage", b"data: data\n\n\n", [E("data")]),
    # ld ssetests/tests_basic_parsing.go "one-line message in one chunk" (and "in two chunks")
    case("ld-one-line", b"data: Hello\n\n", [E("Hello")]),
    # ld ssetests/tests_basic_parsing.go "two one-line messages in one chunk"
    case("ld-two-messages", b"data: Hello\n\ndata: World\n\n", [E("Hello"), E("World")]),
    # ld ssetests/tests_basic_parsing.go "one two-line message in one chunk"
    case("ld-two-line-message", b"data: Hello\ndata:World\n\n", [E("Hello\nWorld")]),
    # ld ssetests/tests_basic_parsing.go "empty data"
    case("ld-empty-data", b"data:\n\n", [E("")]),
    # ld ssetests/tests_basic_parsing.go "event with type and ID"
    case(
        "ld-type-and-id",
        b"event: greeting\nid: abc\ndata: Hello\n\n",
        [E("Hello", "greeting", "abc")],
    ),
    # ld ssetests/tests_basic_parsing.go "many messages in rapid succession"
    case(
        "ld-many-messages",
        b"".join(b"data: message %d\n\n" % i for i in range(100)),
        [E(f"message {i}") for i in range(100)],
    ),
    case("trailing-lf-removed-once", b"data:\ndata:\n\n", [E("\n")]),
    case("trailing-empty-line-kept", b"data: a\ndata:\n\n", [E("a\n")]),
    case("leading-empty-line-kept", b"data:\ndata: a\n\n", [E("\na")]),
    case("data-buffer-empty-no-dispatch", b"event: x\nid: 3\n\n", [], last_event_id="3"),
    case("extra-blank-lines-no-events", b"data: a\n\n\n\n\ndata: b\n\n", [E("a"), E("b")]),
    case("incomplete-event-discarded", b"data: a\n\ndata: b\n", [E("a")]),
    case("incomplete-line-discarded", b"data: a\n\ndata: b", [E("a")]),
    case("incomplete-after-cr", b"data: a\r\rdata: b\r", [E("a")]),
    case("only-incomplete", b"event: x\ndata: y", []),
    case("empty-stream", b"", []),
    case("only-blank-lines", b"\n\n\r\n\r", []),
    case("comment-does-not-dispatch", b"data: a\n:\n:x\ndata: b\n\n", [E("a\nb")]),
    *(
        # ld ssetests/tests_linefeeds.go, for each of LF, CRLF and CR
        case(f"ld-linefeeds-{label}-{name}", stream.replace(b"\n", end), expected)
        for label, end in (("lf", b"\n"), ("crlf", b"\r\n"), ("cr", b"\r"))
        for name, stream, expected in (
            ("one-line-event", b"data: event 1\n\n", [E("event 1")]),
            (
                "one-line-and-two-line",
                b"data: event 1\n\ndata: event 2 line 1\ndata: event 2 line 2\n\n",
                [E("event 1"), E("event 2 line 1\nevent 2 line 2")],
            ),
            (
                "empty-line-at-beginning",
                b"data:\ndata: line2\ndata: line3\n\n",
                [E("\nline2\nline3")],
            ),
            (
                "empty-line-in-middle",
                b"data: line1\ndata:\ndata: line3\n\n",
                [E("line1\n\nline3")],
            ),
            (
                "ignores-1-extra-empty-line",
                b"data: event 1\n\n\ndata: event 2\n\n",
                [E("event 1"), E("event 2")],
            ),
            (
                "ignores-2-extra-empty-lines",
                b"data: event 1\n\n\n\ndata: event 2\n\n",
                [E("event 1"), E("event 2")],
            ),
        )
    ),
]

COMMENTS = [
    case("comments-off-by-default", b": hi\ndata: x\n\n", [E("x")]),
    # ld ssetests/tests_comments.go "single comment"
    case("ld-single-comment", b":Hello\n", [C("Hello")], comments=True),
    # ld ssetests/tests_comments.go "two comments in a row"
    case("ld-two-comments", b":Hello\n:World\n", [C("Hello"), C("World")], comments=True),
    # ld ssetests/tests_comments.go "comment before event"
    case(
        "ld-comment-before-event",
        b":Hello\ndata: Hello\n\n",
        [C("Hello"), E("Hello")],
        comments=True,
    ),
    # ld ssetests/tests_comments.go "comment after event"
    case(
        "ld-comment-after-event",
        b"data: Hello\n\n:Hello\n",
        [E("Hello"), C("Hello")],
        comments=True,
    ),
    case(
        "comment-inside-block-comes-first",
        b"data: a\n: mid\ndata: b\n\n",
        [C(" mid"), E("a\nb")],
        comments=True,
    ),
    case("comment-empty", b":\n", [C("")], comments=True),
    case(
        "comment-text-unmodified",
        b":  two spaces: and colon \n",
        [C("  two spaces: and colon ")],
        comments=True,
    ),
    case("comment-cr-ends-it", b": a\r: b\r\n", [C(" a"), C(" b")], comments=True),
    case("comment-unfinished-not-returned", b": a\n: b", [C(" a")], comments=True),
    # wpt eventsource/format-comments.js, with the comments returned
    case(
        "wpt-format-comments-returned",
        b"data:1\r:\0\n:\r\ndata:2\n:xx\rdata:3\n:data:fail\r:yy\ndata:4\n\n",
        [C("\0"), C(""), C("xx"), C("data:fail"), C("yy"), E("1\n2\n3\n4")],
        comments=True,
    ),
]

ALL_CASES = (
    BYTES_TO_LINES + INVALID_UTF8_CASES + LINES_TO_FIELDS + IDS + RETRIES + DISPATCH + COMMENTS
)


def _parser(options: dict[str, Any]) -> EventStreamParser:
    options = dict(options)
    return EventStreamParser(options.pop("start_id", ""), **options)


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize(("stream", "expected", "last_event_id", "retry", "options"), ALL_CASES)
def test_case(
    stream: bytes,
    expected: list[Event | Comment],
    last_event_id: str | None,
    retry: object,
    options: dict[str, Any],
    chunker: Chunker,
) -> None:
    """The stream gives exactly the expected events, however it is chunked."""
    parser = _parser(options)
    assert feed_all(parser, chunker(stream)) == expected
    if last_event_id is not None:
        assert parser.last_event_id == last_event_id
    if retry is not ANY:
        assert parser.retry == retry


@pytest.mark.parametrize(("stream", "expected", "last_event_id", "retry", "options"), ALL_CASES)
def test_case_agrees_with_reference(
    stream: bytes,
    expected: list[Event | Comment],
    last_event_id: str | None,
    retry: object,
    options: dict[str, Any],
) -> None:
    """The table agrees with the literal reading of the standard in ``sse_reference``."""
    options = dict(options)
    outcome = reference_parse(stream, last_event_id=options.pop("start_id", ""), **options)
    assert outcome.items == expected
    if last_event_id is not None:
        assert outcome.last_event_id == last_event_id
    if retry is not ANY:
        assert outcome.retry == retry


@pytest.mark.parametrize(("name", "raw", "text"), INVALID_UTF8, ids=[n for n, _, _ in INVALID_UTF8])
def test_invalid_utf8_table_matches_python_and_reference(name: str, raw: bytes, text: str) -> None:
    """The expected replacements are what both WHATWG-style decoders produce."""
    assert utf8_decode(raw) == text
    assert raw.decode("utf-8", "replace") == text


# --- chunk boundaries at every position -------------------------------------------------


@pytest.mark.parametrize("char", ["é", "€", "豆", "😀", "\U0010ffff"])
def test_multibyte_character_split_at_every_position(char: str) -> None:
    """A 2, 3 or 4 byte character split anywhere (also in three pieces) decodes whole."""
    stream = ("data: <" + char + ">\n\n").encode()
    start = len(b"data: <")
    end = start + len(char.encode())
    for first in range(start, end + 1):
        for second in range(first, end + 1):
            parser = EventStreamParser()
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert feed_all(parser, chunks) == [E(f"<{char}>")], (first, second)


@pytest.mark.parametrize(("name", "raw", "text"), INVALID_UTF8, ids=[n for n, _, _ in INVALID_UTF8])
def test_invalid_utf8_split_at_every_position(name: str, raw: bytes, text: str) -> None:
    """Invalid bytes give the same replacements wherever the chunk boundary falls."""
    stream = b"data: <" + raw + b">\n\n"
    for point in range(len(stream) + 1):
        parser = EventStreamParser()
        assert feed_all(parser, [stream[:point], stream[point:]]) == [E(f"<{text}>")], point


def test_bom_split_at_every_position() -> None:
    """The byte order mark is dropped however its three bytes are split."""
    stream = BOM + b"data: a\n\n"
    for first in range(4):
        for second in range(first, 4):
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert feed_all(EventStreamParser(), chunks) == [E("a")], (first, second)


def test_bom_in_its_own_chunk_then_bom() -> None:
    """After a BOM alone in the first chunk, a BOM starting the next chunk is data."""
    parser = EventStreamParser()
    assert parser.feed(BOM) == []
    assert parser.feed(BOM + b"data: a\n\ndata: b\n\n") == [E("b")]


def test_bom_after_empty_chunks() -> None:
    """Empty chunks before the BOM do not end "the start of the stream"."""
    parser = EventStreamParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"") == []
    assert parser.feed(BOM + b"data: a\n\n") == [E("a")]


# ld ssetests/tests_linefeeds.go "CRLF where CR is end of 1 chunk", with its own chunks
def test_crlf_split_after_cr() -> None:
    """An LF starting a chunk after a chunk-final CR completes the CRLF, not an empty line."""
    parser = EventStreamParser()
    out = parser.feed(b"data: Hello\r")
    out += parser.feed(b"\ndata: World\r")
    out += parser.feed(b"\n\r\ndata: OK\r")
    out += parser.feed(b"\n")
    assert out == [E("Hello\nWorld")]
    assert parser.feed(b"\r") == [E("OK")]
    assert parser.feed(b"\n") == []


def test_cr_at_chunk_end_dispatches_at_once() -> None:
    """A blank line ended by a chunk-final CR dispatches without waiting for the next byte."""
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r\r") == [E("a")]
    assert parser.feed(b"\ndata: b\n\n") == [E("b")]


def test_cr_then_empty_chunk_then_lf() -> None:
    """An empty chunk between CR and LF does not separate them."""
    parser = EventStreamParser()
    out = parser.feed(b"data: a\r") + parser.feed(b"") + parser.feed(b"\n")
    assert out == []
    assert parser.feed(b"data: b\n\n") == [E("a\nb")]


def test_cr_then_partial_utf8_then_lf() -> None:
    """A CR, then an incomplete character, then the rest: the LF is not part of a CRLF."""
    parser = EventStreamParser()
    out = parser.feed(b"data: a\r") + parser.feed(b"data: \xc3") + parser.feed(b"\xa9\n\n")
    assert out == [E("a\n\u00e9")]


def test_cr_then_lf_after_incomplete_character() -> None:
    """After a chunk-final CR, an incomplete UTF-8 start does not lose the pending CR."""
    parser = EventStreamParser()
    out = parser.feed(b"data: a\r") + parser.feed(b"\xc3") + parser.feed(b"\xa9\n\n")
    # The CR ended "data: a"; "é" is an unknown field; the LF after it is a line end.
    assert out == [E("a")]


# --- state between chunks -------------------------------------------------------------


def test_last_event_id_is_as_of_the_last_dispatch() -> None:
    """An id in a block that has not ended yet does not change ``last_event_id``."""
    parser = EventStreamParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\n")
    assert parser.last_event_id == "1"
    parser.feed(b"data: b\n")
    assert parser.last_event_id == "1"
    assert parser.feed(b"\n") == [E("b", id="2")]
    assert parser.last_event_id == "2"


def test_last_event_id_committed_by_empty_block() -> None:
    """A block with an id and no data commits the id without an event."""
    parser = EventStreamParser()
    assert parser.feed(b"id: 7\n") == []
    assert parser.last_event_id == ""
    assert parser.feed(b"\n") == []
    assert parser.last_event_id == "7"


def test_last_event_id_seed_from_constructor() -> None:
    """The constructor's id is the starting last event ID and is carried by events."""
    parser = EventStreamParser("41")
    assert parser.last_event_id == "41"
    assert parser.feed(b"data: a\n\n") == [E("a", id="41")]
    assert parser.last_event_id == "41"


def test_last_event_id_seed_from_setter() -> None:
    """Setting ``last_event_id`` seeds the following events."""
    parser = EventStreamParser()
    parser.last_event_id = "9"
    assert parser.last_event_id == "9"
    assert parser.feed(b"data: a\n\n") == [E("a", id="9")]


def test_last_event_id_setter_between_events() -> None:
    """Setting ``last_event_id`` after an event replaces the id events carry."""
    parser = EventStreamParser()
    assert parser.feed(b"id: 1\ndata: a\n\n") == [E("a", id="1")]
    parser.last_event_id = "x"
    assert parser.feed(b"data: b\n\n") == [E("b", id="x")]


def test_last_event_id_setter_replaces_pending_id() -> None:
    """Setting ``last_event_id`` mid-block replaces an id received in that block."""
    parser = EventStreamParser()
    parser.feed(b"id: 2\ndata: b\n")
    parser.last_event_id = "seed"
    assert parser.feed(b"\n") == [E("b", id="seed")]
    assert parser.last_event_id == "seed"


def test_retry_property_without_dispatch() -> None:
    """``retry`` changes as soon as the field's line ends, before any blank line."""
    parser = EventStreamParser()
    assert parser.retry is None
    parser.feed(b"retry: 250")
    assert parser.retry is None
    parser.feed(b"\n")
    assert parser.retry == 250
    parser.feed(b"retry: nope\n\n")
    assert parser.retry == 250


def test_retry_with_thousands_of_digits() -> None:
    """A ``retry`` value longer than Python's int-conversion limit raises no ValueError."""
    parser = EventStreamParser()
    events = parser.feed(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n")
    assert [event.data for event in events] == ["x"]
    assert events[0].retry == parser.retry


@pytest.mark.parametrize(
    ("chunks", "pending"),
    [
        ([], False),
        ([b"data: a\n\n"], False),
        ([b"da"], True),
        ([b"data: a\n"], True),
        ([b"event: x\n"], True),
        ([b"id: 5\n"], True),
        ([b"data: \xe2\x82"], True),
        ([b"\xe2"], True),
        ([b"data: a\n", b"\n"], False),
        ([b": comment\n"], False),
        ([b"id: 5\n\n"], False),
        ([b"retry: 5\n"], True),
        ([b"retry: 5\n\n"], False),
        ([b"data: a\r"], True),
        ([b"data: a\n\r"], False),
    ],
    ids=repr,
)
def test_pending(chunks: list[bytes], pending: bool) -> None:
    """``pending`` tells whether part of an event still awaits more bytes."""
    parser = EventStreamParser()
    feed_all(parser, chunks)
    assert parser.pending is pending


def test_comments_interleaved_across_chunks() -> None:
    """With comments on, comments and events come back in stream order across feeds."""
    parser = EventStreamParser(comments=True)
    assert parser.feed(b": one\ndata: a") == [C(" one")]
    assert parser.feed(b"\n: two\n\n:three") == [C(" two"), E("a")]
    assert parser.feed(b"\n") == [C("three")]


def test_feed_returns_a_new_list_each_time() -> None:
    """Each ``feed()`` returns its own list, so callers may keep or mutate it."""
    parser = EventStreamParser()
    first = parser.feed(b"data: a\n\n")
    second = parser.feed(b"data: b\n\n")
    first.clear()
    assert second == [E("b")]


def test_events_are_hashable_values() -> None:
    """Parsed events compare and hash as values and are not equal to plain tuples."""
    events = EventStreamParser().feed(b"data: a\n\ndata: a\n\n")
    assert events[0] == events[1]
    assert len(set(events)) == 1
    assert events[0] != ("a", "message", "", None)
