"""ChannelRouter: several named channels under one URL prefix, created and dropped on demand."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from txsse._reactor import default_reactor
from txsse._validate import check_count, check_seconds
from txsse.errors import ChannelLimitReached
from txsse.server._channel import IEventChannel
from txsse.server._resource import EventStreamResource

ChannelFactory = Callable[[str], IEventChannel]


@dataclass(eq=False)
class _Made:
    """The bookkeeping of one channel the factory made: what keeps it alive."""

    resource: EventStreamResource
    idle_since: float
    last_publish: float | None = None
    publishing: int = 0
    timer: IDelayedCall | None = None


class _Refused(Resource):
    """``503`` with ``Retry-After``: no room for a new channel now."""

    isLeaf = True

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__()
        self._message = message
        self._retry_after = retry_after

    def render(self, request: Request) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"%d" % self._retry_after)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return f"Service Unavailable: {self._message}\n".encode()


class _HeadOnly(Resource):
    """``HEAD`` of a channel not open yet: the stream's headers, and nothing created."""

    isLeaf = True

    def render_HEAD(self, request: Request) -> bytes:
        EventStreamResource._set_stream_headers(request)
        return b""


_HEAD_ONLY = _HeadOnly()


class ChannelRouter(Resource):
    """Serve named channels: ``/prefix/<name>`` streams the channel ``name``.

    Unknown names go to ``default``: a channel shared by all of them, a
    factory that creates one channel per name, or ``None`` for a ``404``.

    Channels the factory makes come and go. A ``GET`` of a new name creates
    its channel; a ``HEAD`` creates nothing. With ``idle_timeout``, a made
    channel that has no open stream and no publish in flight (through
    :meth:`publish`) for that many seconds is dropped, and made again on next
    use; history that lives outside the process (Redis) survives that, while
    a :class:`MemoryChannel` that was published to is kept ``history_ttl``
    seconds after its last publish, so that clients can still resume. A
    dropped channel's ``close()`` is called if it has one (a Redis channel
    releases its Redis subscription there). At most ``max_channels`` made
    channels are kept at once: past that, a new name is answered ``503`` with
    ``Retry-After``, and :meth:`channel` raises
    :class:`~txsse.errors.ChannelLimitReached`.

    :param channels: the channels known from the start, by name (never dropped).
    :param default: what unknown names get (see above).
    :param max_channels: the most channels the factory keeps at once, or
        ``None`` for no limit (then set ``idle_timeout``: URLs are user input).
    :param idle_timeout: seconds after which an idle channel the factory made
        is dropped, or ``None`` to keep every one for good.
    :param history_ttl: seconds an idle channel that was published to through
        :meth:`publish` is kept after its last publish (at least
        ``idle_timeout``); for channels that hold their history in this process.
        ``None``: ``idle_timeout`` alone decides.
    :param reactor: the :class:`IReactorTime` for the timers here and in
        every resource; the global reactor by default.
    :param stream_options: more keyword arguments for every
        :class:`EventStreamResource` (``keepalive``, ``retry``, ...).
    :raises ValueError: if a channel or the default is of the wrong type, or a
        limit or duration is out of range.
    """

    _log = Logger()

    def __init__(
        self,
        channels: Mapping[str, IEventChannel] | None = None,
        *,
        default: IEventChannel | ChannelFactory | None = None,
        max_channels: int | None = 1000,
        idle_timeout: float | None = None,
        history_ttl: float | None = None,
        reactor: IReactorTime | None = None,
        **stream_options: Any,
    ) -> None:
        super().__init__()
        if default is not None and not (IEventChannel.providedBy(default) or callable(default)):
            raise ValueError(f"default must be a channel, a factory or None, not {default!r}")
        check_count("max_channels", max_channels)
        self._idle_timeout = check_seconds("idle_timeout", idle_timeout, positive=False)
        self._history_ttl = check_seconds("history_ttl", history_ttl, positive=False)
        self._reactor = default_reactor(reactor)
        self._options = {"reactor": self._reactor, **stream_options}
        self._default = default
        self._max_channels = max_channels
        self._resources: dict[str, EventStreamResource] = {}
        self._made: dict[str, _Made] = {}
        self._shared: EventStreamResource | None = None
        self._closed = False
        for name, channel in (channels or {}).items():
            self.add_channel(name, channel)

    @property
    def retry_after(self) -> int:
        """Seconds a client refused for the channel limit should wait: ``Retry-After``."""
        return max(1, math.ceil(self._idle_timeout or 60))

    def add_channel(self, name: str, channel: IEventChannel) -> EventStreamResource:
        """Serve ``channel`` under ``name`` (for good: it is never dropped).

        :returns: the resource serving it.
        :raises ValueError: if ``name`` is taken or ``channel`` is not a channel.
        """
        if name in self._resources:
            raise ValueError(f"a channel named {name!r} is already routed")
        resource = self._serve(channel)
        self._resources[name] = resource
        return resource

    def _serve(self, channel: IEventChannel) -> EventStreamResource:
        """A new resource for ``channel``, refusing streams while the router is closed."""
        resource = EventStreamResource(channel, **self._options)
        if self._closed:
            resource.close()
        return resource

    def channel(self, name: str) -> IEventChannel:
        """The channel serving ``name``, creating it with the factory if needed.

        Do not keep a made channel: it may be dropped once idle. Get it again
        for each use, or publish with :meth:`publish`.

        :raises KeyError: if ``name`` is unknown and there is no default.
        :raises ~txsse.errors.ChannelLimitReached: (a ``KeyError``) if the
            factory keeps ``max_channels`` channels already.
        """
        return self._resource_for(name).channel

    def publish(self, name: str, data: str, event: str | None = None, **options: Any) -> object:
        """Publish on the channel ``name`` (created if needed) and keep it while it stores.

        A made channel counts the time of its last publish towards
        ``history_ttl`` and is not dropped while a publish is in flight.

        :param options: more keyword arguments for the channel's ``publish``
            (``id``, or what the backend offers).
        :returns: what the channel's ``publish`` returns: the id, or a
            Deferred firing with it.
        :raises KeyError: as :meth:`channel`.
        :raises ValueError: as the channel's ``publish``.
        """
        resource = self._resource_for(name)
        result = resource.channel.publish(data, event, **options)
        made = self._made.get(name)
        if made is not None and made.resource is resource:
            made.last_publish = self._reactor.seconds()
            if isinstance(result, Deferred):
                made.publishing += 1
                result.addBoth(self._published, name, made)
        return result

    def _published(self, result: object, name: str, made: _Made) -> object:
        made.publishing -= 1
        made.last_publish = self._reactor.seconds()
        self._touch(name, made)
        return result

    def _resource_for(self, name: str) -> EventStreamResource:
        resource = self._resources.get(name)
        if resource is not None:
            return resource
        default = self._default
        if default is None:
            raise KeyError(name)
        if IEventChannel.providedBy(default):
            if self._shared is None:
                self._shared = self._serve(default)
            return self._shared
        if self._max_channels is not None and len(self._made) >= self._max_channels:
            raise ChannelLimitReached(name, self._max_channels)
        resource = self.add_channel(name, default(name))
        made = _Made(resource, self._reactor.seconds())
        self._made[name] = made
        self._touch(name, made)
        return resource

    def getChild(self, path: bytes, request: Request) -> IResource:
        """The stream resource for the channel named by the path segment."""
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            return notFound("No such event channel", "No event channel has this name.")
        makes_channels = self._default is not None and not IEventChannel.providedBy(self._default)
        if request.method == b"HEAD" and name not in self._resources and makes_channels:
            return _HEAD_ONLY
        try:
            resource = self._resource_for(name)
        except ChannelLimitReached as error:
            return _Refused(
                f"this server serves {error.limit} event channels already; retry later",
                self.retry_after,
            )
        except KeyError:
            return notFound("No such event channel", "No event channel has this name.")
        made = self._made.get(name)
        if made is not None and made.resource is resource:
            request.notifyFinish().addBoth(lambda _: self._touch(name, made))
        return resource

    # -- dropping idle channels -------------------------------------------

    def _touch(self, name: str, made: _Made) -> None:
        """Something ended on a made channel: it may be idle from now on."""
        if self._idle_timeout is None or self._closed or self._made.get(name) is not made:
            return
        made.idle_since = self._reactor.seconds()
        if made.timer is None:
            made.timer = self._reactor.callLater(self._idle_timeout, self._expire, name, made)

    def _expire(self, name: str, made: _Made) -> None:
        """Drop the channel if it stayed idle long enough; otherwise look again later."""
        made.timer = None
        if self._made.get(name) is not made or made.resource.stream_count or made.publishing:
            return  # the end of the last stream or publish touches it again
        assert self._idle_timeout is not None
        deadline = made.idle_since + self._idle_timeout
        if self._history_ttl is not None and made.last_publish is not None:
            deadline = max(deadline, made.last_publish + self._history_ttl)
        now = self._reactor.seconds()
        if deadline > now:
            made.timer = self._reactor.callLater(deadline - now, self._expire, name, made)
            return
        self._drop(name, made)

    def _drop(self, name: str, made: _Made) -> None:
        """Forget the idle channel ``name`` and close it if it can be closed."""
        del self._made[name]
        del self._resources[name]
        close = getattr(made.resource.channel, "close", None)
        if callable(close):
            maybeDeferred(close).addErrback(
                lambda failure: self._log.failure(
                    "closing the idle channel {name!r} failed", failure, name=name
                )
            )

    @property
    def channel_count(self) -> int:
        """How many channels the factory made are kept now."""
        return len(self._made)

    def resources(self) -> list[EventStreamResource]:
        """Every stream resource served now."""
        shared = [self._shared] if self._shared is not None else []
        return [*self._resources.values(), *shared]

    def close(self, retry: float | None = None, *, spread: bool = True) -> None:
        """Close every stream of every channel (see :meth:`EventStreamResource.close`).

        New streams are refused (``503``) until :meth:`reopen`, on new names
        too; idle timers are cancelled and no channel is dropped meanwhile.
        """
        self._closed = True
        for resource in self.resources():
            resource.close(retry, spread=spread)
        for made in self._made.values():
            if made.timer is not None:
                made.timer.cancel()
                made.timer = None

    def reopen(self) -> None:
        """Accept new streams again after :meth:`close`; idle channels are dropped again."""
        self._closed = False
        for resource in self.resources():
            resource.reopen()
        for name, made in tuple(self._made.items()):
            self._touch(name, made)
