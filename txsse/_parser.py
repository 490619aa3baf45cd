"""The sans-IO event stream parser: bytes in, events out.

It implements the WHATWG HTML Standard's "interpreting an event stream" to the
letter and knows nothing of sockets, reactors or Twisted.
"""

from __future__ import annotations

import codecs
from typing import NoReturn

from txsse._event import Comment, Event
from txsse.errors import EventTooLarge, LineTooLong, ParseError

#: Default longest line, in characters: multi-megabyte single-line events pass.
DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024
#: Default largest event data, in characters.
DEFAULT_MAX_EVENT_SIZE = 32 * 1024 * 1024

_decode = codecs.utf_8_decode
_new = tuple.__new__


#: What a ``retry`` value too long for Python's int conversion (thousands of
#: digits) reads as, in milliseconds: about 292 million years.
MAX_RETRY = 2**63 - 1


def _big_retry(digits: str) -> int:
    """Convert a long run of ASCII digits exactly, or to :data:`MAX_RETRY`."""
    try:
        return int(digits)
    except ValueError:  # past sys.get_int_max_str_digits()
        return MAX_RETRY


class EventStreamParser:
    """Turn the bytes of an event stream into :class:`~txsse.Event` values.

    Feed it chunks exactly as they come off the network: any chunking of the same
    bytes gives the same events. A UTF-8 character, a CRLF or the byte order mark
    may be split across chunks. The parser does no I/O and never blocks.

    :param last_event_id: the last event ID to start from, for example the one a
        previous connection ended with; events without an ``id:`` field carry it.
    :param max_line_length: the longest line accepted, in characters; a longer
        one raises :class:`~txsse.errors.LineTooLong` as soon as the limit is
        passed, without buffering more.
    :param max_event_size: the largest event data accepted, in characters; more
        raises :class:`~txsse.errors.EventTooLarge`.
    :param comments: when true, :meth:`feed` also returns a
        :class:`~txsse.Comment` for every comment line, in stream order. When
        false (the default) comments cost nothing.
    """

    __slots__ = (
        "_block_retry",
        "_comments",
        "_counted",
        "_cr",
        "_data",
        "_data_size",
        "_failed",
        "_id",
        "_last_id",
        "_retry",
        "_slow",
        "_started",
        "_tail",
        "_tail_len",
        "_type",
        "_undecoded",
        "max_event_size",
        "max_line_length",
    )

    def __init__(
        self,
        last_event_id: str = "",
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        comments: bool = False,
    ) -> None:
        if max_line_length < 1 or max_event_size < 1:
            raise ValueError("max_line_length and max_event_size must be positive")
        self.max_line_length = max_line_length
        self.max_event_size = max_event_size
        self._comments = comments
        self._last_id = last_event_id
        self._id = last_event_id
        self._retry: int | None = None
        self._undecoded = b""
        self._started = False
        self._slow = True
        self._cr = False
        self._tail: list[str] = []
        self._tail_len = 0
        self._data: list[str] = []
        self._counted = 0
        self._data_size = 0
        self._type = ""
        self._block_retry: int | None = None
        self._failed: ParseError | None = None

    @property
    def last_event_id(self) -> str:
        """The last event ID as of the last dispatch (what a reconnection sends).

        An ``id:`` field in a block that has not ended yet does not count.
        Setting it replaces both the committed ID and the pending one.
        """
        return self._last_id

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        self._last_id = self._id = value

    @property
    def retry(self) -> int | None:
        """The last valid ``retry:`` value received, in milliseconds, or ``None``."""
        return self._retry

    @property
    def pending(self) -> bool:
        """Whether part of an event (a line or a field) awaits more bytes."""
        return bool(
            self._tail
            or self._data
            or self._type
            or self._undecoded
            or self._id != self._last_id
            or self._block_retry is not None
        )

    def feed(self, chunk: bytes) -> list[Event | Comment]:
        """Parse the next chunk of the stream.

        :param chunk: the next bytes, of any length (empty is fine).
        :returns: the events (and, if asked for, comments) completed by this
            chunk, in stream order.
        :raises LineTooLong: a line passed ``max_line_length``.
        :raises EventTooLarge: an event's data passed ``max_event_size``.
        :raises ParseError: the parser already failed; create a new one.

        After an error the parser is finished: the exception's ``events`` holds
        what was completed before the offending line, and :attr:`last_event_id`
        is where a new connection resumes.
        """
        # Hot path: one decode, one split, one loop. Everything unusual (a BOM
        # not yet checked, undecoded bytes, a CR awaiting its LF, a failure)
        # sets ``_slow`` and goes through ``_slow_text``.
        if self._slow:
            text = self._slow_text(chunk)
        else:
            text, used = _decode(chunk, "replace", False)
            if used != len(chunk):
                self._undecoded = chunk[used:]
                self._slow = True
        if not text:
            return []
        if "\r" in text:
            if text[-1] == "\r":
                self._cr = self._slow = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        last = lines.pop()
        error: ParseError | None = None
        if last or self._tail or len(text) > self.max_line_length:
            error = self._line_boundaries(lines, last, len(text))

        out: list[Event | Comment] = []
        append = out.append
        data = self._data
        etype = self._type
        id_buf = self._id
        last_id = self._last_id
        block_retry = self._block_retry
        comments = self._comments
        for line in lines:
            if line:
                # The canonical "name: value" form costs one partition; anything
                # else (no space, a colon before the space) takes the general path.
                name, sep, value = line.partition(": ")
                if not sep or ":" in name:
                    name, _, value = line.partition(":")
                    if value and value[0] == " ":
                        value = value[1:]
                if name == "data":
                    data.append(value)
                elif name == "id":
                    if "\0" not in value:
                        id_buf = value
                elif name == "event":
                    etype = value
                elif name == "retry":
                    if value.isdigit() and value.isascii():
                        block_retry = self._retry = (
                            int(value) if len(value) < 19 else _big_retry(value)
                        )
                elif not name and comments:
                    if data:  # an oversized event fails before a later comment is kept
                        self._last_id = last_id
                        self._count_data(data, out)
                    append(_new(Comment, (line[1:],)))
            else:
                last_id = id_buf
                if data:
                    joined = "\n".join(data)
                    if len(joined) > self.max_event_size:
                        self._last_id = last_id
                        self._fail(EventTooLarge(self.max_event_size), out)
                    append(_new(Event, (joined, etype or "message", last_id, block_retry)))
                    data = []
                etype = ""
                block_retry = None
        self._type = etype
        self._id = id_buf
        self._last_id = last_id
        self._block_retry = block_retry
        if data:
            self._count_data(data, out)
        elif data is not self._data:
            self._data = data
            self._counted = self._data_size = 0
        if error is not None:
            self._fail(error, out)
        return out

    def _slow_text(self, chunk: bytes) -> str:
        """Decode ``chunk`` when the stream's state needs more than one decode."""
        if self._failed is not None:
            raise ParseError("this parser already failed; create a new one") from self._failed
        if self._undecoded:
            chunk = self._undecoded + chunk
            self._undecoded = b""
        text, used = _decode(chunk, "replace", False)
        if used != len(chunk):
            self._undecoded = chunk[used:]
        if text and not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if text and self._cr:
            self._cr = False
            if text[0] == "\n":
                text = text[1:]
        self._slow = bool(self._undecoded) or self._cr or not self._started
        return text

    def _line_boundaries(self, lines: list[str], last: str, size: int) -> ParseError | None:
        """Join the unfinished line kept from earlier chunks, keep the new one.

        Lines past ``max_line_length`` are cut from ``lines`` (in place) and
        reported as the error to raise once the lines before them are parsed.
        """
        limit = self.max_line_length
        tail = self._tail
        if tail and lines:
            tail.append(lines[0])
            lines[0] = "".join(tail)
            size = max(size, len(lines[0]))
            tail = self._tail = []
            self._tail_len = 0
        if size > limit:
            for index, line in enumerate(lines):
                if len(line) > limit:
                    del lines[index:]
                    return LineTooLong(limit)
        if last:
            tail.append(last)
            self._tail_len += len(last)
            if self._tail_len > limit:
                self._tail = []
                return LineTooLong(limit)
        return None

    def _count_data(self, data: list[str], out: list[Event | Comment]) -> None:
        """Keep the data lines of an unfinished event, within ``max_event_size``."""
        if data is not self._data:
            self._data = data
            self._counted = self._data_size = 0
        counted = self._counted
        # Each line adds its length and one LF; the last LF is not part of the data.
        self._data_size += sum(map(len, data[counted:])) + len(data) - counted
        self._counted = len(data)
        if self._data_size - 1 > self.max_event_size:
            self._fail(EventTooLarge(self.max_event_size), out)

    def _fail(self, error: ParseError, events: list[Event | Comment]) -> NoReturn:
        """Finish the parser with ``error``, keeping the ``events`` completed before it."""
        error.events = events
        self._failed = error
        self._slow = True
        self._tail = []
        self._data = []
        raise error
