"""The one place that looks up the global reactor.

Every class that takes ``reactor=None`` calls :func:`default_reactor` when it needs
one, so that constructing an object never installs the default reactor before the
application has chosen its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

_Reactor = TypeVar("_Reactor")


def default_reactor(reactor: _Reactor | None = None) -> _Reactor:
    """``reactor`` itself, or the global reactor when it is ``None``.

    The result has the type of ``reactor``, or, when none is given, the type the
    caller asks for (``clock: IReactorTime = default_reactor()``): the global
    reactor provides every reactor interface txsse uses.

    :param reactor: the reactor a caller was given, or ``None``.
    :returns: a reactor (installing Twisted's default one if none is installed yet).
    """
    if reactor is not None:
        return reactor
    from twisted.internet import reactor as global_reactor

    return cast(_Reactor, global_reactor)


@implementer(IReactorTime)
class GlobalClock:
    """The global reactor's clock, looked up on each use rather than at construction."""

    def seconds(self) -> float:
        """The reactor's current time."""
        return _global_clock().seconds()

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        """Schedule a call on the global reactor."""
        return _global_clock().callLater(delay, callable, *args, **kw)

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        """The global reactor's scheduled calls."""
        return _global_clock().getDelayedCalls()


def _global_clock() -> IReactorTime:
    clock: IReactorTime = default_reactor()
    return clock


__all__ = ["GlobalClock", "default_reactor"]
