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
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from txsse.client import Opened, ReadyState, Received, Reconnect
from txsse.errors import ParseError
from txsse.server import IEventChannel, ISubscriber, Replay

_CLIENT = "stream"
_SERVER = "channel"


#: (key, kind, name, help, extra labels) of the client metrics, labelled by stream.
_CLIENT_METRICS: tuple[tuple[str, type, str, str, tuple[str, ...]], ...] = (
    ("connections", _Counter, "txsse_client_connections",
     "Streams opened (responses accepted as event streams).", ()),
    ("reconnections", _Counter, "txsse_client_reconnections",
     "Reconnections scheduled, by the error that caused them.", ("reason",)),
    ("parse_errors", _Counter, "txsse_client_parse_errors",
     "Streams dropped because they could not be parsed (line or event too long).", ()),
    ("ready_state", _Gauge, "txsse_client_ready_state",
     "The ready state: 0 connecting, 1 open, 2 closed.", ()),
    ("idle", _Gauge, "txsse_client_seconds_since_last_byte",
     "Seconds since the last byte arrived (NaN before the first one).", ()),
)  # fmt: skip

#: The same for the channel metrics, labelled by channel.
_SERVER_METRICS: tuple[tuple[str, type, str, str, tuple[str, ...]], ...] = (
    ("subscribers", _Gauge, "txsse_server_subscribers",
     "Subscribers receiving the channel's events now.", ()),
    ("published", _Counter, "txsse_server_events_published",
     "Events published (stored and fanned out).", ()),
    ("replayed", _Counter, "txsse_server_events_replayed",
     "Events sent from the history to resuming subscribers.", ()),
    ("evictions", _Counter, "txsse_server_slow_client_evictions",
     "Subscribers disconnected for not reading (max_unsent exceeded).", ()),
    ("replay_requests", _Counter, "txsse_server_replay_requests",
     "Subscriptions that asked to resume after a Last-Event-ID.", ()),
    ("gaps", _Counter, "txsse_server_replay_gaps",
     "Resumptions from an id no longer (or never) in the history.", ()),
    ("errors", _Counter, "txsse_server_channel_errors",
     "Channel (Redis) failures, by operation: publish, subscribe, or deliver "
     "(subscribers ended because events could not be read).", ("operation",)),
)  # fmt: skip


class _Family:
    """The metric objects of one registry, created once (a registry refuses duplicates)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = weakref.ref(registry)
        self._client: dict[str, Any] | None = None
        self._server: dict[str, Any] | None = None
        self._redis: Any = None
        self._hub: HubCollector | None = None
        self._sums: dict[str, _Sums] = {}

    @property
    def registry(self) -> CollectorRegistry:
        """The registry (alive as long as metrics are being made for it)."""
        registry = self._registry()
        assert registry is not None
        return registry

    def _build(
        self, specs: tuple[tuple[str, type, str, str, tuple[str, ...]], ...], label: str
    ) -> dict[str, Any]:
        return {
            key: kind(name, help, [label, *extra], registry=self.registry)
            for key, kind, name, help, extra in specs
        }

    def summed(self, label: str, counters: _Counters, measured: Any) -> None:
        """Export ``measured``'s plain-int counters, summed by label when scraped.

        :param label: the label name (``stream`` or ``channel``).
        :param counters: (metric name, help, attribute) of each counter.
        :param measured: an object with ``name`` (the label value) and the attributes.
        """
        sums = self._sums.get(label)
        if sums is None:
            sums = self._sums[label] = _Sums(label, counters)
            self.registry.register(sums)
        sums.measured.append(measured)

    def client(self) -> dict[str, Any]:
        """The client metrics, labelled by stream."""
        if self._client is None:
            self._client = self._build(_CLIENT_METRICS, _CLIENT)
        return self._client

    def server(self) -> dict[str, Any]:
        """The channel metrics, labelled by channel."""
        if self._server is None:
            self._server = self._build(_SERVER_METRICS, _SERVER)
        return self._server


_Counters = tuple[tuple[str, str, str], ...]

#: The client counters updated on every chunk: plain ints, summed when scraped.
_CLIENT_SUMS: _Counters = (
    ("txsse_client_events", "Events received.", "events"),
    ("txsse_client_received_bytes", "Bytes of event-stream bodies received.", "bytes"),
)
#: The channel counter updated for every subscriber of every broadcast.
_SERVER_SUMS: _Counters = (
    ("txsse_server_events_delivered",
     "Live events written to subscribers (one per event per subscriber).", "delivered"),
)  # fmt: skip


class _Sums:
    """Counters kept as plain ints by their owners (hot paths), summed by label at scrape time.

    Owners are kept for good, as a labelled series is: a counter never goes back.
    """

    def __init__(self, label: str, counters: _Counters) -> None:
        self.label = label
        self.counters = counters
        self.measured: list[Any] = []

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One counter family per counter, one sample per label value."""
        measured = tuple(self.measured)
        for name, doc, attribute in self.counters:
            totals: dict[str, int] = {}
            for owner in measured:
                totals[owner.name] = totals.get(owner.name, 0) + getattr(owner, attribute)
            family = CounterMetricFamily(name, doc, labels=[self.label])
            for value_label, total in totals.items():
                family.add_metric([value_label], total)
            yield family


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
        :class:`txsse.blocking.EventSource` (anything with ``on``/``off``).
    :param name: the ``stream`` label.
    :param registry: the Prometheus registry.
    :param clock: the time function for ``seconds_since_last_byte``.
    """

    def __init__(
        self,
        source: Any,
        name: str,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        metrics = family(registry).client()
        self.name = name
        self._source = source
        self._clock = clock
        self._last_byte = math.nan
        self._connections = metrics["connections"].labels(name)
        self._reconnections = metrics["reconnections"]
        #: Events and bytes received: plain ints on the hot path (one update
        #: per chunk), read by the family's collector when metrics are scraped.
        self.events = 0
        self.bytes = 0
        family(registry).summed(_CLIENT, _CLIENT_SUMS, self)
        self._parse_errors = metrics["parse_errors"].labels(name)
        self._ready = metrics["ready_state"].labels(name)
        self._ready_lock = threading.Lock()
        self._ready_seen = False
        metrics["idle"].labels(name).set_function(self._idle)
        self._observers: list[tuple[str, Callable[[Any], object]]] = [
            ("open", self._opened),
            ("reconnect", self._reconnecting),
            ("error", self._error),
            ("state", self._state),
            ("data", self._data),
        ]
        for signal, observer in self._observers:
            source.on(signal, observer)
        # Read after subscribing (a blocking source changes state meanwhile, in
        # its reactor thread): keep what a "state" signal may already have set.
        current = int(source.ready_state)
        with self._ready_lock:
            if not self._ready_seen:
                self._ready.set(current)

    def remove(self) -> None:
        """Stop observing the source (its series keep their last values)."""
        for signal, observer in self._observers:
            self._source.off(signal, observer)

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

    def __init__(self, channel: MeteredChannel, inner: ISubscriber) -> None:
        self._channel = channel
        self.inner = inner

    def send(self, chunk: bytes) -> None:
        inner: Any = self.inner
        was_open = getattr(inner, "open", True)
        inner.send(chunk)
        if not was_open or getattr(inner, "open", True):
            self._channel._delivered(chunk)

    def end(self) -> None:
        self._channel._ended(self)
        self.inner.end()


@implementer(IEventChannel)
class MeteredChannel:
    """An :class:`~txsse.server.IEventChannel` that counts what passes through it.

    Publishing, subscribing and the events each subscriber is sent are
    forwarded to ``channel`` and counted; any other attribute is the wrapped
    channel's.

    :param channel: the channel to measure.
    :param name: the ``channel`` label.
    :param registry: the Prometheus registry.
    """

    def __init__(
        self, channel: IEventChannel, name: str, registry: CollectorRegistry | None = None
    ) -> None:
        metrics = family(registry).server()
        self.channel = channel
        self.name = name
        self._wrapped: dict[ISubscriber, _MeteredSubscriber] = {}
        self._published = metrics["published"].labels(name)
        #: Live events written to subscribers (see ``_Sums``).
        self.delivered = 0
        family(registry).summed(_SERVER, _SERVER_SUMS, self)
        self._replayed = metrics["replayed"].labels(name)
        self._evictions = metrics["evictions"].labels(name)
        self._replay_requests = metrics["replay_requests"].labels(name)
        self._gaps = metrics["gaps"].labels(name)
        self._errors = metrics["errors"]
        metrics["subscribers"].labels(name).set_function(lambda: len(self._wrapped))
        self._last_chunk = b""
        self._last_count = 0

    @property
    def history(self) -> int:
        """The wrapped channel's history size."""
        return int(self.channel.history)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def __repr__(self) -> str:
        return f"<MeteredChannel {self.name!r} {self.channel!r}>"

    # Publishing

    def publish(
        self, data: str, event: str | None = None, id: str | None = None, **extra: Any
    ) -> object:
        """Publish through the wrapped channel, counting the event (see IEventChannel).

        Extra keyword arguments (such as ``RedisStreamChannel``'s ``fields``) go
        to the wrapped channel.
        """
        publish: Any = self.channel.publish
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


def watch_redis(connection: Any, registry: CollectorRegistry | None = None) -> None:
    """Export whether a Redis connection is up, as ``txsse_server_redis_connected``.

    :param connection: a :class:`txsse.server.RedisConnection` (its ``connected``).
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

    def __init__(self, hub: Any, servers: Any = None) -> None:
        self.watch(hub, servers)

    def watch(self, hub: Any, servers: Any = None) -> None:
        """Read this hub (and servers) from now on."""
        self._hub = hub
        self._servers = servers

    def _topics(self) -> int:
        router = self._hub.router
        count = getattr(router, "channel_count", None)
        return int(count) if count is not None else len(router.resources())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, from the hub's state now."""
        yield GaugeMetricFamily(
            "txsse_hub_topics", "Topics this process holds in memory now.", self._topics()
        )
        yield GaugeMetricFamily(
            "txsse_hub_subscribers", "Subscriber streams open on this process now.",
            self._hub.subscribers,
        )  # fmt: skip
        status = self._servers.status() if self._servers is not None else []
        families = (
            ("txsse_hub_redis_connected", "1 while the Redis server answers commands.",
             lambda s: 1.0 if s.connected else 0.0),
            ("txsse_hub_redis_connections",
             "Connections open from this process to the Redis server (commands and pub/sub).",
             lambda s: s.connections),
            ("txsse_hub_redis_topics",
             "Topics whose pub/sub channel this process subscribes on the Redis server.",
             lambda s: s.topics),
        )  # fmt: skip
        for name, doc, value in families:
            family = GaugeMetricFamily(name, doc, labels=["server"])
            for server in status:
                family.add_metric([server.server], value(server))
            yield family


def watch_hub(hub: Any, servers: Any = None, registry: CollectorRegistry | None = None) -> None:
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


__all__ = [
    "HubCollector",
    "MeteredChannel",
    "MetricsResource",
    "SourceMetrics",
    "family",
    "stream_label",
    "watch_hub",
    "watch_redis",
]
