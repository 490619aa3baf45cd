"""How long to wait before the next reconnection.

The growth is Twisted's own :func:`twisted.application.internet.backoffPolicy`;
this module layers the SSE rules on top (WHATWG "reestablish the connection":
wait the reconnection time, and optionally more):

- after a healthy connection the wait is the reconnection time (the source's
  ``reconnect_delay``, replaced by the server's latest valid ``retry:``);
- after consecutive failures it grows from ``max(reconnection time,``
  :data:`FAILURE_FLOOR` ``)``, so that ``retry: 0`` cannot turn backoff off;
- jitter only lengthens the wait, by up to a fraction of it;
- nothing, not even a huge ``retry:`` or ``Retry-After``, waits longer than the
  maximum.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable

from twisted.application.internet import backoffPolicy

#: Default fraction of the delay by which jitter may lengthen it.
DEFAULT_JITTER = 0.2

#: Seconds: the shortest wait after a failed connection, whatever ``retry:`` says
#: (the growth starts here when the reconnection time is shorter). Capped by the
#: source's maximum delay.
FAILURE_FLOOR = 0.5


class ReconnectDelay:
    """The reconnection delay policy of one event source.

    ``failures`` counts the consecutive failed connections, the one that just
    ended included; 0 means the connection that just ended was healthy. The
    delay is the base for 0 failures, and
    ``max(base, floor) * factor ** (failures - 1)`` after failures, capped at
    ``maximum``; then jitter adds up to ``jitter`` of it (never past the
    maximum).

    :param base: the initial reconnection time, in seconds.
    :param maximum: the longest delay, in seconds.
    :param factor: the growth per consecutive failure.
    :param jitter: the fraction of the delay that may be added to it (0 to 1).
    :param random: returns a float in [0, 1): the jitter's draw;
        :func:`random.random` by default, injectable for tests.
    :param floor: the shortest delay after a failure, in seconds.
    :raises ValueError: for a negative delay, a maximum below the base, a factor
        below 1 or a jitter outside [0, 1].
    """

    def __init__(
        self,
        base: float,
        maximum: float,
        *,
        factor: float = 2.0,
        jitter: float = DEFAULT_JITTER,
        random: Callable[[], float] | None = None,
        floor: float = FAILURE_FLOOR,
    ) -> None:
        if not (math.isfinite(base) and math.isfinite(maximum)):
            raise ValueError("reconnect_delay and max_reconnect_delay must be finite numbers")
        if base < 0:
            raise ValueError(f"reconnect_delay must be >= 0, not {base!r}")
        if maximum < base:
            raise ValueError(
                f"max_reconnect_delay ({maximum!r}) must be >= reconnect_delay ({base!r})"
            )
        if factor < 1:
            raise ValueError(f"the backoff factor must be >= 1, not {factor!r}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {jitter!r}")
        self.base = base
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.floor = floor
        self._random = random or _random.random

    def server_retry(self, milliseconds: int) -> None:
        """The server sent ``retry:``: it becomes the base, within the maximum.

        :param milliseconds: the value of the ``retry:`` field.
        """
        self.base = min(milliseconds / 1000.0, self.maximum)

    def delay(self, failures: int, *, at_least: float = 0.0) -> float:
        """The delay before the next reconnection.

        :param failures: consecutive failed connections, the last one included
            (0 when the connection that just ended was healthy).
        :param at_least: a floor asked for by the server (``Retry-After``),
            honoured up to the maximum.
        :returns: seconds to wait, between the reconnection time and the
            maximum.
        """
        if failures <= 0:
            grown = self.base
        else:
            grown = backoffPolicy(
                initialDelay=max(self.base, self.floor),
                maxDelay=self.maximum,
                factor=self.factor,
                jitter=lambda: 0.0,
            )(failures - 1)
        longer = grown + grown * self.jitter * self._random()
        return min(max(longer, at_least), self.maximum)
