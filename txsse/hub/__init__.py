"""The event hub behind ``twistd sse-hub``: topics over HTTP, memory or Redis Streams.

:class:`Hub` and :class:`UpstreamRelay` need nothing beyond txsse; the Redis names
(:class:`RedisStreamChannel`, :class:`RedisConnection`, :class:`RedisPubSub`,
:class:`RedisServers`, :class:`RedisLease`) are
imported on first use, since they need ``pip install txsse[redis]``.
"""

from typing import TYPE_CHECKING

from txsse.hub._relay import UpstreamRelay
from txsse.hub._resource import TOPIC_NAME, Hub

if TYPE_CHECKING:  # imported on first use at run time (see __getattr__)
    from txsse.hub._lease import RedisLease
    from txsse.hub._pubsub import RedisPubSub
    from txsse.hub._redis import RedisStreamChannel
    from txsse.hub._redisconn import RedisConnection
    from txsse.hub._servers import RedisServers

__all__ = [
    "TOPIC_NAME",
    "Hub",
    "RedisConnection",
    "RedisLease",
    "RedisPubSub",
    "RedisServers",
    "RedisStreamChannel",
    "UpstreamRelay",
]

_REDIS = {
    "RedisStreamChannel": "txsse.hub._redis",
    "RedisConnection": "txsse.hub._redisconn",
    "RedisLease": "txsse.hub._lease",
    "RedisPubSub": "txsse.hub._pubsub",
    "RedisServers": "txsse.hub._servers",
}


def __getattr__(name: str) -> object:
    """Import the Redis names on first use: they need ``pip install txsse[redis]``."""
    module = _REDIS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    try:
        imported = import_module(module)
    except ModuleNotFoundError as error:
        if error.name not in ("txredisapi", "hiredis"):
            raise
        raise ModuleNotFoundError(
            f"{name} needs the Redis client txredisapi: pip install 'txsse[redis]'",
            name=error.name,
        ) from None
    return getattr(imported, name)
