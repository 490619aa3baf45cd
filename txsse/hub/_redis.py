"""RedisStreamChannel: an :class:`IEventChannel` on a Redis stream and a pub/sub channel.

Publishing is one Lua script: ``XADD key MAXLEN ~ history`` and the
``PUBLISH`` of the same entry (id, type, data) on the pub/sub channel named
like the key, atomically, so messages come in stream order. The event id is
the stream id, so every process serving the same stream gives a client the
same ids and it can resume through any of them.

Live events reach a process through its server's one shared pub/sub
connection (:class:`~txsse.hub._pubsub.RedisPubSub`), subscribed to the
channel while the topic has subscribers in this process: connections do not
grow with topics. A new subscriber's replay and gap check come from one
atomic Lua script; every message is deduplicated by id against what was
already sent, so replay and live events join without loss or duplication,
and after a reconnection the stream is read after the last id sent to fill
what pub/sub lost (or, if Redis lost it too, subscribers are ended and resume
with a ``reset``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

import txredisapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txsse._format import format_event
from txsse._validate import check_count, check_seconds
from txsse.errors import ChannelUnavailable
from txsse.hub._pubsub import RedisPubSub, shared_pubsub
from txsse.hub._redisconn import RedisConnection, RedisReply
from txsse.server import IEventChannel, ISubscriber, Replay

_StreamId = tuple[int, int]
_Item = tuple[_StreamId, bytes]
_Entry = tuple[str, dict[str, RedisReply]]
"""A stream entry: its id and its fields."""
_Joined = tuple[str, str, int, list[_Entry]]
"""The join script's reply: last generated id, first kept id or "", gap 0/1, entries."""

_ID = re.compile(r"\A(\d{1,20})-(\d{1,20})\Z")

# KEYS[1]: the stream, also the pub/sub channel. ARGV[1]: MAXLEN, ARGV[2]: the
# id or "*", ARGV[3..]: the fields, "data" first, then "event" if any. The
# message is "<id>\n<event or empty>\n<data>".
_PUBLISH_SCRIPT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[2], unpack(ARGV, 3))
local event = ''
if ARGV[5] == 'event' then event = ARGV[6] end
redis.call('PUBLISH', KEYS[1], id .. '\\n' .. event .. '\\n' .. ARGV[4])
return id
"""

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


class _Script:
    """A Lua script run with ``EVALSHA``, sent whole (``EVAL``) only when Redis lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by SHA-1

    def run(self, redis: RedisConnection, key: str, *args: str) -> Deferred[RedisReply]:
        """Run the script on ``redis`` with one key.

        :returns: a Deferred firing with the script's reply.
        """
        d = redis.execute("EVALSHA", self.sha, 1, key, *args)

        def unknown(failure: Failure) -> Deferred[RedisReply]:
            if failure.check(txredisapi.ResponseError) and "NOSCRIPT" in str(failure.value):
                return redis.execute("EVAL", self.source, 1, key, *args)
            return fail(failure)

        return d.addErrback(unknown)


_PUBLISH = _Script(_PUBLISH_SCRIPT)
_JOIN = _Script(_JOIN_SCRIPT)


def _unexpected(reply: RedisReply, expected: str) -> ChannelUnavailable:
    return ChannelUnavailable(
        f"Redis answered {reply!r} where {expected} was expected; "
        "check that the server is Redis 7.0 or newer"
    )


def _text(reply: RedisReply) -> str:
    """A reply that must be a string (a stream id)."""
    if isinstance(reply, str):
        return reply
    raise _unexpected(reply, "a stream id")


def _entries(reply: RedisReply) -> list[_Entry]:
    """Stream entries ``[[id, [field, value, ...]], ...]`` (``XRANGE``, ``XREVRANGE``).

    Fields whose name is not text are left out: no event has them.
    """
    if not isinstance(reply, list):
        raise _unexpected(reply, "stream entries")
    entries: list[_Entry] = []
    for entry in reply:
        if not isinstance(entry, list) or len(entry) != 2:
            raise _unexpected(entry, "a stream entry")
        entry_id, fields = entry
        if not isinstance(entry_id, str) or not isinstance(fields, list):
            raise _unexpected(entry, "a stream entry")
        names, values = fields[::2], fields[1::2]
        pairs = zip(names, values, strict=False)
        entries.append((entry_id, {name: value for name, value in pairs if isinstance(name, str)}))
    return entries


def _joined(reply: RedisReply) -> _Joined:
    """The join script's reply ``{top, first, gap, entries}``, checked."""
    if isinstance(reply, list) and len(reply) == 4:
        top, first, gap, entries = reply
        if isinstance(top, str) and isinstance(first, str) and isinstance(gap, int):
            return top, first, gap, _entries(entries)
    raise _unexpected(reply, "the reply of txsse's join script")


def newest_fields(redis: RedisConnection, key: str) -> Deferred[dict[str, str] | None]:
    """The text fields of the newest entry of the stream ``key`` (``XREVRANGE + - COUNT 1``).

    :param redis: the connection to the server that holds the stream.
    :param key: the stream's key.
    :returns: see :meth:`RedisStreamChannel.newest_fields`.
    """

    def fields(reply: RedisReply) -> dict[str, str] | None:
        entries = _entries(reply)
        if not entries:
            return None
        values = entries[0][1]
        return {name: value for name, value in values.items() if isinstance(value, str)}

    return redis.execute("XREVRANGE", key, "+", "-", "COUNT", "1").addCallback(fields)


def _parse_id(text: str) -> _StreamId:
    match = _ID.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Redis stream id")
    return int(match[1]), int(match[2])


def _id_text(ident: _StreamId) -> str:
    return f"{ident[0]}-{ident[1]}"


@implementer(IEventChannel)
class RedisStreamChannel:
    """An event channel stored in one Redis stream, shared by every process.

    :param redis: the connection for commands (the publish script, replays);
        several channels share one. It must be started (it is a service).
    :param key: the Redis key of the stream, also the name of its pub/sub channel.
    :param history: how many events to keep (``XADD MAXLEN ~ history``:
        Redis trims in whole nodes, so slightly more may be kept).
    :param block: kept for compatibility; unused since live events come
        through pub/sub.
    :param batch: kept for compatibility; unused.
    :param pubsub: the pub/sub connection to receive live events on; by
        default the one shared by every channel on ``redis`` (see
        :func:`~txsse.hub._pubsub.shared_pubsub`).
    :param retry_delay: seconds between attempts to read what was missed
        after a reconnection, while Redis does not answer.
    :raises ValueError: if ``history`` or ``batch`` is not a positive int,
        ``block`` is not positive or ``key`` is empty.
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
        pubsub: RedisPubSub | None = None,
        retry_delay: float = 0.5,
    ) -> None:
        check_count("history", history, minimum=1)
        check_count("batch", batch, minimum=1)
        if not key:
            raise ValueError("a Redis stream key must not be empty")
        check_seconds("block", block, optional=False)
        self.history = history
        self.key = key
        self._redis = redis
        self._pubsub = pubsub
        self._retry_delay = retry_delay
        self._live: dict[ISubscriber, None] = {}
        # Subscribers whose replay is being read: the events sent on meanwhile,
        # with their ids, to append to the replay.
        self._pending: dict[ISubscriber, list[_Item]] = {}
        # Subscribers whose replay went further than the channel: skip up to the id.
        self._skip: dict[ISubscriber, _StreamId] = {}
        # Pending subscribers whose buffered events have a hole (Redis lost some).
        self._broken: set[ISubscriber] = set()
        self._subscribed = False
        # The newest id sent on (None until the first replay says where the
        # stream stood once subscribed); messages are deduplicated against it.
        self._position: _StreamId | None = None
        # Messages held back while the channel is not caught up (before the
        # first replay, or while reading what a reconnection missed).
        self._backlog: list[_Item] | None = None
        # Messages of the current read from the pub/sub connection, sent on
        # together (one chunk per subscriber) when the read is over.
        self._batch: list[_Item] = []
        self._generation = 0

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
        """Append one event to the stream and publish it, atomically (one Lua script).

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
        args = [str(self.history), id or "*", "data", data]
        if event is not None:
            args += ["event", event]
        for name, value in (fields or {}).items():
            if name in ("data", "event"):
                return fail(ValueError(f"the field name {name!r} is reserved"))
            args += [name, value]
        d = _PUBLISH.run(self._redis, self.key, *args).addCallback(_text)
        return d.addErrback(self._refused)

    def newest_fields(self) -> Deferred[dict[str, str] | None]:
        """The fields of the newest entry of the stream (``XREVRANGE + - COUNT 1``).

        :returns: a Deferred firing with the entry's fields (``data``,
            ``event`` and those given to :meth:`publish`; a field whose
            value is not UTF-8 text is left out), or ``None`` if the stream is
            empty; it fails with :class:`~txsse.errors.ChannelUnavailable`
            while Redis is unreachable.
        """
        return newest_fields(self._redis, self.key)

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

    # Subscribing

    def _pubsub_connection(self) -> RedisPubSub:
        if self._pubsub is None:
            self._pubsub = shared_pubsub(self._redis)
        return self._pubsub

    def subscribe(
        self, subscriber: ISubscriber, last_event_id: str | None = None
    ) -> Deferred[Replay]:
        """Subscribe after reading the replay from Redis.

        The topic's pub/sub channel is subscribed first (with the first
        subscriber in this process), then the replay is read, so that nothing
        published in between is missed.

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
        if not self._subscribed:
            self._subscribed = True
            self._backlog = []
        d = Deferred.fromCoroutine(self._join_subscriber(subscriber, last_event_id or ""))
        return d

    async def _join_subscriber(self, subscriber: ISubscriber, after: str) -> Replay:
        try:
            await self._pubsub_connection().subscribe(self.key, self)
            reply = await self._join(after)
        except Exception:
            self._pending.pop(subscriber, None)
            self._broken.discard(subscriber)
            self._stop_if_idle()
            raise
        return self._joined(reply, subscriber)

    def _join(self, after: str) -> Deferred[_Joined]:
        return _JOIN.run(self._redis, self.key, after, "1").addCallback(_joined)

    def _joined(self, reply: _Joined, subscriber: ISubscriber) -> Replay:
        top, first, gap, entries = reply
        covered = _parse_id(top)
        if self._position is None and subscriber in self._pending:
            # The first replay since subscribing: the stream stood at ``top``.
            self._position = covered
            self._catch_up([])
        chunk = b"".join(c for _, c in self._format(entries))
        buffered = self._pending.pop(subscriber, None)
        replay = Replay(chunk, bool(gap), first or None, top)
        if buffered is None:  # unsubscribed meanwhile
            return replay
        if subscriber in self._broken:
            self._broken.discard(subscriber)
            self._stop_if_idle()
            raise ChannelUnavailable("Redis lost events while the subscriber joined; retry")
        more = [item for item in buffered if item[0] > covered]
        if more:
            replay = replay._replace(chunk=chunk + b"".join(c for _, c in more))
            covered = more[-1][0]
        assert self._position is not None
        if covered > self._position:
            self._skip[subscriber] = covered
        else:
            self._live[subscriber] = None
        # The resume point (Replay.position, issue 10): everything up to ``covered``
        # is in the replay, everything after it comes live. "0-0" for an empty
        # stream, which the join script accepts as "from the beginning".
        return replay._replace(position=_id_text(covered))

    def unsubscribe(self, subscriber: ISubscriber) -> None:
        """Stop sending to ``subscriber``; idempotent. The last one leaves the pub/sub channel."""
        self._live.pop(subscriber, None)
        self._pending.pop(subscriber, None)
        self._skip.pop(subscriber, None)
        self._broken.discard(subscriber)
        self._stop_if_idle()

    def close(self) -> Deferred[None]:
        """End every subscriber and leave the pub/sub channel; idempotent.

        Called when the topic is dropped: afterwards the channel holds no
        Redis subscription and no memory beyond the object itself (it can
        still be subscribed to again).

        :returns: a Deferred that has fired.
        """
        self._end_all()
        self._stop()
        return succeed(None)

    def _stop_if_idle(self) -> None:
        if not self.subscriber_count:
            self._stop()

    def _stop(self) -> None:
        if self._subscribed:
            self._subscribed = False
            self._position = None
            self._backlog = None
            self._batch = []
            self._generation += 1
            self._pubsub_connection().unsubscribe(self.key, self)

    # Live events (the pub/sub connection calls these)

    def message(self, payload: str) -> None:
        """One message of the topic's pub/sub channel: id, event type, data, one per line."""
        id_text, _, rest = payload.partition("\n")
        event, _, data = rest.partition("\n")
        try:
            item = (_parse_id(id_text), format_event(data, event=event or None, id=id_text))
        except ValueError:
            self._log.warn("ignoring a malformed message on {key}", key=self.key)
            return
        if self._backlog is not None:
            self._backlog.append(item)
        else:
            self._batch.append(item)

    def flush(self) -> None:
        """Send on the messages of one read from the pub/sub connection, as one chunk."""
        batch, self._batch = self._batch, []
        if batch:
            self._deliver(batch)

    def resubscribed(self) -> None:
        """Subscribed again after a lost connection: read what was missed from the stream."""
        if not self._subscribed:
            return
        self.flush()
        self._backlog = []
        self._generation += 1
        if self._position is None:
            # No replay has said where the stream stood: the joins in flight
            # cannot know what they missed; they fail and their clients retry.
            self._broken.update(self._pending)
            return
        Deferred.fromCoroutine(self._read_missed(self._generation)).addErrback(
            lambda f: self._log.failure("catching up on {key} failed", f, key=self.key)
        )

    async def _read_missed(self, generation: int) -> None:
        while True:
            position = self._position
            if generation != self._generation or position is None:
                return
            try:
                top, _first, gap, entries = await self._join(_id_text(position))
                break
            except (ChannelUnavailable, txredisapi.ResponseError):
                await deferLater(self._redis.reactor, self._retry_delay, lambda: None)
        if generation != self._generation:
            return
        if gap:
            self._log.warn(
                "Redis stream {key} no longer holds the events after {cursor}; "
                "ending its subscribers so that they resume from the history",
                key=self.key,
                cursor=_id_text(position),
            )
            self._end_all()
            self._position = _parse_id(top)
        self._catch_up(self._format(entries))
        self._stop_if_idle()

    def _catch_up(self, items: list[_Item]) -> None:
        """Send ``items`` read from the stream, then the messages held back meanwhile."""
        backlog, self._backlog = self._backlog or [], None
        self._deliver(items)
        self._deliver(backlog)

    def _format(self, entries: list[_Entry]) -> list[_Item]:
        """Encode stream entries as event bytes, with their ids."""
        items: list[_Item] = []
        for entry_id, values in entries:
            data, event = values.get("data", ""), values.get("event") or None
            try:
                if not isinstance(data, str) or not isinstance(event, str | None):
                    raise ValueError("its data or event type is not UTF-8 text")
                chunk = format_event(data, event=event, id=entry_id)
            except ValueError:
                self._log.warn(
                    "skipping entry {id} of Redis stream {key}: not an encodable event",
                    id=entry_id,
                    key=self.key,
                )
                continue
            items.append((_parse_id(entry_id), chunk))
        return items

    def _deliver(self, items: list[_Item]) -> None:
        """Send the events newer than the position to every subscriber (one chunk each)."""
        position = self._position
        if position is not None and items and items[0][0] <= position:
            items = [item for item in items if item[0] > position]
        if not items:
            return
        self._position = items[-1][0]
        chunk = items[0][1] if len(items) == 1 else b"".join(c for _, c in items)
        for subscriber in tuple(self._live):
            self._send(subscriber, chunk)
        for buffered in self._pending.values():
            buffered.extend(items)
        for subscriber, until in tuple(self._skip.items()):
            part = b"".join(c for i, c in items if i > until)
            if items[-1][0] >= until:
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
        """End every live subscriber (they resume from the history); the joins in flight fail."""
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
