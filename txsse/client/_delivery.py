"""The one place an event source calls its user's code from.

Everything the source tells its user, an event for a listener or a waiting
reader, a signal, a ``when_open()`` result, is queued here when it happens and
run by :meth:`Delivery.flush` once the state machine's input is over: user code
never runs inside a transition, so any callback may call ``close()``,
``restart()`` or ``next()``. What is queued on behalf of a state (a connection's
events, its ``open`` signal, a scheduled reconnection) is dropped if the source
has left that state by the time it would run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, overload

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txsse._event import Comment, Event
from txsse.client._queue import EventQueue
from txsse.client._signals import (
    SIGNALS,
    Observers,
    Opened,
    ReadyState,
    Received,
    Reconnect,
    Signal,
)

#: Something to run on the delivery schedule.
Action = Callable[[], None]


class Delivery:
    """Queued calls into user code, run in order outside the state machine.

    :param log: where failing callbacks are logged.
    :param taken: called after an event leaves the queue while it is watched.
    :param queue_on: whether events are queued for ``next()`` (``queue_size``
        is not 0).
    """

    def __init__(self, log: Logger, taken: Callable[[], None], *, queue_on: bool) -> None:
        self.queue = EventQueue(self.wake, taken)
        self.listeners = Observers(None, log)
        self.signals = Observers(SIGNALS, log)
        #: ``when_open()`` Deferreds.
        self.open_waiters: list[Deferred[Opened]] = []
        #: The machine's current state: actions owned by another state are dropped.
        self.current: object = None
        #: Whether a state-machine input is running (then nothing is delivered yet).
        self.busy = False
        self._queue_on = queue_on
        self._actions: deque[tuple[object, Action]] = deque()
        self._flushing = False

    def later(self, action: Action, owner: object = None) -> None:
        """Queue ``action``; it is dropped if ``owner`` is no longer the current state.

        :param action: the call.
        :param owner: the state it belongs to, or ``None`` for always.
        """
        self._actions.append((owner, action))

    @overload
    def signal(self, name: Literal["state"], value: ReadyState, owner: object = None) -> None: ...
    @overload
    def signal(self, name: Literal["open"], value: Opened, owner: object = None) -> None: ...
    @overload
    def signal(
        self, name: Literal["error"], value: BaseException, owner: object = None
    ) -> None: ...
    @overload
    def signal(
        self, name: Literal["reconnect"], value: Reconnect, owner: object = None
    ) -> None: ...
    @overload
    def signal(self, name: Literal["retry"], value: float, owner: object = None) -> None: ...
    @overload
    def signal(self, name: Literal["data"], value: Received, owner: object = None) -> None: ...
    def signal(self, name: Signal, value: object, owner: object = None) -> None:
        """Queue a signal for the ``on()`` observers of ``name``.

        Its overloads pair each name with the type of value that
        :meth:`txsse.EventSource.on`'s overloads promise its observers
        (``comment`` signals are sent by :meth:`items`).

        :param name: the signal.
        :param value: what the observers receive.
        :param owner: the state it belongs to, or ``None`` for always.
        """
        if name in self.signals.by_name:
            self._actions.append((owner, partial(self.signals.emit, name, value)))

    def flush(self) -> None:
        """Run the queued actions, in order, unless an input or a flush is running."""
        if self._flushing or self.busy:
            return
        self._flushing = True
        try:
            actions = self._actions
            while actions:
                owner, action = actions.popleft()
                if owner is None or owner is self.current:
                    action()
        finally:
            self._flushing = False

    def wake(self) -> None:
        """Have queued events handed to the waiting readers (on this schedule)."""
        self._actions.append((None, self.queue.hand_over))
        self.flush()

    def items(
        self,
        owner: object,
        items: Sequence[Event | Comment],
        interrupted: Callable[[Event], None],
    ) -> None:
        """Deliver a chunk's events and comments, in order.

        Each event goes to its listeners, then to the queue; comments to the
        ``comment`` observers. Without listeners and comment observers, events
        go to the queue at once.

        :param owner: the open state the chunk belongs to.
        :param items: what the chunk completed.
        :param interrupted: called with the last event delivered when a callback
            left the state in the middle of the chunk.
        """
        if self.listeners.by_name or "comment" in self.signals.by_name:
            self._actions.append((owner, partial(self._each, owner, items, interrupted)))
        elif self._queue_on:
            pending = self.queue.pending
            if len(items) == 1:
                item = items[0]
                if isinstance(item, Event):
                    pending.append(item)
            else:
                pending.extend([item for item in items if isinstance(item, Event)])
        if self.queue.waiting:
            self._actions.append((None, self.queue.hand_over))

    def _each(
        self,
        owner: object,
        items: Sequence[Event | Comment],
        interrupted: Callable[[Event], None],
    ) -> None:
        """Deliver item by item, stopping if a callback leaves the state."""
        by_type = self.listeners.by_name
        put = self.queue.pending.append if self._queue_on else None
        delivered: Event | None = None
        for item in items:
            if owner is not self.current:
                if delivered is not None:
                    interrupted(delivered)
                return
            if isinstance(item, Comment):
                self.signals.emit("comment", item)
                continue
            listeners = by_type.get(item.event)
            if listeners:
                self.listeners.call(listeners, item.event, item)
            if put is not None:
                put(item)
            delivered = item

    def opened(self, opened: Opened, owner: object) -> None:
        """Fire the ``when_open()`` waiters, then the ``open`` signal.

        :param opened: the response that opened the stream.
        :param owner: the open state.
        """
        self._actions.append((owner, partial(self._fire_open_waiters, opened)))
        self.signal("open", opened, owner)

    def _fire_open_waiters(self, opened: Opened) -> None:
        waiters, self.open_waiters = self.open_waiters, []
        for waiter in waiters:
            waiter.callback(opened)

    def failed(self, error: BaseException, owner: object) -> None:
        """Fail ``when_open()`` waiters, then waiting readers (after queued events).

        :param error: what they fail with.
        :param owner: the stopped state; readers are failed only while it lasts.
        """
        self._actions.append((None, self.queue.hand_over))
        self._actions.append((None, partial(self._fail_open_waiters, error)))
        self._actions.append((owner, partial(self._fail_readers, error)))

    def _fail_open_waiters(self, error: BaseException) -> None:
        waiters, self.open_waiters = self.open_waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def _fail_readers(self, error: BaseException) -> None:
        readers, self.queue.waiting = self.queue.waiting, []
        for reader in readers:
            reader.errback(error)

    def drop_queue(self, error: BaseException, drained: list[Deferred[None]]) -> None:
        """Forget queued events, fail waiting readers, then fire ``drained``.

        :param error: what waiting readers fail with.
        :param drained: Deferreds fired once the queue is dropped.
        """
        self._actions.append((None, partial(self._drop, error, drained)))

    def _drop(self, error: BaseException, drained: list[Deferred[None]]) -> None:
        self.queue.hand_over()
        self.queue.pending.clear()
        self.queue.watched = False
        self._fail_readers(error)
        for done in drained:
            done.callback(None)
