"""Prometheus metrics for event sources, channels and the hub.

Imported only when metrics are asked for (:mod:`txsse.metrics`, or ``--metrics``
on a twistd plugin): ``prometheus_client`` is an optional dependency
(``txsse[metrics]``), and without it nothing here is imported or runs.

Everything attaches from the outside, through public interfaces: a source is
observed with ``source.on(...)``; a channel is wrapped in a :class:`MeteredChannel`
that provides :class:`~txsse.server.IEventChannel` and wraps each subscriber.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from txsse.client import Opened, ReadyState, Received, Reconnect
from txsse.errors import ParseError
from txsse.server import IEventChannel, ISubscriber, Replay

if TYPE_CHECKING:
    # Qualified where used: both are called EventSource.
    import txsse.blocking
    import txsse.client
    from txsse.hub import Hub, RedisServers

_CLIENT = "stream"
_SERVER = "channel"

_Owner = TypeVar("_Owner")

#: (metric name, help, how to read the owner's count) of a counter kept as a plain int.
_Summed = tuple[str, str, Callable[[_Owner], int]]


class _Sums(Generic[_Owner]):
    """Counters kept as plain ints by their owners (hot paths), summed by label at scrape time.

    Owners are kept for good, as a labelled series is: a counter never goes back.

    :param label: the label name (``stream`` or ``channel``).
    :param counters: the counters.
    """

    def __init__(self, label: str, counters: tuple[_Summed[_Owner], ...]) -> None:
        self.label = label
        self.counters = counters
        self.owners: list[tuple[str, _Owner]] = []

    def add(self, value_label: str, owner: _Owner) -> None:
        """Sum ``owner``'s counts under ``value_label`` from now on."""
        self.owners.append((value_label, owner))

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One counter family per counter, one sample per label value."""
        owners = tuple(self.owners)
        for name, doc, count in self.counters:
            totals: dict[str, int] = {}
            for value_label, owner in owners:
                totals[value_label] = totals.get(value_label, 0) + count(owner)
            family = CounterMetricFamily(name, doc, labels=[self.label])
            for value_label, total in totals.items():
                family.add_metric([value_label], total)
            yield family


class _ClientMetrics:
    """The client metrics of one registry, labelled by stream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        stream = [_CLIENT]
        self.connections = _Counter(
            "txsse_client_connections",
            "Streams opened (responses accepted as event streams).",
            stream,
            registry=registry,
        )
        self.reconnections = _Counter(
            "txsse_client_reconnections",
            "Reconnections scheduled, by the error that caused them.",
            [*stream, "reason"],
            registry=registry,
        )
        self.parse_errors = _Counter(
            "txsse_client_parse_errors",
            "Streams dropped because they could not be parsed (line or event too long).",
            stream,
            registry=registry,
        )
        self.ready_state = _Gauge(
            "txsse_client_ready_state",
            "The ready state: 0 connecting, 1 open, 2 closed.",
            stream,
            registry=registry,
        )
        self.idle = _Gauge(
            "txsse_client_seconds_since_last_byte",
            "Seconds since the last byte arrived (NaN before the first one).",
            stream,
            registry=registry,
        )
        #: The counters updated on every chunk: plain ints, summed when scraped.
        self.sums: _Sums[SourceMetrics] = _Sums(_CLIENT, (
            ("txsse_client_events", "Events received.", lambda owner: owner.events),
            ("txsse_client_received_bytes", "Bytes of event-stream bodies received.",
             lambda owner: owner.bytes),
        ))  # fmt: skip
        registry.register(self.sums)


class _ServerMetrics:
    """The channel metrics of one registry, labelled by channel."""

    def __init__(self, registry: CollectorRegistry) -> None:
        channel = [_SERVER]
        self.subscribers = _Gauge(
            "txsse_server_subscribers",
            "Subscribers receiving the channel's events now.",
            channel,
            registry=registry,
        )
        self.published = _Counter(
            "txsse_server_events_published",
            "Events published (stored and fanned out).",
            channel,
            registry=registry,
        )
        self.replayed = _Counter(
            "txsse_server_events_replayed",
            "Events sent from the history to resuming subscribers.",
            channel,
            registry=registry,
        )
        self.evictions = _Counter(
            "txsse_server_slow_client_evictions",
            "Subscribers disconnected for not reading (max_unsent exceeded).",
            channel,
            registry=registry,
        )
        self.replay_requests = _Counter(
            "txsse_server_replay_requests",
            "Subscriptions that asked to resume after a Last-Event-ID.",
            channel,
            registry=registry,
        )
        self.gaps = _Counter(
            "txsse_server_replay_gaps",
            "Resumptions from an id no longer (or never) in the history.",
            channel,
            registry=registry,
        )
        self.errors = _Counter(
            "txsse_server_channel_errors",
            "Channel (Redis) failures, by operation: publish, subscribe, or deliver "
            "(subscribers ended because events could not be read).",
            [*channel, "operation"],
            registry=registry,
        )
        #: The counter updated for every subscriber of every broadcast.
        self.sums: _Sums[MeteredChannel[IEventChannel]] = _Sums(_SERVER, (
            ("txsse_server_events_delivered",
             "Live events written to subscribers (one per event per subscriber).",
             lambda owner: owner.delivered),
        ))  # fmt: skip
        registry.register(self.sums)


class _Family:
    """The metric objects of one registry, created once (a registry refuses duplicates)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = weakref.ref(registry)
        self._client: _ClientMetrics | None = None
        self._server: _ServerMetrics | None = None
        self._redis: _Gauge | None = None
        self._hub: HubCollector | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The registry (alive as long as metrics are being made for it)."""
        registry = self._registry()
        assert registry is not None
        return registry

    def client(self) -> _ClientMetrics:
        """The client metrics, labelled by stream."""
        if self._client is None:
            self._client = _ClientMetrics(self.registry)
        return self._client

    def server(self) -> _ServerMetrics:
        """The channel metrics, labelled by channel."""
        if self._server is None:
            self._server = _ServerMetrics(self.registry)
        return self._server


_families: weakref.WeakKeyDictionary[CollectorRegistry, _Family] = weakref.WeakKeyDictionary()


def family(registry: CollectorRegistry | None = None) -> _Family:
    """The metrics of ``registry`` (the default Prometheus registry if ``None``).

    :param registry: where the metrics are registered.
    :returns: the family of metric objects of that registry.
    """
    registry = REGISTRY if registry is None else registry
    found = _families.get(registry)
    if found is None:
        found = _families[registry] = _Family(registry)
    return found


def stream_label(url: str) -> str:
    """The default ``stream`` label: the URL without credentials, query or fragment.

    Query strings often carry tokens; they must not end up in metrics.

    :param url: the stream's URL.
    :returns: ``scheme://host[:port]/path``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class SourceMetrics:
    """The observers that count one event source's activity.

    :param source: a :class:`txsse.EventSource` or a
        :class:`txsse.blocking.EventSource` (observed with ``on``/``off``).
    :param name: the ``stream`` label.
    :param registry: the Prometheus registry.
    :param clock: the time function for ``seconds_since_last_byte``.
    """

    def __init__(
        self,
        source: txsse.client.EventSource | txsse.blocking.EventSource,
        name: str,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        metrics = family(registry).client()
        self.name = name
        self._source = source
        self._clock = clock
        self._last_byte = math.nan
        self._connections = metrics.connections.labels(name)
        self._reconnections = metrics.reconnections
        #: Events and bytes received: plain ints on the hot path (one update
        #: per chunk), read by the family's collector when metrics are scraped.
        self.events = 0
        self.bytes = 0
        metrics.sums.add(name, self)
        self._parse_errors = metrics.parse_errors.labels(name)
        self._ready = metrics.ready_state.labels(name)
        self._ready_lock = threading.Lock()
        self._ready_seen = False
        metrics.idle.labels(name).set_function(self._idle)
        self._observe(attach=True)
        # Read after subscribing (a blocking source changes state meanwhile, in
        # its reactor thread): keep what a "state" signal may already have set.
        current = int(source.ready_state)
        with self._ready_lock:
            if not self._ready_seen:
                self._ready.set(current)

    def remove(self) -> None:
        """Stop observing the source (its series keep their last values)."""
        self._observe(attach=False)

    def _observe(self, attach: bool) -> None:
        """Subscribe each observer to its signal of the source (or unsubscribe it)."""
        method = self._source.on if attach else self._source.off
        method("open", self._opened)
        method("reconnect", self._reconnecting)
        method("error", self._error)
        method("state", self._state)
        method("data", self._data)

    def _idle(self) -> float:
        return self._clock() - self._last_byte

    def _opened(self, opened: Opened) -> None:
        self._connections.inc()

    def _reconnecting(self, reconnect: Reconnect) -> None:
        self._reconnections.labels(self.name, type(reconnect.reason).__name__).inc()

    def _error(self, error: BaseException) -> None:
        if isinstance(error, ParseError):
            self._parse_errors.inc()

    def _state(self, state: ReadyState) -> None:
        with self._ready_lock:
            self._ready_seen = True
            self._ready.set(int(state))

    def _data(self, received: Received) -> None:
        self._last_byte = self._clock()
        self.bytes += received.size
        self.events += received.events


def _count_events(chunk: bytes) -> int:
    """How many event blocks ``chunk`` holds (each ends with a blank line)."""
    return chunk.count(b"\n\n")


@implementer(ISubscriber)
class _MeteredSubscriber:
    """Stands for one subscriber with the channel; counts what it is sent."""

    __slots__ = ("_channel", "inner")

    def __init__(self, channel: MeteredChannel[IEventChannel], inner: ISubscriber) -> None:
        self._channel = channel
        self.inner = inner

    def send(self, chunk: bytes) -> None:
        inner = self.inner
        was_open = getattr(inner, "open", True)
        inner.send(chunk)
        if not was_open or getattr(inner, "open", True):
            self._channel._delivered(chunk)

    def end(self) -> None:
        self._channel._ended(self)
        self.inner.end()


#: The wrapped channel's type (covariant: a metered Redis channel is a metered channel).
_Channel = TypeVar("_Channel", bound=IEventChannel, covariant=True)


@implementer(IEventChannel)
class MeteredChannel(Generic[_Channel]):
    """An :class:`~txsse.server.IEventChannel` that counts what passes through it.

    Publishing, subscribing and the events each subscriber is sent are
    forwarded to ``channel`` and counted; any other attribute is the wrapped
    channel's.

    :param channel: the channel to measure.
    :param name: the ``channel`` label.
    :param registry: the Prometheus registry.
    """

    def __init__(
        self, channel: _Channel, name: str, registry: CollectorRegistry | None = None
    ) -> None:
        metrics = family(registry).server()
        self.channel = channel
        self.name = name
        self._wrapped: dict[ISubscriber, _MeteredSubscriber] = {}
        self._published = metrics.published.labels(name)
        #: Live events written to subscribers (see ``_Sums``).
        self.delivered = 0
        metrics.sums.add(name, self)
        self._replayed = metrics.replayed.labels(name)
        self._evictions = metrics.evictions.labels(name)
        self._replay_requests = metrics.replay_requests.labels(name)
        self._gaps = metrics.gaps.labels(name)
        self._errors = metrics.errors
        metrics.subscribers.labels(name).set_function(lambda: len(self._wrapped))
        self._last_chunk = b""
        self._last_count = 0

    @property
    def history(self) -> int:
        """The wrapped channel's history size."""
        return int(self.channel.history)

    def __getattr__(self, name: str) -> object:
        """The wrapped channel's attribute (typed: read it from :attr:`channel`)."""
        return getattr(self.channel, name)

    def __repr__(self) -> str:
        return f"<MeteredChannel {self.name!r} {self.channel!r}>"

    # Publishing

    def publish(
        self, data: str, event: str | None = None, id: str | None = None, **extra: object
    ) -> object:
        """Publish through the wrapped channel, counting the event (see IEventChannel).

        Extra keyword arguments (such as ``RedisStreamChannel``'s ``fields``) go
        to the wrapped channel.
        """
        # IEventChannel.publish has no extra keywords; the wrapped channel's may.
        publish: Callable[..., object] = self.channel.publish
        return self._count_publish(publish(data, event, id, **extra))

    def publish_json(self, obj: object, event: str | None = None, id: str | None = None) -> object:
        """Publish JSON through the wrapped channel, counting the event."""
        return self._count_publish(self.channel.publish_json(obj, event, id))

    def _count_publish(self, result: object) -> object:
        if isinstance(result, Deferred):
            return result.addCallbacks(self._published_one, self._failed, errbackArgs=("publish",))
        self._published.inc()
        return result

    def _published_one(self, event_id: object) -> object:
        self._published.inc()
        return event_id

    def _failed(self, failure: Failure, operation: str) -> Failure:
        if not failure.check(ValueError, TypeError):
            self._errors.labels(self.name, operation).inc()
        return failure

    # Subscribing

    def subscribe(self, subscriber: ISubscriber, last_event_id: str | None = None) -> object:
        """Subscribe through a counting stand-in for ``subscriber`` (see IEventChannel)."""
        wrapped = _MeteredSubscriber(self, subscriber)
        self._wrapped[subscriber] = wrapped
        if last_event_id:
            self._replay_requests.inc()
        try:
            result = self.channel.subscribe(wrapped, last_event_id)
        except Exception:
            self._wrapped.pop(subscriber, None)
            raise
        if isinstance(result, Deferred):
            return result.addCallbacks(
                self._subscribed, self._subscribe_failed, errbackArgs=(subscriber,)
            )
        return self._subscribed(cast(Replay, result))

    def _subscribed(self, replay: Replay) -> Replay:
        if replay.gap:
            self._gaps.inc()
        if replay.chunk:
            self._replayed.inc(_count_events(replay.chunk))
        return replay

    def _subscribe_failed(self, failure: Failure, subscriber: ISubscriber) -> Failure:
        self._wrapped.pop(subscriber, None)
        return self._failed(failure, "subscribe")

    def unsubscribe(self, subscriber: ISubscriber) -> None:
        """Unsubscribe the stand-in of ``subscriber`` (see IEventChannel)."""
        wrapped = self._wrapped.pop(subscriber, None)
        if wrapped is not None:
            if getattr(subscriber, "evicted", False):  # a slow client's stream, disconnected
                self._evicted()
            self.channel.unsubscribe(wrapped)

    # Counting, from the subscribers' stand-ins

    def _delivered(self, chunk: bytes) -> None:
        # A broadcast sends the same bytes object to everyone: count its events once.
        if chunk is not self._last_chunk:
            self._last_chunk = chunk
            self._last_count = _count_events(chunk)
        self.delivered += self._last_count

    def _evicted(self) -> None:
        self._evictions.inc()

    def _ended(self, wrapped: _MeteredSubscriber) -> None:
        self._wrapped.pop(wrapped.inner, None)
        self._errors.labels(self.name, "deliver").inc()


class _Connected(Protocol):
    """A :class:`~txsse.hub.RedisConnection`, or the hub's :class:`~txsse.hub.RedisServers`."""

    @property
    def connected(self) -> bool:
        """Whether Redis answers commands now."""


def watch_redis(connection: _Connected, registry: CollectorRegistry | None = None) -> None:
    """Export whether a Redis connection is up, as ``txsse_server_redis_connected``.

    :param connection: a :class:`txsse.hub.RedisConnection` (its ``connected``),
        or :class:`txsse.hub.RedisServers` (all of them connected).
    :param registry: the Prometheus registry.
    """
    metrics = family(registry)
    if metrics._redis is None:
        metrics._redis = _Gauge(
            "txsse_server_redis_connected",
            "1 while the connection to Redis is up, 0 otherwise.",
            registry=metrics.registry,
        )
    metrics._redis.set_function(lambda: 1.0 if connection.connected else 0.0)


class HubCollector:
    """The ``txsse_hub_*`` gauges of one hub process, read when metrics are scraped.

    The same names whatever the backend: the ``server``-labelled ones simply
    have no sample with the memory backend.

    :param hub: the :class:`txsse.hub.Hub` (its ``subscribers`` and ``router``).
    :param servers: the hub's ``RedisServers`` (its ``status()``), or ``None``.
    """

    def __init__(self, hub: Hub, servers: RedisServers | None = None) -> None:
        self.watch(hub, servers)

    def watch(self, hub: Hub, servers: RedisServers | None = None) -> None:
        """Read this hub (and servers) from now on."""
        self._hub = hub
        self._servers = servers

    def _topics(self) -> int:
        return self._hub.router.channel_count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, from the hub's state now."""
        yield GaugeMetricFamily(
            "txsse_hub_topics", "Topics this process holds in memory now.", self._topics()
        )
        yield GaugeMetricFamily(
            "txsse_hub_subscribers", "Subscriber streams open on this process now.",
            self._hub.subscribers,
        )  # fmt: skip
        connected, connections, topics = (
            GaugeMetricFamily(name, doc, labels=["server"])
            for name, doc in (
                ("txsse_hub_redis_connected", "1 while the Redis server answers commands."),
                ("txsse_hub_redis_connections",
                 "Connections open from this process to the Redis server (commands and pub/sub)."),
                ("txsse_hub_redis_topics",
                 "Topics whose pub/sub channel this process subscribes on the Redis server."),
            )
        )  # fmt: skip
        for server in self._servers.status() if self._servers is not None else ():
            connected.add_metric([server.server], 1.0 if server.connected else 0.0)
            connections.add_metric([server.server], server.connections)
            topics.add_metric([server.server], server.topics)
        yield from (connected, connections, topics)


def watch_hub(
    hub: Hub, servers: RedisServers | None = None, registry: CollectorRegistry | None = None
) -> None:
    """Export the ``txsse_hub_*`` gauges of a hub process.

    :param hub: the :class:`txsse.hub.Hub`.
    :param servers: its ``RedisServers`` with the Redis backend, else ``None``.
    :param registry: the Prometheus registry.
    """
    metrics = family(registry)
    if metrics._hub is None:
        metrics._hub = HubCollector(hub, servers)
        metrics.registry.register(metrics._hub)
    else:  # one hub per registry: the latest one made
        metrics._hub.watch(hub, servers)


class MetricsResource(Resource):
    """``GET`` answers the registry in the Prometheus text format.

    :param registry: the registry to expose.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__()
        self.registry = REGISTRY if registry is None else registry

    def render_GET(self, request: Request) -> bytes:
        """The current values of every metric."""
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self.registry)


def metrics_site(registry: CollectorRegistry | None = None) -> Site:
    """A site serving :class:`MetricsResource` at ``/metrics``.

    :param registry: the registry to expose; the default one if ``None``.
    :returns: the site, for a ``--metrics`` endpoint or :func:`txsse.metrics.metrics_service`.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    return Site(root)


__all__ = [
    "HubCollector",
    "MeteredChannel",
    "MetricsResource",
    "SourceMetrics",
    "family",
    "metrics_site",
    "stream_label",
    "watch_hub",
    "watch_redis",
]
