"""The channel contract: what :class:`EventStreamResource` needs from a backend.

A channel orders events, gives each one an id, keeps a bounded history for
resumption and fans published events out to its subscribers. The embedded
:class:`~txsse.server.MemoryChannel` does it all in-process and synchronously;
a Redis Streams channel does it asynchronously. The interface expresses both:
``publish`` and ``subscribe`` return either their result or a
:class:`~twisted.internet.defer.Deferred` of it, and callers that accept any
channel wrap the call in :func:`~twisted.internet.defer.maybeDeferred`.
"""

from __future__ import annotations

from typing import NamedTuple

from zope.interface import Attribute, Interface


class Replay(NamedTuple):
    """What a new subscriber missed, as :meth:`IEventChannel.subscribe` answers it.

    :ivar chunk: the encoded events (bytes from :func:`txsse.format_event`,
        concatenated, oldest first) that follow the requested id in the
        channel's history; ``b""`` when there are none.
    :ivar gap: ``True`` when the subscriber asked to resume after an id the
        channel does not hold any more (older than its history) or never
        issued (unknown, for example from before a restart). The channel can
        then not prove that nothing was missed: ``chunk`` holds the whole
        retained history and the resource tells the client about the gap.
        Always ``False`` when no id was requested.
    :ivar oldest_id: the id of the oldest event the channel still holds, or
        ``None`` when its history is empty.
    :ivar position: the channel's position at the moment of subscription: the
        id of the newest event then (the last one in ``chunk``, if any), or,
        when the channel holds no event, an id meaning "before the first
        event". A later ``subscribe(last_event_id=position)`` replays what was
        published since, without a gap (unless the history dropped some of
        it). The resource sends it to new clients as their resume point.
        ``None`` when the channel cannot name one (every resume is then
        reported as a gap, as with ``history=0``).
    """

    chunk: bytes = b""
    gap: bool = False
    oldest_id: str | None = None
    position: str | None = None


class ISubscriber(Interface):
    """One receiver of a channel's events (the resource's side of a stream)."""

    def send(chunk: bytes) -> None:
        """Receive the encoded bytes of one or more complete events.

        The same ``bytes`` object goes to every subscriber of a broadcast: the
        channel encodes each event once, never per subscriber. Called in
        publication order, never before the subscriber's :class:`Replay` was
        returned (or its Deferred fired), and never after
        :meth:`IEventChannel.unsubscribe`. Must not raise.

        :param chunk: complete event blocks, each ending with a blank line.
        """

    def end() -> None:
        """The channel can no longer deliver every event to this subscriber.

        For example the connection to its broker was lost. The subscriber
        ends its stream; the client reconnects and resumes from the history
        with ``Last-Event-ID``. The channel has already dropped the
        subscriber and calls nothing on it afterwards.
        """


class IEventChannel(Interface):
    """An ordered, bounded log of events with live fan-out to subscribers.

    Ids are opaque strings ordered by the channel (decimal counters for
    :class:`~txsse.server.MemoryChannel`, stream ids such as
    ``"1700000000000-0"`` for Redis). They must be valid ``id:`` values: no
    CR, LF or NUL, and not empty.
    """

    history = Attribute("How many events the channel keeps for resumption (an int).")

    def publish(data: str, event: str | None = None, id: str | None = None) -> object:
        """Append one event and send it to every subscriber.

        :param data: the event's data; line breaks become several ``data:`` lines.
        :param event: the event type, or ``None`` for clients' default ``message``.
        :param id: the id to give the event, or ``None`` to let the channel
            assign the next one in its order.
        :returns: the id assigned, as a ``str`` (synchronous channels) or a
            ``Deferred`` firing with it (asynchronous channels) once the event
            is stored; the Deferred fails if it could not be stored.
        :raises ValueError: (or fails with it) for data, event or id that
            cannot be encoded, or an id the channel already holds.
        """

    def publish_json(obj: object, event: str | None = None, id: str | None = None) -> object:
        """Publish ``obj`` encoded as compact JSON; otherwise as :meth:`publish`.

        :raises TypeError: (or fails with it) if ``obj`` is not JSON-serializable.
        """

    def subscribe(subscriber: ISubscriber, last_event_id: str | None = None) -> object:
        """Start sending events to ``subscriber``.

        :param subscriber: receives every event published after the replay.
        :param last_event_id: resume after this id (the client's
            ``Last-Event-ID``), or ``None`` to receive only new events.
        :returns: a :class:`Replay`, or a ``Deferred`` firing with one. Events
            in the replay are never sent again through
            :meth:`ISubscriber.send`, and nothing published after them is
            skipped: replay and live events join without loss or duplication.
            A Deferred fails if the history cannot be read; the subscriber is
            then not subscribed.
        """

    def unsubscribe(subscriber: ISubscriber) -> None:
        """Stop sending events to ``subscriber``, at once.

        Idempotent; also valid while ``subscribe``'s Deferred is pending (the
        channel then never calls the subscriber).
        """
