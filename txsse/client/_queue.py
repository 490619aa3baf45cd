"""The event queue behind ``EventSource.next()``: ``source.queue``.

It has :class:`~twisted.internet.defer.DeferredQueue`'s interface but is the
source's own: readers waiting in :meth:`EventQueue.get` are woken by the
source's delivery (after the event's listeners, never from inside the parser
or from inside :meth:`EventQueue.put`), and taking an event can resume a
transport paused for back-pressure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Generic, NoReturn, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txsse._event import Event
from txsse.errors import StreamClosed

_T = TypeVar("_T")


class EventQueue:
    """Events waiting to be read, and the readers waiting for one.

    ``DeferredQueue``'s interface: :meth:`get`, :meth:`put`, :attr:`pending`,
    :attr:`waiting`, :attr:`size` and :attr:`backlog` (both ``None``: the
    source bounds the queue by pausing the transport instead).

    :param wake: asks the source to hand queued events to waiting readers (on
        its delivery schedule).
    :param taken: called after an event is taken while :attr:`watched`.
    """

    size: int | None = None
    backlog: int | None = None

    def __init__(self, wake: Callable[[], None], taken: Callable[[], None]) -> None:
        #: The events not read yet, oldest first.
        self.pending: deque[Event] = deque()
        #: The ``get()`` Deferreds waiting for an event, first come first served.
        self.waiting: list[Deferred[Event]] = []
        #: Whether taking an event must be reported (back-pressure, draining).
        self.watched = False
        self._wake = wake
        self._taken = taken

    def get(self) -> Deferred[Event]:
        """Take the next event.

        :returns: a Deferred that fires with the next event: at once if one is
            queued and no earlier reader waits, or when one arrives. Cancelling
            it gives up the wait without losing an event.
        """
        pending = self.pending
        if pending and not self.waiting:
            return succeed(self.take())
        waiter: Deferred[Event] = Deferred(self._forget)
        self.waiting.append(waiter)
        if pending:
            self._wake()
        return waiter

    def ready(self) -> bool:
        """Whether an event can be taken at once (one is queued, no earlier reader waits)."""
        return bool(self.pending) and not self.waiting

    def take(self) -> Event:
        """Take the first queued event now (:meth:`ready` must be true).

        :returns: the event.
        """
        event = self.pending.popleft()
        if self.watched:
            self._taken()
        return event

    def take_batch(self, limit: int | None) -> list[Event]:
        """Take up to ``limit`` queued events now (all with ``None``), in order.

        :param limit: the most events taken, or ``None``.
        :returns: the events, maybe none.
        """
        pending = self.pending
        if limit is None or limit >= len(pending):
            batch = list(pending)
            pending.clear()
        else:
            batch = [pending.popleft() for _ in range(limit)]
        if batch and self.watched:
            self._taken()
        return batch

    def put(self, obj: Event) -> None:
        """Add an event at the end of the queue (waiting readers get it in order).

        :param obj: the event.
        """
        self.pending.append(obj)
        if self.waiting:
            self._wake()

    def hand_over(self) -> None:
        """Give queued events to the waiting readers, in order (the delivery calls this)."""
        waiting, pending = self.waiting, self.pending
        while waiting and pending:
            waiting.pop(0).callback(pending.popleft())
            if self.watched:
                self._taken()

    def _forget(self, waiter: Deferred[Event]) -> None:
        """A waiting ``get()`` was cancelled."""
        if waiter in self.waiting:
            self.waiting.remove(waiter)


class Ready(Generic[_T]):
    """An awaitable of a value that is already there: ``await`` returns it at once.

    Cheaper than an already-fired ``Deferred`` (which also works, through
    ``Deferred.__await__``): no callback list, no result checks; and it works in
    any coroutine, Twisted's or asyncio's.

    :param value: what ``await`` returns.
    """

    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value

    def __await__(self) -> Generator[None, None, _T]:
        """Return the value without suspending.

        :returns: the value.
        """
        return self.value
        yield  # type: ignore[unreachable]  # a generator: awaiting it never suspends


def end_iteration(failure: Failure) -> NoReturn:
    """Turn ``StreamClosed`` into ``StopAsyncIteration``; other failures pass."""
    if isinstance(failure.value, StreamClosed):
        raise StopAsyncIteration
    failure.raiseException()
