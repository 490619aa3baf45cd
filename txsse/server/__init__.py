"""Serving event streams with twisted.web: resources, channels, routing.

The public API is re-exported here; the modules behind it are private.
"""

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
    "Replay",
    "last_event_id",
]
