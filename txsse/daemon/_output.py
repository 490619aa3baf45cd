"""The daemon's output: events written as JSON lines or as an event stream."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from typing import BinaryIO, cast

from twisted.logger import Logger

from txsse._event import Event
from txsse._format import format_event

_log = Logger()

#: The output formats ``twistd sse --format`` accepts.
FORMATS = ("json", "sse")


def encode_json(event: Event) -> bytes:
    """Encode an event as one JSON line.

    :param event: the event.
    :returns: ``{"event": ..., "data": ..., "id": ...}`` and a line feed, UTF-8.
    """
    line = json.dumps(
        {"event": event.event, "data": event.data, "id": event.id}, ensure_ascii=False
    )
    return line.encode("utf-8") + b"\n"


class EventWriter:
    """Write events to a file or to standard output, flushing each one.

    :param path: the file to append to; ``"-"`` is standard output.
    :param output_format: ``"json"`` (one JSON object per line) or ``"sse"``
        (an event stream that parses back to the same events).
    :param last_event_id: the last event ID the output already ends with, so
        that the ``sse`` format writes an ``id:`` field only when it changes.
    :param durable: ``fsync`` a regular file after each event, so that what a
        state file records as written survives a power cut.
    :raises OSError: the file cannot be opened for appending.
    :raises ValueError: unknown ``output_format``.
    """

    def __init__(
        self, path: str, output_format: str, *, last_event_id: str = "", durable: bool = False
    ) -> None:
        if output_format not in FORMATS:
            raise ValueError(f"output format must be one of {FORMATS}, not {output_format!r}")
        self._sse = output_format == "sse"
        self._last_id = last_event_id
        self._stdout = path == "-"
        self._file: BinaryIO
        if self._stdout:
            # twistd may point sys.stdout at its log; the process's own standard
            # output is sys.__stdout__. Flush its text layer before using bytes.
            stdout = sys.__stdout__
            if stdout is None:
                raise OSError("standard output is closed")
            stdout.flush()
            self._file = cast(BinaryIO, stdout.buffer)
        else:
            # Unbuffered: a failed write is seen at once and can be undone. Write-only:
            # opened for reading too, a pipe (/dev/fd/N) would have this process as a
            # reader, and a write after the real reader has gone would never fail.
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._regular = not self._stdout and _is_regular(self._file)
        self._fsync = durable and self._regular
        if self._regular:
            self._cut_partial_event(path)

    def write(self, event: Event) -> None:
        """Write one event and flush it out of the process.

        :param event: the event.
        :raises OSError: the write or the flush failed.
        """
        if self._sse:
            event_id = event.id if event.id != self._last_id else None
            data = format_event(
                event.data,
                event=None if event.event == "message" else event.event,
                id=event_id,
                retry=event.retry,
            )
            self._last_id = event.id
        else:
            data = encode_json(event)
        if not self._regular:
            self._file.write(data)
            self._file.flush()
            return
        fd = self._file.fileno()
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0 :]
            if self._fsync:
                os.fsync(fd)
        except OSError:
            # Disk full, quota...: leave the file as it was before this event,
            # so that it never ends with half of one.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise

    def _cut_partial_event(self, path: str) -> None:
        """Cut what follows the last complete event (left by a crash or a full disk)."""
        fd = self._file.fileno()
        size = os.fstat(fd).st_size
        with open(path, "rb", buffering=0) as reader:
            end = _complete_length(reader.fileno(), size, b"\n\n" if self._sse else b"\n")
        if end < size:
            os.ftruncate(fd, end)
            _log.warn(
                "{path} ended with {count} bytes of an incomplete event; cut them before appending",
                path=path,
                count=size - end,
            )

    def close(self) -> None:
        """Close the file (standard output stays open)."""
        if not self._stdout:
            self._file.close()


def _complete_length(fd: int, size: int, terminator: bytes) -> int:
    """The length of the file up to the end of its last ``terminator`` (0 if none).

    Reads backwards from the end, a block at a time, as far as needed.
    """
    block = 65_536
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - block)
        tail = os.pread(fd, end - start, start) + tail[: len(terminator) - 1]
        found = tail.rfind(terminator)
        if found >= 0:
            return start + found + len(terminator)
        end = start
    return 0


def _is_regular(f: BinaryIO) -> bool:
    """Whether ``f`` is a regular file (fsync is meaningless on pipes and ttys)."""
    return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
