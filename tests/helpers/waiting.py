"""Waiting for a condition with a deadline: the one polling helper of the tests.

:func:`until` lets the reactor run (in ``async`` tests); :func:`block_until` blocks a plain
thread (the blocking facade's tests, starting a subprocess). Both return the condition's
first true value and fail with :class:`AssertionError` naming what never happened.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.task import deferLater

T = TypeVar("T")

#: How long a loopback test waits for anything, in seconds (a timeout, never a measurement).
TIMEOUT = 10.0
_POLL = 0.01


class _Deadline:
    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.end = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise AssertionError(f"timed out after {self.timeout} s waiting for {self.what}")


async def until(
    condition: Callable[[], T | Awaitable[T]], what: str = "", timeout: float = TIMEOUT
) -> T:
    """Let the reactor run until ``condition()`` is true (awaited if it returns an awaitable).

    :param condition: checked now, then every 10 ms.
    :param what: what is waited for, for the failure message.
    :param timeout: seconds before failing.
    :returns: the first true value of ``condition()``.
    :raises AssertionError: after ``timeout`` seconds.
    """
    deadline = _Deadline(what or repr(condition), timeout)
    while True:
        value: Any = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        deadline.check()
        await deferLater(reactor, _POLL)  # type: ignore[arg-type]


def block_until(condition: Callable[[], T], what: str = "", timeout: float = TIMEOUT) -> T:
    """Block this (non-reactor) thread until ``condition()`` is true.

    :param condition: checked now, then every 10 ms.
    :param what: what is waited for, for the failure message.
    :param timeout: seconds before failing.
    :returns: the first true value of ``condition()``.
    :raises AssertionError: after ``timeout`` seconds.
    """
    deadline = _Deadline(what or repr(condition), timeout)
    while not (value := condition()):
        deadline.check()
        time.sleep(_POLL)
    return value
