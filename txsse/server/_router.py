"""ChannelRouter: several named channels under one URL prefix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from txsse._validate import check_count
from txsse.server._channel import IEventChannel
from txsse.server._resource import EventStreamResource

ChannelFactory = Callable[[str], IEventChannel]


class ChannelRouter(Resource):
    """Serve named channels: ``/prefix/<name>`` streams the channel ``name``.

    Unknown names go to ``default``: a channel shared by all of them, a
    factory that creates (and keeps) one channel per name, or ``None`` for a
    ``404``. A factory is limited to ``max_channels`` names so that URLs
    cannot exhaust memory; past that, unknown names get ``404``.

    :param channels: the channels known from the start, by name.
    :param default: what unknown names get (see above).
    :param max_channels: the most channels a factory may create.
    :param stream_options: keyword arguments for every
        :class:`EventStreamResource` (``keepalive``, ``retry``, ...).
    :raises ValueError: if a channel or the default is of the wrong type, or
        ``max_channels`` is not a non-negative int.
    """

    def __init__(
        self,
        channels: Mapping[str, IEventChannel] | None = None,
        *,
        default: IEventChannel | ChannelFactory | None = None,
        max_channels: int = 1000,
        **stream_options: Any,
    ) -> None:
        super().__init__()
        if default is not None and not (IEventChannel.providedBy(default) or callable(default)):
            raise ValueError(f"default must be a channel, a factory or None, not {default!r}")
        check_count("max_channels", max_channels)
        self._options = stream_options
        self._default = default
        self._max_channels = max_channels
        self._created = 0
        self._resources: dict[str, EventStreamResource] = {}
        self._shared: EventStreamResource | None = None
        for name, channel in (channels or {}).items():
            self.add_channel(name, channel)

    def add_channel(self, name: str, channel: IEventChannel) -> EventStreamResource:
        """Serve ``channel`` under ``name``.

        :returns: the resource serving it.
        :raises ValueError: if ``name`` is taken or ``channel`` is not a channel.
        """
        if name in self._resources:
            raise ValueError(f"a channel named {name!r} is already routed")
        resource = EventStreamResource(channel, **self._options)
        self._resources[name] = resource
        return resource

    def channel(self, name: str) -> IEventChannel:
        """The channel serving ``name``, creating it with the factory if needed.

        :raises KeyError: if ``name`` is unknown and there is no default (or
            the factory reached ``max_channels``).
        """
        return self._resource_for(name).channel

    def _resource_for(self, name: str) -> EventStreamResource:
        resource = self._resources.get(name)
        if resource is not None:
            return resource
        default = self._default
        if default is None:
            raise KeyError(name)
        if IEventChannel.providedBy(default):
            if self._shared is None:
                self._shared = EventStreamResource(default, **self._options)
            return self._shared
        if self._created >= self._max_channels:
            raise KeyError(name)
        channel = default(name)
        self._created += 1
        return self.add_channel(name, channel)

    def getChild(self, path: bytes, request: Request) -> IResource:
        """The stream resource for the channel named by the path segment."""
        try:
            return self._resource_for(path.decode("utf-8"))
        except (KeyError, UnicodeDecodeError):
            return notFound("No such event channel", "No event channel has this name.")

    def resources(self) -> list[EventStreamResource]:
        """Every stream resource created so far."""
        shared = [self._shared] if self._shared is not None else []
        return [*self._resources.values(), *shared]

    def close(self, retry: float | None = None, *, spread: bool = True) -> None:
        """Close every stream of every channel (see :meth:`EventStreamResource.close`)."""
        for resource in self.resources():
            resource.close(retry, spread=spread)
