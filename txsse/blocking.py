"""A blocking event source, for code that does not run a reactor.

Scripts, Django or Flask workers, notebooks and plain threads get the same
:class:`txsse.EventSource`, with the same options and behaviour, behind ordinary
blocking calls::

    from txsse.blocking import EventSource

    with EventSource("https://example.com/events") as source:
        for event in source:
            print(event.event, event.data)

A reactor runs in one background daemon thread shared by every blocking source
of the process (started on first use; if the global reactor already runs in a
background thread, as with ``crochet``, that one is used instead). Exceptions
reach the calling thread with the same types as in the asynchronous API, a
``next()`` can time out, be interrupted with Ctrl-C, or be woken by
:meth:`EventSource.close` from another thread.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from twisted.internet.interfaces import IReactorFromThreads, IReactorTime

from txsse._blocking import ReactorStopped, reactor_thread, shutdown
from txsse._event import Comment, Event
from txsse.client import EventSource as _AsyncEventSource
from txsse.client import Opened, ReadyState, Received, Reconnect, Signal
from txsse.errors import StreamClosed

_T = TypeVar("_T")


def _create(url: str, reactor: IReactorTime, options: dict[str, Any]) -> _AsyncEventSource:
    """Make and start the asynchronous source (in the reactor thread).

    ``options`` are :class:`txsse.EventSource`'s keyword arguments, passed on
    unchanged: it checks them (typing them here would copy its signature).
    """
    source = _AsyncEventSource(url, reactor=reactor, **options)
    source.startService()
    return source


#: The most queued events one hop into the reactor thread brings back
#: (``next_batch``): a thread switch per batch instead of one per event.
_BATCH = 256


def _abandon(reactor: IReactorFromThreads, source: _AsyncEventSource) -> None:
    """Close a source whose blocking wrapper was forgotten (any thread, never blocks)."""
    with contextlib.suppress(Exception):  # the reactor may already be gone at exit
        reactor.callFromThread(source.close)


class EventSource:
    """A reconnecting Server-Sent Events client with a blocking interface.

    It wraps a :class:`txsse.EventSource` running in txsse's reactor thread,
    started at once. Every option of :class:`txsse.EventSource` is accepted
    except ``reactor``. Use it as a context manager (closing it on exit) and
    iterate over it, or call :meth:`next`.

    Callbacks given to :meth:`add_listener` and :meth:`on` run in the reactor
    thread: keep them short, make them thread-safe, and do not call blocking
    txsse methods from them (that raises :exc:`RuntimeError`), except
    :meth:`close`.

    :param url: the absolute ``http`` or ``https`` URL of the stream.
    :param options: keyword options of :class:`txsse.EventSource`
        (``headers``, ``last_event_id``, ``reconnect_delay``, ``policy``,
        ``queue_size``...).
    :raises TypeError: when ``reactor`` is given.
    :raises ValueError: for an invalid URL, header or option (as
        :class:`txsse.EventSource`).
    """

    def __init__(self, url: str, **options: Any) -> None:
        if "reactor" in options:
            raise TypeError(
                "txsse.blocking.EventSource runs on txsse's reactor thread: "
                "do not pass reactor=; use txsse.EventSource in reactor code"
            )
        self._thread = reactor_thread()
        self._url = url
        self._leftover: deque[Event] = deque()
        self._source = self._thread.call(_create, url, IReactorTime(self._thread.reactor), options)
        self._finalizer = weakref.finalize(self, _abandon, self._thread.reactor, self._source)

    def __repr__(self) -> str:
        return f"<txsse.blocking.EventSource {self._url!r}>"

    # Reading events

    def next(self, timeout: float | None = None) -> Event:
        """Wait for the next event.

        :param timeout: seconds to wait at most; ``None`` waits as long as it
            takes (reconnections included).
        :returns: the next :class:`~txsse.Event`.
        :raises TimeoutError: when no event arrived within ``timeout``; no
            event is lost, the next call gets it.
        :raises StreamClosed: once the source is closed (also when it is closed
            from another thread while this call waits).
        :raises ConnectionFailed: when the source failed for good (HTTP 204,
            a wrong content type...), same type as in the asynchronous API.
        :raises KeyboardInterrupt: on Ctrl-C while waiting; no event is lost.
        """
        if self._thread.in_reactor_thread():
            raise RuntimeError(
                "next() was called from the reactor thread (a callback), where it would "
                "wait forever; read events in another thread, or use add_listener"
            )
        if self._leftover:
            try:
                return self._leftover.popleft()
            except IndexError:  # another thread took it
                pass
        try:
            with self._closed_if_stopped():
                call = self._thread.submit(self._source.next_batch, _BATCH)
                batch = call.result(timeout, orphan=self._leftover.extend)
        except TimeoutError:
            raise TimeoutError(f"no event from {self._url} within {timeout} seconds") from None
        self._leftover.extend(batch[1:])
        return batch[0]

    def __iter__(self) -> EventSource:
        """Iterate over the events; the loop ends when the source is closed."""
        return self

    def __next__(self) -> Event:
        """The next event for a ``for`` loop.

        :returns: the event.
        :raises StopIteration: once the source is closed.
        :raises ConnectionFailed: when the source failed for good.
        """
        try:
            return self.next()
        except StreamClosed:
            raise StopIteration from None

    def when_open(self, timeout: float | None = None, *, fail_on_error: bool = False) -> Opened:
        """Wait until the stream is open.

        :param timeout: seconds to wait at most; ``None`` for no limit.
        :param fail_on_error: raise the first error reported while waiting (a
            refused connection...) instead of waiting through the reconnections
            (see :meth:`txsse.EventSource.when_open`).
        :returns: the :class:`~txsse.Opened` of the current connection.
        :raises TimeoutError: when it did not open within ``timeout``; the last
            connection error (connection refused, an HTTP 503...), if there was
            one, is in the message and is its ``__cause__``.
        :raises StreamClosed: when the source is closed first.
        :raises ConnectionFailed: when the source failed for good.
        :raises TransientError: with ``fail_on_error``, the first error reported.
        """
        try:
            with self._closed_if_stopped():
                call = self._thread.submit(self._source.when_open, fail_on_error=fail_on_error)
                opened = call.result(timeout)
        except TimeoutError:
            last = self._source.last_error
            why = f"; the last attempt failed: {last}" if last is not None else ""
            raise TimeoutError(f"{self._url} did not open within {timeout} seconds{why}") from last
        return opened

    # Lifecycle

    def close(self, drain: float | None = None) -> None:
        """Close the source: drop the connection, stop reconnecting. Idempotent.

        Safe from any thread, including the reactor thread (a callback). A
        :meth:`next` waiting in another thread raises
        :class:`~txsse.errors.StreamClosed`.

        :param drain: ``None`` forgets events not read yet; a number of seconds
            lets :meth:`next` still return them for up to that long.
        """
        if drain is None:
            self._leftover.clear()
        if self._thread.in_reactor_thread():
            self._source.close(drain)
            return
        with contextlib.suppress(ReactorStopped):
            self._thread.call(_close, self._source, drain)

    def restart(self) -> None:
        """Drop the current connection and reconnect now (or start again after close)."""
        with self._closed_if_stopped():
            self._thread.call(self._source.restart)

    def __enter__(self) -> EventSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # State

    @property
    def url(self) -> str:
        """The stream's URL, as given."""
        return self._url

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING``, ``OPEN`` or ``CLOSED``."""
        return self._read(lambda source: source.ready_state)

    @property
    def last_event_id(self) -> str:
        """The last event ID: what the next connection sends as ``Last-Event-ID``."""
        return self._read(lambda source: source.last_event_id)

    @property
    def last_error(self) -> BaseException | None:
        """The last error reported (network, timeout, status...), or ``None``."""
        return self._read(lambda source: source.last_error)

    @property
    def reconnect_delay(self) -> float:
        """The base reconnection time in seconds (the server's ``retry:`` if it sent one)."""
        return self._read(lambda source: source.reconnect_delay)

    def _read(self, getter: Callable[[_AsyncEventSource], _T]) -> _T:
        """Read the asynchronous source's state in the reactor thread."""
        if self._thread.in_reactor_thread():
            return getter(self._source)
        with self._closed_if_stopped():
            return self._thread.call(getter, self._source)

    @contextlib.contextmanager
    def _closed_if_stopped(self) -> Iterator[None]:
        """Calls into the reactor thread: a stopped reactor means a closed source."""
        try:
            yield
        except ReactorStopped:
            raise StreamClosed(f"the event source for {self._url} was shut down") from None

    # Callbacks (run in the reactor thread)

    def add_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Call ``callback(event)`` in the reactor thread for every event of a type.

        :param event_type: the ``event:`` field (``"message"`` by default).
        :param callback: the callable; it must be thread-safe.
        """
        self._read(lambda source: source.add_listener(event_type, callback))

    def remove_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Undo :meth:`add_listener`.

        :param event_type: the event type.
        :param callback: the callable.
        """
        self._read(lambda source: source.remove_listener(event_type, callback))

    @overload
    def on(self, signal: Literal["state"], callback: Callable[[ReadyState], object]) -> None: ...
    @overload
    def on(self, signal: Literal["open"], callback: Callable[[Opened], object]) -> None: ...
    @overload
    def on(self, signal: Literal["error"], callback: Callable[[BaseException], object]) -> None: ...
    @overload
    def on(self, signal: Literal["comment"], callback: Callable[[Comment], object]) -> None: ...
    @overload
    def on(self, signal: Literal["reconnect"], callback: Callable[[Reconnect], object]) -> None: ...
    @overload
    def on(self, signal: Literal["retry"], callback: Callable[[float], object]) -> None: ...
    @overload
    def on(self, signal: Literal["data"], callback: Callable[[Received], object]) -> None: ...
    def on(self, signal: Signal, callback: Callable[..., object]) -> None:
        """Observe the source (see :meth:`txsse.EventSource.on`), in the reactor thread.

        :param signal: ``"state"``, ``"open"``, ``"error"``, ``"comment"``,
            ``"reconnect"``, ``"retry"`` or ``"data"``.
        :param callback: the callable; it must be thread-safe. Type checkers
            check that it takes the signal's value.
        :raises ValueError: for an unknown signal.
        """
        self._read(lambda source: source.on(signal, callback))

    def off(self, signal: Signal, callback: object) -> None:
        """Undo :meth:`on`.

        :param signal: the signal name.
        :param callback: the callable given to :meth:`on` (others are ignored).
        """
        self._read(lambda source: source.off(signal, callback))


def _close(source: _AsyncEventSource, drain: float | None) -> None:
    """Start closing ``source`` without waiting for a drain to finish."""
    source.close(drain)


__all__ = ["EventSource", "shutdown"]
