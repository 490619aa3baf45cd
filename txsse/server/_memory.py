"""MemoryChannel: the embedded channel, a ring buffer in the serving process."""

from __future__ import annotations

import json
import time
from collections import deque
from itertools import islice

from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from txsse._format import format_event
from txsse._validate import check_count
from txsse.server._channel import IEventChannel, ISubscriber, Replay

_DEFAULT_HISTORY = 1000


def _first_id() -> int:
    """The default first id: the wall clock in microseconds.

    A restarted process then keeps issuing larger ids and never reuses one an
    old client still holds (which would make it skip events silently).
    """
    return time.time_ns() // 1000


@implementer(IEventChannel)
class MemoryChannel:
    """An :class:`IEventChannel` kept in memory; synchronous and exact.

    Each event is encoded once, stored in a ring buffer of the last
    ``history`` events, and the same bytes are sent to every subscriber.

    :param history: how many events to keep for resumption (0 keeps none:
        every resume is then reported as a gap).
    :param first_id: the first id to assign; later ids count up by one. By
        default the current time in microseconds, so ids keep growing across
        restarts. Ids are decimal strings.
    :raises ValueError: if ``history`` or ``first_id`` is not a
        non-negative integer.
    """

    _log = Logger()

    def __init__(self, history: int = _DEFAULT_HISTORY, *, first_id: int | None = None) -> None:
        check_count("history", history)
        check_count("first_id", first_id)
        self.history = history
        self._next_id = _first_id() if first_id is None else first_id
        # The resume point of an empty channel: "before the first event". It
        # is never assigned (ids count up from the first id), and a new
        # channel (a restart) has another one, so an old client gets a gap.
        self._origin = f"before-{self._next_id}"
        self._ids: deque[str] = deque()
        self._chunks: deque[bytes] = deque()
        # id -> absolute position; the oldest kept event is at _count - len(_ids).
        self._index: dict[str, int] = {}
        self._count = 0
        self._subscribers: dict[ISubscriber, None] = {}
        # The last replay built, by (first absolute position, event count): a
        # reconnection storm after the same id shares one bytes object.
        self._replay: tuple[int, int, bytes] = (-1, -1, b"")

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are receiving events now."""
        return len(self._subscribers)

    @property
    def last_id(self) -> str | None:
        """The id of the newest event kept, or ``None`` if none is."""
        return self._ids[-1] if self._ids else None

    def publish(self, data: str, event: str | None = None, id: str | None = None) -> str:
        """Append one event and send its bytes to every subscriber.

        :param data: the event's data.
        :param event: the event type, or ``None`` (clients use ``message``).
        :param id: the event's id, or ``None`` for the next decimal id. A
            decimal id moves the counter past it.
        :returns: the id assigned.
        :raises ValueError: if the event cannot be encoded (see
            :func:`txsse.format_event`), ``id`` is empty, or ``id`` is still
            in the history.
        """
        if id is None:
            id = str(self._next_id)
        elif id == "":
            raise ValueError("a channel event needs a non-empty id, or None for the next one")
        elif id in self._index:
            raise ValueError(f"id {id!r} is already in the channel's history; ids must be unique")
        chunk = format_event(data, event=event, id=id)
        if id.isascii() and id.isdigit():
            self._next_id = max(self._next_id, int(id) + 1)
        self._store(id, chunk)
        for subscriber in tuple(self._subscribers):
            try:
                subscriber.send(chunk)
            except Exception:
                self._log.failure(
                    "subscriber {subscriber!r} failed to take event {id}",
                    level=LogLevel.error,
                    subscriber=subscriber,
                    id=id,
                )
        return id

    def publish_json(self, obj: object, event: str | None = None, id: str | None = None) -> str:
        """Publish ``obj`` as compact JSON (see :meth:`publish`).

        :raises TypeError: if ``obj`` is not JSON-serializable.
        """
        return self.publish(json.dumps(obj, separators=(",", ":")), event, id)

    def _store(self, id: str, chunk: bytes) -> None:
        """Append to the ring buffer, dropping the oldest event past ``history``."""
        if self.history == 0:
            return
        if len(self._ids) == self.history:
            del self._index[self._ids.popleft()]
            self._chunks.popleft()
        self._ids.append(id)
        self._chunks.append(chunk)
        self._index[id] = self._count
        self._count += 1

    def subscribe(self, subscriber: ISubscriber, last_event_id: str | None = None) -> Replay:
        """Subscribe; the replay is computed and the subscriber added at once.

        :param subscriber: receives every later event.
        :param last_event_id: resume after this id, or ``None`` (or ``""``)
            for new events only.
        :returns: what followed ``last_event_id`` in the history; a gap (and
            the whole history) if the id is not held.
        """
        self._subscribers[subscriber] = None
        ids = self._ids
        oldest = ids[0] if ids else None
        position = ids[-1] if ids else (self._origin if self.history else None)
        if not last_event_id:
            return Replay(b"", False, oldest, position)
        index = self._index.get(last_event_id)
        first = self._count - len(ids)
        if index is None and not (last_event_id == self._origin and first == 0):
            return Replay(self._replay_from(first), True, oldest, position)
        start = first if index is None else index + 1
        return Replay(self._replay_from(start), False, oldest, position)

    def _replay_from(self, position: int) -> bytes:
        """The kept events from absolute ``position`` on, joined once per state."""
        cached_position, cached_count, chunk = self._replay
        if cached_position != position or cached_count != self._count:
            start = position - (self._count - len(self._ids))
            chunk = b"".join(islice(self._chunks, start, None))
            self._replay = (position, self._count, chunk)
        return chunk

    def unsubscribe(self, subscriber: ISubscriber) -> None:
        """Stop sending to ``subscriber``; a no-op if it is not subscribed."""
        self._subscribers.pop(subscriber, None)

    def __repr__(self) -> str:
        return (
            f"<MemoryChannel history={self.history} kept={len(self._ids)}"
            f" subscribers={len(self._subscribers)}>"
        )
