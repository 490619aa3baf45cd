"""A clock for components on real sockets whose timeouts the test fires by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock


class HeldClock(Clock):
    """Timed calls wait for :meth:`advance`; zero-delay calls run on the real reactor.

    Give it as ``reactor=`` with a real ``agent=``: the bytes travel over real loopback
    sockets while every timeout (connect, idle, backoff) fires only when the test
    advances this clock, so no test depends on how fast a loaded machine is. The
    "next turn" calls (``callLater(0, ...)``) still run, on the real reactor's next turn.
    """

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> IDelayedCall:
        """Schedule ``callable``: on the real reactor if ``delay`` is 0, else on this clock."""
        if delay == 0:
            return reactor.callLater(0, callable, *args, **kw)  # type: ignore[attr-defined,no-any-return]
        return super().callLater(delay, callable, *args, **kw)
