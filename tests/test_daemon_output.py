"""The daemon's output: JSON lines, or an event stream that parses back to the same events."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers.system import Full
from txsse import Event, EventStreamParser
from txsse.daemon._output import EventWriter, encode_json

EVENTS = [
    Event("first", id="1"),
    Event("two\nlines", event="update", id="2"),
    Event("same id carried", event="update", id="2"),
    Event("", event="empty-data", id="3", retry=1500),
    Event('{"é": "ü"}', id=""),
    Event("after reset", id=""),
    Event("back", id="x y"),
]


def test_json_line() -> None:
    """One JSON object per event with exactly event, data and id, UTF-8, LF-terminated."""
    line = encode_json(Event("a\nb é", event="update", id="7"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"event": "update", "data": "a\nb é", "id": "7"}
    assert "é".encode() in line


def test_json_file(tmp_path: Path) -> None:
    """The json format appends one line per event and keeps earlier content."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"earlier": true}\n')
    writer = EventWriter(str(out), "json")
    for event in EVENTS:
        writer.write(event)
    writer.close()
    lines = out.read_bytes().splitlines()
    assert json.loads(lines[0]) == {"earlier": True}
    assert [json.loads(line) for line in lines[1:]] == [
        {"event": e.event, "data": e.data, "id": e.id} for e in EVENTS
    ]


@pytest.mark.parametrize("start", ["", "0"])
def test_sse_round_trip(tmp_path: Path, start: str) -> None:
    """The sse format parses back to exactly the events written, retry and ids included."""
    out = tmp_path / "out.sse"
    writer = EventWriter(str(out), "sse", last_event_id=start)
    for event in EVENTS:
        writer.write(event)
    writer.close()
    assert EventStreamParser(start).feed(out.read_bytes()) == EVENTS


def test_sse_writes_id_only_when_it_changes(tmp_path: Path) -> None:
    """An event that carries the previous id gets no id: line, a reset gets an empty one."""
    out = tmp_path / "out.sse"
    writer = EventWriter(str(out), "sse")
    for event in EVENTS[:3] + EVENTS[4:6]:
        writer.write(event)
    writer.close()
    assert out.read_bytes() == (
        b"id: 1\ndata: first\n\n"
        b"event: update\nid: 2\ndata: two\ndata: lines\n\n"
        b"event: update\ndata: same id carried\n\n"
        b'id\ndata: {"\xc3\xa9": "\xc3\xbc"}\n\n'
        b"data: after reset\n\n"
    )


def test_flushed_per_event(tmp_path: Path) -> None:
    """Each event is out of the process (readable by another reader) once write() returns."""
    out = tmp_path / "out.jsonl"
    writer = EventWriter(str(out), "json")
    writer.write(EVENTS[0])
    assert out.read_bytes() == encode_json(EVENTS[0])
    writer.close()


def test_durable_fsyncs_regular_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """durable=True fsyncs a regular file after each event; durable=False never does."""
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    writer = EventWriter(str(tmp_path / "a"), "json", durable=True)
    writer.write(EVENTS[0])
    writer.write(EVENTS[1])
    writer.close()
    assert len(synced) == 2
    writer = EventWriter(str(tmp_path / "b"), "json")
    writer.write(EVENTS[0])
    writer.close()
    assert len(synced) == 2


def test_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-`` writes to the process's standard output, not to a redirected sys.stdout."""
    raw = io.BytesIO()
    real = io.TextIOWrapper(raw, encoding="ascii")
    real.write("before\n")  # pending text is flushed before the first event
    monkeypatch.setattr(sys, "__stdout__", real)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    writer = EventWriter("-", "json", durable=True)
    writer.write(Event("é", id="1"))
    writer.close()
    assert not real.closed
    assert raw.getvalue() == b"before\n" + encode_json(Event("é", id="1"))


def test_unknown_format(tmp_path: Path) -> None:
    """An unknown format is a ValueError naming the formats."""
    with pytest.raises(ValueError, match="json"):
        EventWriter(str(tmp_path / "x"), "xml")


def test_unwritable(tmp_path: Path) -> None:
    """An output that cannot be opened raises OSError at once."""
    with pytest.raises(OSError):
        EventWriter(str(tmp_path / "missing" / "out"), "json")


@pytest.mark.parametrize(("output_format", "durable"), [("json", False), ("sse", True)])
def test_disk_full_leaves_no_torn_event(tmp_path: Path, output_format: str, durable: bool) -> None:
    """A write that fails half-way (ENOSPC) is undone: the file is as it was before that event."""
    out = tmp_path / "out"
    writer = EventWriter(str(out), output_format, durable=durable)
    writer.write(EVENTS[0])
    before = out.read_bytes()
    writer._file = Full(writer._file, half_first=True)  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        writer.write(EVENTS[1])
    writer.close()
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("output_format", "fragment"),
    [
        ("json", b'{"event": "message", "da'),
        ("sse", b"id: 2\ndata: half\n"),
        ("json", b"x" * 70_000),
    ],
)
def test_partial_last_event_is_cut_at_start(
    tmp_path: Path, output_format: str, fragment: bytes
) -> None:
    """A file ending with part of an event (a crash, a full disk) is cut back before appending."""
    out = tmp_path / "out"
    writer = EventWriter(str(out), output_format)
    writer.write(EVENTS[0])
    writer.close()
    complete = out.read_bytes()
    out.write_bytes(complete + fragment)
    writer = EventWriter(str(out), output_format, last_event_id="1")
    writer.write(EVENTS[1])
    writer.close()
    data = out.read_bytes()
    if output_format == "json":
        assert [json.loads(line)["id"] for line in data.splitlines()] == ["1", "2"]
    else:
        assert EventStreamParser().feed(data) == EVENTS[:2]


def test_fragment_only_file_is_emptied(tmp_path: Path) -> None:
    """A file holding nothing but a fragment is emptied before the first event."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"event": "mess')
    EventWriter(str(out), "json").close()
    assert out.read_bytes() == b""


def test_a_pipe_whose_reader_is_gone_fails_the_write() -> None:
    """``/dev/fd/N`` of a pipe (``./scripts/demo | head``): with the reader gone, writing fails."""
    read, write = os.pipe()
    writer = EventWriter(f"/dev/fd/{write}", "json")
    os.close(write)
    os.close(read)
    try:
        with pytest.raises(BrokenPipeError):
            writer.write(Event("nobody reads this"))
    finally:
        writer.close()
