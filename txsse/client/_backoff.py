"""How long to wait before the next reconnection.

The growth is Twisted's own :func:`twisted.application.internet.backoffPolicy`;
this module layers the SSE rules on top: the base delay is the source's
reconnection time (replaced by the server's latest valid ``retry:``), the jitter
is proportional to the delay, and nothing, not even a huge ``retry:``, waits
longer than the maximum.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from twisted.application.internet import backoffPolicy

#: Default fraction of the delay by which jitter may shorten or lengthen it.
DEFAULT_JITTER = 0.2


class ReconnectDelay:
    """The reconnection delay policy of one event source.

    The delay before reconnection number ``failures + 1`` (``failures`` counts
    the reconnections since the last healthy connection, starting at 0) is
    ``base * factor ** failures``, capped at ``maximum``, then moved by up to
    ``± jitter`` of itself, and capped again.

    :param base: the initial reconnection time, in seconds.
    :param maximum: the longest delay, in seconds.
    :param factor: the growth per consecutive failure.
    :param jitter: the fraction of the delay by which it may vary (0 to 1).
    :param random: returns a float in [0, 1); injectable for tests.
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
        random: Callable[[], float] = random.random,
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
        self._random = random

    def server_retry(self, milliseconds: int) -> None:
        """The server sent ``retry:``: it becomes the base, within the maximum.

        :param milliseconds: the value of the ``retry:`` field.
        """
        self.base = min(milliseconds / 1000.0, self.maximum)

    def delay(self, failures: int, *, at_least: float = 0.0) -> float:
        """The delay before the next reconnection.

        :param failures: reconnections since the last healthy connection (0
            for the first one).
        :param at_least: a floor asked for by the server (``Retry-After``),
            honoured up to the maximum.
        :returns: seconds to wait, between 0 and the maximum.
        """
        grown = backoffPolicy(
            initialDelay=self.base,
            maxDelay=self.maximum,
            factor=self.factor,
            jitter=lambda: 0.0,
        )(failures)
        spread = grown * self.jitter * (2.0 * self._random() - 1.0)
        return min(max(grown + spread, at_least, 0.0), self.maximum)
