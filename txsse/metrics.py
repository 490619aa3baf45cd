"""Prometheus metrics for event sources, channels and the hub (``txsse[metrics]``).

Nothing in txsse imports this module by itself: without it (and without
``--metrics`` on the twistd plugins) ``prometheus_client`` is never imported
and no metric costs any time. See ``docs/metrics.md`` for every metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

try:
    from prometheus_client import CollectorRegistry
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "txsse.metrics needs prometheus-client: pip install 'txsse[metrics]'"
    ) from error

from twisted.application import strports
from twisted.application.service import IService
from twisted.web.resource import Resource

from txsse._metrics import (
    MeteredChannel,
    MetricsResource,
    SourceMetrics,
    metrics_site,
    stream_label,
    watch_hub,
    watch_redis,
)
from txsse.server import IEventChannel

if TYPE_CHECKING:
    # Qualified where used: both are called EventSource.
    import txsse.blocking
    import txsse.client

_Channel = TypeVar("_Channel", bound=IEventChannel)


def instrument_source(
    source: txsse.client.EventSource | txsse.blocking.EventSource,
    *,
    name: str | None = None,
    registry: CollectorRegistry | None = None,
) -> SourceMetrics:
    """Count what an event source does, under the label ``stream=name``.

    Works with :class:`txsse.EventSource` and :class:`txsse.blocking.EventSource`;
    it observes the source with ``on()``. Call it before the source starts (or
    right after) so that no connection is missed.

    :param source: the event source.
    :param name: the ``stream`` label; by default the URL without its query,
        fragment or credentials.
    :param registry: the Prometheus registry; the default one if ``None``.
    :returns: the observer; its ``remove()`` stops counting.
    """
    return SourceMetrics(source, name or stream_label(source.url), registry)


def instrument_channel(
    channel: _Channel, name: str, *, registry: CollectorRegistry | None = None
) -> MeteredChannel[_Channel]:
    """Wrap a channel so that what passes through it is counted (label ``channel=name``).

    Serve the returned channel (``EventStreamResource(instrument_channel(...))``)
    and publish through it: the events published, delivered and replayed,
    subscribers, slow-client evictions, replay requests, gaps and channel
    (Redis) errors are then counted.

    :param channel: any :class:`~txsse.server.IEventChannel`.
    :param name: the ``channel`` label.
    :param registry: the Prometheus registry; the default one if ``None``.
    :returns: the wrapping channel, an :class:`~txsse.server.IEventChannel` too.
    """
    return MeteredChannel(channel, name, registry)


def metrics_resource(registry: CollectorRegistry | None = None) -> Resource:
    """A twisted.web resource answering ``GET`` with the metrics in Prometheus' text format.

    :param registry: the registry to expose; the default one if ``None``.
    :returns: the resource (mount it at ``/metrics``).
    """
    return MetricsResource(registry)


def metrics_service(description: str, *, registry: CollectorRegistry | None = None) -> IService:
    """A service serving ``/metrics`` on a Twisted endpoint.

    :param description: a server endpoint string, such as
        ``tcp:9100:interface=127.0.0.1``.
    :param registry: the registry to expose; the default one if ``None``.
    :returns: the service (add it to your application).
    :raises ValueError: for an endpoint string that cannot be parsed.
    """
    service: IService = strports.service(description, metrics_site(registry))
    return service


__all__ = [
    "MeteredChannel",
    "SourceMetrics",
    "instrument_channel",
    "instrument_source",
    "metrics_resource",
    "metrics_service",
    "watch_hub",
    "watch_redis",
]
