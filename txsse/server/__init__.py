"""Serving event streams with twisted.web: resources, channels, routing.

The public API is re-exported here; the modules behind it are private.
"""

from typing import Any

from txsse.server._channel import IEventChannel, ISubscriber, Replay
from txsse.server._memory import MemoryChannel
from txsse.server._resource import EventStreamResource, last_event_id
from txsse.server._router import ChannelRouter
from txsse.server._service import EventStreamService

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


def __getattr__(name: str) -> Any:
    """The Redis names, kept here for compatibility: they live in :mod:`txsse.hub`.

    They are imported on first use, since they need ``pip install txsse[redis]``.
    """
    if name in ("RedisStreamChannel", "RedisConnection"):
        import txsse.hub

        return getattr(txsse.hub, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
