"""The event queue behind ``EventSource.next()``: a ``DeferredQueue`` on a deque."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Generic, NoReturn, TypeVar

from twisted.internet.defer import Deferred, DeferredQueue
from twisted.python.failure import Failure

from txsse._event import Event
from txsse.errors import StreamClosed

_T = TypeVar("_T")


class Pending(deque[Event]):
    """The queue's backlog: a deque, so taking from the front is O(1).

    ``DeferredQueue`` calls ``pending.pop(0)``; a deque's ``pop`` takes no index.
    """

    def pop(self, index: int = -1) -> Event:
        """Remove and return the first (``index=0``) or last event.

        :param index: 0 or -1.
        :returns: the event.
        """
        return self.popleft() if index == 0 else super().pop()


class EventQueue(DeferredQueue[Event]):
    """A ``DeferredQueue`` that tells its source whenever an event is taken."""

    def __init__(self, taken: Callable[[], None]) -> None:
        super().__init__()
        self.pending: Pending = Pending()  # type: ignore[assignment]
        self._taken = taken

    def get(self) -> Deferred[Event]:
        """Take the next event, as :meth:`DeferredQueue.get`.

        :returns: a Deferred that fires with the next event.
        """
        result = super().get()
        self._taken()
        return result


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

    def __await__(self) -> Generator[Any, None, _T]:
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
