"""Serving event streams with twisted.web: resources, channels, routing.

The public API is re-exported here; the modules behind it are private.
"""

from typing import TYPE_CHECKING

from txsse.server._channel import IEventChannel, ISubscriber, Replay
from txsse.server._memory import MemoryChannel
from txsse.server._resource import EventStreamResource, last_event_id
from txsse.server._router import ChannelRouter
from txsse.server._service import EventStreamService

if TYPE_CHECKING:  # imported lazily below: they need txsse[redis]
    from txsse.server._redis import RedisStreamChannel
    from txsse.server._redisconn import RedisConnection

__all__ = [
    "ChannelRouter",
    "EventStreamResource",
    "EventStreamService",
    "IEventChannel",
    "ISubscriber",
    "MemoryChannel",
    "RedisConnection",
    "RedisStreamChannel",
    "Replay",
    "last_event_id",
]


def __getattr__(name: str) -> object:
    """Import the Redis names on first use: they need ``pip install txsse[redis]``."""
    if name == "RedisStreamChannel":
        from txsse.server._redis import RedisStreamChannel

        return RedisStreamChannel
    if name == "RedisConnection":
        from txsse.server._redisconn import RedisConnection

        return RedisConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
