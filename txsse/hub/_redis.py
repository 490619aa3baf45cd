"""RedisStreamChannel: an :class:`IEventChannel` on a Redis stream.

Publishing is ``XADD key MAXLEN ~ history``; the event id is the stream id, so
every process serving the same stream gives a client the same ids and it can
resume through any of them. Each channel holds one blocking ``XREAD`` loop on
its own connection (not one per subscriber) and fans the events out in
memory; a new subscriber's replay and gap check come from one atomic Lua
script, so replay and live events join without loss or duplication.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txsse._format import format_event
from txsse._validate import check_count
from txsse.errors import ChannelUnavailable
from txsse.hub._redisconn import RedisConnection
from txsse.server import IEventChannel, ISubscriber, Replay

_StreamId = tuple[int, int]

_ID = re.compile(r"\A(\d{1,20})-(\d{1,20})\Z")

# KEYS[1]: the stream. ARGV[1]: the id to resume after, or "" for none.
# ARGV[2]: "1" to return the entries to replay, "0" for the gap check only.
# Returns {last-generated-id, first kept id or "", gap 0/1, entries}. Atomic,
# so "everything up to last-generated-id" is exactly what the entries cover.
# The id must still be in the stream (trimmed or never issued: a gap); "0-0"
# means the beginning, a gap only if entries were trimmed from it.
_JOIN_SCRIPT = """
local key, after, want = KEYS[1], ARGV[1], ARGV[2]
local top, first, added, length = '0-0', '', 0, 0
if redis.call('EXISTS', key) == 1 then
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    local name, value = info[i], info[i + 1]
    if name == 'last-generated-id' then top = value
    elseif name == 'first-entry' and value then first = value[1]
    elseif name == 'entries-added' then added = value
    elseif name == 'length' then length = value
    end
  end
end
if after == '' then return {top, first, 0, {}} end
local entries, gap = {}, 0
if after == '0-0' then
  if added > length then gap = 1 end
  if want == '1' and first ~= '' then entries = redis.call('XRANGE', key, '-', '+') end
  return {top, first, gap, entries}
end
if first ~= '' and string.match(after, '^%d+%-%d+$') then
  if want == '1' then
    entries = redis.call('XRANGE', key, after, '+')
  else
    entries = redis.call('XRANGE', key, after, '+', 'COUNT', 1)
  end
end
if #entries > 0 and entries[1][1] == after then
  table.remove(entries, 1)
else
  gap = 1
  if want == '1' and first ~= '' then entries = redis.call('XRANGE', key, '-', '+') end
end
if want == '0' then entries = {} end
return {top, first, gap, entries}
"""


def _parse_id(text: str) -> _StreamId:
    match = _ID.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Redis stream id")
    return int(match[1]), int(match[2])


@implementer(IEventChannel)
class RedisStreamChannel:
    """An event channel stored in one Redis stream, shared by every process.

    :param redis: the connection for commands (``XADD``, replays); several
        channels may share one. It must be started (it is a service).
    :param key: the Redis key of the stream.
    :param history: how many events to keep (``XADD MAXLEN ~ history``:
        Redis trims in whole nodes, so slightly more may be kept).
    :param block: seconds one blocking ``XREAD`` waits before it is sent again.
    :param batch: the most events one ``XREAD`` returns.
    :raises ValueError: if ``history`` or ``batch`` is not a positive int or
        ``key`` is empty.
    """

    _log = Logger()

    def __init__(
        self,
        redis: RedisConnection,
        key: str,
        *,
        history: int = 1000,
        block: float = 5.0,
        batch: int = 1000,
    ) -> None:
        check_count("history", history, minimum=1)
        check_count("batch", batch, minimum=1)
        if not key:
            raise ValueError("a Redis stream key must not be empty")
        if block <= 0:
            raise ValueError(f"block must be a positive number of seconds, not {block!r}")
        self.history = history
        self.key = key
        self._redis = redis
        self._block_ms = str(max(1, round(block * 1000)))
        self._block = block
        self._batch = str(batch)
        self._live: dict[ISubscriber, None] = {}
        # Subscribers whose replay is being read: the events the reader gets
        # meanwhile, with their ids, to append to the replay.
        self._pending: dict[ISubscriber, list[tuple[_StreamId, bytes]]] = {}
        # Subscribers whose replay went further than the reader: skip up to the id.
        self._skip: dict[ISubscriber, _StreamId] = {}
        # Pending subscribers whose buffered events have a hole (Redis lost some).
        self._broken: set[ISubscriber] = set()
        self._reader: RedisConnection | None = None
        self._cursor: str | None = None
        self._position: _StreamId = (0, 0)

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are receiving (or about to receive) events."""
        return len(self._live) + len(self._pending) + len(self._skip)

    def publish(
        self,
        data: str,
        event: str | None = None,
        id: str | None = None,
        *,
        fields: Mapping[str, str] | None = None,
    ) -> Deferred[str]:
        """Append one event to the stream (``XADD``); every reader sends it on.

        :param data: the event's data.
        :param event: the event type, or ``None`` (clients use ``message``).
        :param id: an explicit stream id (``"<ms>-<seq>"``, larger than every
            id in the stream), or ``None`` to let Redis assign one.
        :param fields: more fields stored atomically with the entry but not
            sent to subscribers (a relay keeps its upstream's id there); see
            :meth:`newest_fields`. ``data`` and ``event`` are reserved.
        :returns: a Deferred firing with the stream id once Redis stored the
            event. It fails with :class:`ValueError` for an event that cannot
            be encoded or an id Redis refuses, and with
            :class:`~txsse.errors.ChannelUnavailable` while Redis is
            unreachable (nothing was stored then).
        """
        try:
            format_event(data, event=event, id=id or "0-1")
        except ValueError as error:
            return fail(error)
        args = ["XADD", self.key, "MAXLEN", "~", str(self.history), id or "*", "data", data]
        if event is not None:
            args += ["event", event]
        for name, value in (fields or {}).items():
            if name in ("data", "event"):
                return fail(ValueError(f"the field name {name!r} is reserved"))
            args += [name, value]
        return self._redis.execute(*args).addErrback(self._refused)

    def newest_fields(self) -> Deferred[dict[str, str] | None]:
        """The fields of the newest entry of the stream (``XREVRANGE + - COUNT 1``).

        :returns: a Deferred firing with the entry's fields (``data``,
            ``event`` and those given to :meth:`publish`), or ``None`` if the
            stream is empty; it fails with
            :class:`~txsse.errors.ChannelUnavailable` while Redis is unreachable.
        """
        d: Deferred[Any] = self._redis.execute("XREVRANGE", self.key, "+", "-", "COUNT", "1")

        def fields(reply: list[Any]) -> dict[str, str] | None:
            if not reply:
                return None
            values = reply[0][1]
            return dict(zip(values[::2], values[1::2], strict=False))

        return d.addCallback(fields)

    def publish_json(
        self, obj: object, event: str | None = None, id: str | None = None
    ) -> Deferred[str]:
        """Publish ``obj`` as compact JSON (see :meth:`publish`).

        :raises TypeError: if ``obj`` is not JSON-serializable.
        """
        return self.publish(json.dumps(obj, separators=(",", ":")), event, id)

    def _refused(self, failure: Failure) -> Failure:
        if failure.check(txredisapi.ResponseError):
            message = failure.getErrorMessage()
            if "ID" in message:
                return Failure(ValueError(f"Redis refused the event id: {message}"))
            return Failure(ChannelUnavailable(f"Redis refused the command: {message}"))
        return failure

    def subscribe(
        self, subscriber: ISubscriber, last_event_id: str | None = None
    ) -> Deferred[Replay]:
        """Subscribe after reading the replay from Redis.

        :param subscriber: receives every later event.
        :param last_event_id: resume after this stream id, or ``None`` (or
            ``""``) for new events only.
        :returns: a Deferred firing with the :class:`Replay`: the events after
            ``last_event_id``, or the whole history with ``gap=True`` when the
            id is older than the history, newer than the stream or not a
            stream id. It fails with :class:`~txsse.errors.ChannelUnavailable`
            while Redis is unreachable; the subscriber is then not subscribed.
        """
        self._pending[subscriber] = []
        d: Deferred[list[Any]] = self._join(last_event_id or "", with_entries=True)
        return d.addCallback(self._joined, subscriber).addErrback(self._join_failed, subscriber)

    def _join(self, after: str, *, with_entries: bool, redis: RedisConnection | None = None) -> Any:
        flag = "1" if with_entries else "0"
        return (redis or self._redis).execute("EVAL", _JOIN_SCRIPT, 1, self.key, after, flag)

    def _joined(self, reply: list[Any], subscriber: ISubscriber) -> Replay:
        top, first, gap, entries = reply
        chunk = b"".join(self._format(entries)[1])
        buffered = self._pending.pop(subscriber, None)
        replay = Replay(chunk, bool(gap), first or None)
        if buffered is None:  # unsubscribed meanwhile
            return replay
        if subscriber in self._broken:
            self._broken.discard(subscriber)
            self._stop_if_idle()
            raise ChannelUnavailable("Redis lost events while the subscriber joined; retry")
        covered = _parse_id(top)
        more = [item for item in buffered if item[0] > covered]
        if more:
            replay = replay._replace(chunk=chunk + b"".join(c for _, c in more))
            covered = more[-1][0]
        if self._cursor is None:
            self._start_reader(top)
        if covered > self._position:
            self._skip[subscriber] = covered
        else:
            self._live[subscriber] = None
        return replay

    def _join_failed(self, failure: Failure, subscriber: ISubscriber) -> Failure:
        self._pending.pop(subscriber, None)
        self._broken.discard(subscriber)
        self._stop_if_idle()
        return failure

    def unsubscribe(self, subscriber: ISubscriber) -> None:
        """Stop sending to ``subscriber``; idempotent. The last one stops the reader."""
        self._live.pop(subscriber, None)
        self._pending.pop(subscriber, None)
        self._skip.pop(subscriber, None)
        self._broken.discard(subscriber)
        self._stop_if_idle()

    def close(self) -> Deferred[None]:
        """End every subscriber and stop reading.

        :returns: a Deferred that fires once the reading connection is closed.
        """
        self._end_all()
        return self._stop_reader()

    def _stop_if_idle(self) -> None:
        if not self.subscriber_count:
            self._stop_reader()

    def _start_reader(self, cursor: str) -> None:
        self._cursor = cursor
        self._position = _parse_id(cursor)
        reader = self._redis.clone(reply_timeout=self._block + 10.0)
        self._reader = reader
        reader.startService()
        Deferred.fromCoroutine(self._read(reader)).addErrback(
            lambda f: self._log.failure("Redis reader of {key} crashed", f, key=self.key)
        )

    def _stop_reader(self) -> Deferred[None]:
        reader, self._reader = self._reader, None
        self._cursor = None
        self._position = (0, 0)
        if reader is None:
            return succeed(None)
        return reader.stopService()

    async def _read(self, reader: RedisConnection) -> None:
        """The channel's one read loop: blocking XREAD, fanned out in memory."""
        reconnected = False
        while self._reader is reader:
            try:
                await reader.when_connected()
                if self._reader is not reader:
                    return
                if reconnected:
                    reconnected = False
                    await self._check_after_reconnect(reader)
                    continue
                reply = await reader.execute(
                    "XREAD", "COUNT", self._batch, "BLOCK", self._block_ms,
                    "STREAMS", self.key, self._cursor or "0-0",
                )  # fmt: skip
            except ChannelUnavailable:
                reconnected = True
                continue
            except Exception:
                if self._reader is reader:
                    self._log.failure("reading Redis stream {key} failed", key=self.key)
                    self._end_all()
                    self._stop_reader()
                return
            if self._reader is reader and reply:
                self._deliver(reply[0][1])

    async def _check_after_reconnect(self, reader: RedisConnection) -> None:
        """After an outage, go on from the cursor unless Redis lost events past it."""
        top, _first, gap, _ = await self._join(self._cursor or "", with_entries=False, redis=reader)
        if self._reader is reader and gap:
            self._log.warn(
                "Redis stream {key} no longer holds the events after {cursor}; "
                "ending its subscribers so that they resume from the history",
                key=self.key,
                cursor=self._cursor,
            )
            self._end_all()
            self._cursor = top
            self._position = _parse_id(top)
            self._stop_if_idle()

    def _format(self, entries: list[Any]) -> tuple[list[_StreamId], list[bytes]]:
        """Encode stream entries ``[id, [field, value, ...]]`` as event bytes."""
        ids: list[_StreamId] = []
        chunks: list[bytes] = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            try:
                chunk = format_event(
                    values.get("data", ""), event=values.get("event") or None, id=entry_id
                )
            except ValueError:
                self._log.warn(
                    "skipping entry {id} of Redis stream {key}: not an encodable event",
                    id=entry_id,
                    key=self.key,
                )
                continue
            ids.append(_parse_id(entry_id))
            chunks.append(chunk)
        return ids, chunks

    def _deliver(self, entries: list[Any]) -> None:
        """Send one XREAD batch to every subscriber (one joined chunk each)."""
        self._cursor = entries[-1][0]
        self._position = _parse_id(self._cursor or "0-0")
        ids, chunks = self._format(entries)
        if not chunks:
            return
        chunk = b"".join(chunks)
        for subscriber in tuple(self._live):
            self._send(subscriber, chunk)
        items = list(zip(ids, chunks, strict=True))
        for buffered in self._pending.values():
            buffered.extend(items)
        for subscriber, until in tuple(self._skip.items()):
            part = b"".join(c for i, c in items if i > until)
            if ids[-1] >= until:
                del self._skip[subscriber]
                self._live[subscriber] = None
            if part:
                self._send(subscriber, part)

    def _send(self, subscriber: ISubscriber, chunk: bytes) -> None:
        try:
            subscriber.send(chunk)
        except Exception:
            self._log.failure(
                "subscriber {subscriber!r} failed to take events", subscriber=subscriber
            )

    def _end_all(self) -> None:
        """End every live subscriber (they resume from the history)."""
        ended = [*self._live, *self._skip]
        self._live.clear()
        self._skip.clear()
        self._broken.update(self._pending)
        for subscriber in ended:
            try:
                subscriber.end()
            except Exception:
                self._log.failure("subscriber {subscriber!r} failed to end", subscriber=subscriber)

    def __repr__(self) -> str:
        return (
            f"<RedisStreamChannel key={self.key!r} history={self.history}"
            f" subscribers={self.subscriber_count}>"
        )
