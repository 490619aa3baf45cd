"""Observing an event source: what happens besides events, and who is told.

Everything an :class:`~txsse.EventSource` reports besides events goes through
one mechanism: ``source.on(signal, callback)``. This module holds the signal
names, the values passed with them and the registry that calls the callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Literal, NamedTuple

from twisted.logger import Logger
from twisted.web.http_headers import Headers


class ReadyState(IntEnum):
    """The state of an event source, numbered as the browser's ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


class Opened(NamedTuple):
    """The ``open`` signal's value: the response that opened the stream.

    :ivar url: the URL that answered (after redirects).
    :ivar status: the HTTP status (200).
    :ivar headers: the response headers.
    """

    url: str
    status: int
    headers: Headers


class Reconnect(NamedTuple):
    """The ``reconnect`` signal's value: a scheduled reconnection.

    :ivar attempt: reconnections since the last healthy connection, this one
        included (1 for the first).
    :ivar delay: seconds until the reconnection.
    :ivar reason: the error that ended the previous connection or attempt.
    """

    attempt: int
    delay: float
    reason: BaseException


class Received(NamedTuple):
    """The ``data`` signal's value: one chunk of the response body, parsed.

    :ivar size: the chunk's length in bytes.
    :ivar events: how many events it completed.
    """

    size: int
    events: int


#: The signals ``EventSource.on`` accepts, and the value each callback receives:
#: ``state`` a :class:`ReadyState`, ``open`` an :class:`Opened`, ``error`` the
#: exception, ``comment`` a :class:`~txsse.Comment`, ``reconnect`` a
#: :class:`Reconnect`, ``retry`` the new reconnection time in seconds, ``data``
#: a :class:`Received` for every chunk of the body.
Signal = Literal["state", "open", "error", "comment", "reconnect", "retry", "data"]
SIGNALS: frozenset[str] = frozenset(
    {"state", "open", "error", "comment", "reconnect", "retry", "data"}
)


class Observers:
    """Callbacks by name; a callback that raises is logged and the others still run.

    Callbacks are kept as ``Callable[..., object]``: what they are called with
    depends on the name (:meth:`txsse.EventSource.on`'s overloads and
    :meth:`~txsse.EventSource.add_listener` check it), and each is called with
    one value.

    :param kinds: the names callbacks may be registered for; ``None`` accepts any.
    :param log: where failing callbacks are logged.
    """

    def __init__(self, kinds: frozenset[str] | None, log: Logger) -> None:
        self._kinds = kinds
        self._log = log
        self.by_name: dict[str, list[Callable[..., object]]] = {}

    def add(self, name: str, callback: Callable[..., object]) -> None:
        """Call ``callback(value)`` for every ``name`` reported.

        :param name: the signal or event type.
        :param callback: the callable.
        :raises ValueError: for a name this registry does not accept.
        :raises TypeError: when ``callback`` is not callable.
        """
        if self._kinds is not None and name not in self._kinds:
            raise ValueError(f"unknown signal {name!r}; use one of {sorted(self._kinds)}")
        if not callable(callback):
            raise TypeError(f"the callback must be callable, not {callback!r}")
        self.by_name.setdefault(name, []).append(callback)

    def remove(self, name: str, callback: object) -> None:
        """Stop calling ``callback`` for ``name``; unknown callbacks are ignored.

        :param name: the signal or event type.
        :param callback: the callable given to :meth:`add`.
        """
        callbacks = self.by_name.get(name)
        if callbacks and callback in callbacks:
            callbacks.remove(callback)
            if not callbacks:
                del self.by_name[name]

    def emit(self, name: str, value: object) -> None:
        """Call every callback registered for ``name`` with ``value``.

        :param name: the signal or event type.
        :param value: passed to each callback.
        """
        callbacks = self.by_name.get(name)
        if callbacks:
            self.call(callbacks, name, value)

    def call(self, callbacks: list[Callable[..., object]], name: str, value: object) -> None:
        """Call ``callbacks`` (a list from :attr:`by_name`) with ``value``.

        :param callbacks: the callables.
        :param name: what they observe, for the log.
        :param value: passed to each callback.
        """
        for callback in tuple(callbacks):
            try:
                callback(value)
            except Exception:
                self._log.failure(
                    "callback {callback!r} for {name!r} raised", callback=callback, name=name
                )
