"""The one place that looks up the global reactor.

Every class that takes ``reactor=None`` calls :func:`default_reactor` when it needs
one, so that constructing an object never installs the default reactor before the
application has chosen its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer


def default_reactor(reactor: Any = None) -> Any:
    """``reactor`` itself, or the global reactor when it is ``None``.

    :param reactor: the reactor a caller was given, or ``None``.
    :returns: a reactor (installing Twisted's default one if none is installed yet).
    """
    if reactor is not None:
        return reactor
    from twisted.internet import reactor as global_reactor

    return global_reactor


@implementer(IReactorTime)
class GlobalClock:
    """The global reactor's clock, looked up on each use rather than at construction."""

    def seconds(self) -> float:
        """The reactor's current time."""
        return float(default_reactor().seconds())

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> IDelayedCall:
        """Schedule a call on the global reactor."""
        call: IDelayedCall = default_reactor().callLater(delay, callable, *args, **kw)
        return call

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        """The global reactor's scheduled calls."""
        calls: Sequence[IDelayedCall] = default_reactor().getDelayedCalls()
        return calls


__all__ = ["GlobalClock", "default_reactor"]
