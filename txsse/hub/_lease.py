"""RedisLease: at most one holder at a time among processes, for relays."""

from __future__ import annotations

import os
import socket
import uuid

from twisted.internet.defer import Deferred

from txsse._validate import check_seconds
from txsse.hub._redisconn import RedisConnection

# Both scripts are sent whole (EVAL), not by SHA as _redis's are: release runs
# once, at shutdown, where EVALSHA's NOSCRIPT retry would need a second round
# trip on a connection that is closing (the lease would then only expire).

# Take the lease if free, or extend it if we hold it; 1 if held afterwards.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """A named lease in Redis that expires unless its holder renews it.

    :param redis: the (started) connection.
    :param key: the Redis key of the lease.
    :param ttl: seconds the lease lasts after each :meth:`acquire`; renew
        well within it (every third of it, say).
    :param holder: this holder's identity; by default ``host:pid:random``.
    :raises ValueError: if ``ttl`` is not positive.
    """

    def __init__(
        self, redis: RedisConnection, key: str, *, ttl: float = 10.0, holder: str | None = None
    ) -> None:
        check_seconds("ttl", ttl, optional=False)
        self.key = key
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._redis = redis

    def acquire(self) -> Deferred[bool]:
        """Take the lease if it is free, or extend it if this holder has it.

        :returns: a Deferred firing with whether this holder holds the lease
            now; it fails with :class:`~txsse.errors.ChannelUnavailable` while
            Redis is unreachable.
        """
        ms = str(max(1, round(self.ttl * 1000)))
        d = self._redis.execute("EVAL", _ACQUIRE, 1, self.key, self.holder, ms)
        return d.addCallback(lambda held: held == 1)

    def release(self) -> Deferred[bool]:
        """Give the lease up if this holder has it, so another can take it at once.

        :returns: a Deferred firing with whether it was held; it fails with
            :class:`~txsse.errors.ChannelUnavailable` while Redis is unreachable.
        """
        d = self._redis.execute("EVAL", _RELEASE, 1, self.key, self.holder)
        return d.addCallback(lambda deleted: deleted == 1)
