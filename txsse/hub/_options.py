"""``twistd sse-hub``: command-line options and the service they make."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage

from txsse._cli import ListeningService, PluginOptions, endpoint_option, read_token_file
from txsse._metricsopt import HELP as METRICS_HELP
from txsse._metricsopt import check_metrics_option, metrics_option_service
from txsse._validate import positive_int_option, seconds_option
from txsse.hub._relay import UpstreamRelay
from txsse.hub._resource import TOPIC_NAME, Hub, host_name
from txsse.server import EventStreamService, IEventChannel, MemoryChannel

if TYPE_CHECKING:  # imported where used: txredisapi is optional (txsse[redis])
    from txsse.hub._servers import RedisServers

_log = Logger()

DEFAULT_TOPIC_TTL = 3600.0
"""Seconds a memory topic's history outlives its last publish while no one subscribes."""

DEFAULT_BACKLOG = 4096
"""The listen backlog when ``--port`` gives none: a reconnection storm's worth of
connections wait in the kernel instead of being dropped (Linux caps it at
``net.core.somaxconn``, 4096 by default)."""


def with_backlog(description: str) -> str:
    """``description`` with a ``backlog=`` of :data:`DEFAULT_BACKLOG` if it gives none.

    Only listening ``tcp``, ``tcp6``, ``ssl`` and ``unix`` endpoints take one
    (Twisted's default is 50); others are returned unchanged.

    :param description: a server endpoint description (``tcp:8080:interface=127.0.0.1``).
    :returns: the description to listen on.
    """
    kind, *arguments = re.split(r"(?<!\\):", description)
    if kind.lower() not in ("tcp", "tcp6", "ssl", "unix") or not arguments:
        return description
    if any(argument.startswith("backlog=") for argument in arguments):
        return description
    return f"{description}:backlog={DEFAULT_BACKLOG}"


class Options(PluginOptions):
    """Options of ``twistd sse-hub``."""

    synopsis = "[options]"
    longdesc = (
        "An HTTP hub for Server-Sent Events. Subscribers GET /topics/<name> (an event "
        "stream; resume with Last-Event-ID); publishers POST /topics/<name>?event=<type> "
        "with the data as the body and 'Authorization: Bearer <token>', and get the id "
        "back as JSON. Without --redis the topics live in this process's memory; with "
        "--redis every hub process on the same Redis serves the same topics and ids."
    )

    optParameters: list[list[object]] = [
        [
            "port",
            "p",
            "tcp:8080:interface=127.0.0.1",
            "Where to listen: a Twisted endpoint (loopback only by default).",
            endpoint_option("--port", "tcp:8080:interface=127.0.0.1"),
        ],
        ["redis-prefix", None, "txsse:topic:", "Prefix of the Redis stream keys."],
        ["history", None, 1000, "Events kept per topic for resumption.", positive_int_option],
        ["keepalive", None, 15.0, "Seconds between keep-alive comments (0: none).", seconds_option],
        ["retry", None, None, "Seconds for the retry: hint sent to subscribers", seconds_option],
        [
            "max-subscribers",
            None,
            10_000,
            "Most open streams in this process.",
            positive_int_option,
        ],
        [
            "max-event-size",
            None,
            65_536,
            "Largest publish body in bytes (413).",
            positive_int_option,
        ],
        [
            "max-topics",
            None,
            None,
            "Most topics kept at once (503 past it; default: no limit)",
            positive_int_option,
        ],
        [
            "topic-ttl",
            None,
            None,
            "Without --redis: seconds a topic's history is kept after its last publish "
            f"while no one subscribes (default {DEFAULT_TOPIC_TTL:g})",
            seconds_option,
        ],
        ["publish-token", None, None, "Bearer token publishers must present."],
        ["publish-token-file", None, None, "File holding the publish token."],
        ["subscribe-token", None, None, "Bearer token subscribers must present (default: open)."],
        ["subscribe-token-file", None, None, "File holding the subscribe token."],
        [
            "shutdown-retry",
            None,
            2.0,
            "On stop, clients reconnect within this many s.",
            seconds_option,
        ],
        [
            "max-connections-per-ip",
            None,
            None,
            "Most connections one IP address may hold (503 past it; default: no limit)",
            positive_int_option,
        ],
        [
            "relay-lease",
            None,
            10.0,
            "With --redis: seconds before another process takes over a relay whose process died.",
            seconds_option,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["cors-origin"] = []
        self["allowed-host"] = []
        self["upstream"] = []
        self["redis"] = []
        self["metrics"] = None
        #: What makeService logs once logging has started (world-readable token files).
        self.warnings: list[str] = []

    def opt_metrics(self, description: str) -> None:
        self["metrics"] = check_metrics_option(description)

    opt_metrics.__doc__ = METRICS_HELP

    def opt_redis(self, url: str) -> None:
        """redis://[:password@]host:port/db (or rediss://, unix://); repeatable: topics spread."""
        self["redis"].append(url)

    def opt_cors_origin(self, origin: str) -> None:
        """Let pages from this origin (scheme://host[:port], or *) use the hub. Repeatable."""
        origin = origin.rstrip("/")
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc
                              or parts.path or parts.query):  # fmt: skip
            raise usage.UsageError(
                f"--cors-origin {origin!r}: give an origin such as https://app.example.com or *"
            )
        self["cors-origin"].append(origin)

    def opt_allowed_host(self, host: str) -> None:
        """Answer only requests whose Host is this name (name or name:port). Repeatable."""
        if host_name(host) is None:
            raise usage.UsageError(
                f"--allowed-host {host!r}: give a host name such as hub.example.com, "
                "127.0.0.1 or [::1], optionally with :port"
            )
        self["allowed-host"].append(host)

    def opt_upstream(self, spec: str) -> None:
        """TOPIC=URL: relay the event stream at URL into TOPIC. Repeatable."""
        topic, sep, url = spec.partition("=")
        if not sep or not TOPIC_NAME.match(topic):
            raise usage.UsageError(
                f"--upstream {spec!r}: use TOPIC=URL with a valid topic name "
                "(letters, digits, '_', '.', '-')"
            )
        if urlsplit(url).scheme not in ("http", "https"):
            raise usage.UsageError(f"--upstream {spec!r}: the URL must be http:// or https://")
        if topic in dict(self["upstream"]):
            raise usage.UsageError(f"--upstream: topic {topic!r} has two upstreams")
        self["upstream"].append((topic, url))

    def _token(self, name: str) -> str | None:
        value, path = self[f"{name}-token"], self[f"{name}-token-file"]
        if value is not None and path is not None:
            raise usage.UsageError(f"give --{name}-token or --{name}-token-file, not both")
        if path is not None:
            value, warning = read_token_file(f"--{name}-token-file", path)
            if warning is not None:
                self.warnings.append(warning)
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise usage.UsageError(f"the {name} token must be non-empty, without spaces")
        return value

    def postOptions(self) -> None:
        """Check the combination and read the token files."""
        if self["redis"] and importlib.util.find_spec("txredisapi") is None:
            raise usage.UsageError("--redis needs txredisapi: pip install 'txsse[redis]'")
        self["publish-token"] = self._token("publish")
        self["subscribe-token"] = self._token("subscribe")
        if self["publish-token"] is None:
            raise usage.UsageError(
                "publishing needs a token: give --publish-token-file FILE (or --publish-token)"
            )
        if self["redis"]:
            from txsse.hub._redisconn import parse_redis_url
            from txsse.hub._servers import server_names

            try:
                self["redis"] = [parse_redis_url(url) for url in self["redis"]]
                server_names(self["redis"])
            except ValueError as error:
                raise usage.UsageError(f"--redis: {error}") from None
        if self["topic-ttl"] is not None and self["redis"]:
            raise usage.UsageError(
                "--topic-ttl is for the memory backend: with --redis the history stays in "
                "Redis (--history events per topic); drop --topic-ttl"
            )
        if not self["relay-lease"] > 0:
            raise usage.UsageError("--relay-lease must be a positive number of seconds")
        for name in ("keepalive", "retry"):
            if self[name] == 0:
                self[name] = None


def makeService(options: Options) -> IService:
    """The hub: the web server, the Redis connection (if any) and the relays.

    :param options: parsed :class:`Options`.
    :returns: a :class:`~twisted.application.service.MultiService`.
    """
    top = MultiService()
    for warning in getattr(options, "warnings", ()):
        _log.warn("{warning}", warning=warning)
    history: int = options["history"]
    available: Callable[[], bool] = lambda: True  # noqa: E731
    factory: Callable[[str], IEventChannel]
    servers: RedisServers | None = None
    if options["redis"]:
        # Imported here: txredisapi is an optional dependency (txsse[redis]).
        from txsse.hub._lease import RedisLease
        from txsse.hub._redis import RedisStreamChannel, newest_fields
        from txsse.hub._servers import RedisServers

        redis = servers = RedisServers(options["redis"])
        redis.setServiceParent(top)
        prefix: str = options["redis-prefix"]
        # New subscribers get 503 at once when no server answers; when only
        # some do, the topics on the others answer 503 (their channel fails).
        available = lambda: any(c.connected for c in redis.connections)  # noqa: E731

        def redis_channel(topic: str) -> IEventChannel:
            return RedisStreamChannel(redis.for_topic(topic), prefix + topic, history=history)

        factory = redis_channel

        def relay_for(topic: str, url: str) -> UpstreamRelay:
            # One process of the group relays (a lease in Redis); the upstream id
            # is stored with each entry, so whoever relays next resumes after it.
            # The channel is looked up each time: an idle topic is dropped.
            server = redis.for_topic(topic)
            lease = RedisLease(server, f"{prefix}{topic}:relay", ttl=options["relay-lease"])

            def publish(data: str, event: str | None, upstream_id: str) -> object:
                fields = {"upstream-id": upstream_id} if upstream_id else None
                return hub.router.publish(topic, data, event, fields=fields)

            def resume() -> Deferred[str | None]:
                hub.channel(topic)  # make the topic (or raise ChannelLimitReached) first
                return newest_fields(server, prefix + topic).addCallback(
                    lambda fields: (fields or {}).get("upstream-id")
                )

            return UpstreamRelay(topic, url, publish, lease=lease, resume=resume)

        backend = "Redis at " + ", ".join(redis.names)
        topic_ttl = None  # the history stays in Redis
    else:

        def memory_channel(topic: str) -> IEventChannel:
            return MemoryChannel(history)

        factory = memory_channel

        def relay_for(topic: str, url: str) -> UpstreamRelay:
            return UpstreamRelay(topic, url, lambda data, event, _: hub.publish(topic, data, event))

        backend = "memory (this process only)"
        topic_ttl = options["topic-ttl"]
        if topic_ttl is None:
            topic_ttl = DEFAULT_TOPIC_TTL
    metered = bool(options.get("metrics"))
    if metered:
        # Imported only where used: prometheus-client is optional (txsse[metrics]).
        from txsse import metrics

        plain_factory = factory

        def metered_channel(topic: str) -> IEventChannel:
            channel: IEventChannel = metrics.instrument_channel(plain_factory(topic), topic)
            return channel

        factory = metered_channel
        if servers is not None:
            metrics.watch_redis(servers)
        metrics_option_service(options["metrics"]).setServiceParent(top)
    hub = Hub(
        factory,
        publish_token=options["publish-token"],
        subscribe_token=options["subscribe-token"],
        keepalive=options["keepalive"],
        retry=options["retry"],
        max_subscribers=options["max-subscribers"],
        max_event_size=options["max-event-size"],
        cors_origins=options["cors-origin"],
        allowed_hosts=options["allowed-host"],
        max_connections_per_ip=options["max-connections-per-ip"],
        max_topics=options["max-topics"],
        topic_ttl=topic_ttl,
        available=available,
    )
    port = options["port"]
    ListeningService("--port", port, hub.site(), listen_on=with_backlog(port)).setServiceParent(top)
    EventStreamService(hub, final_retry=options["shutdown-retry"] or None).setServiceParent(top)
    relays = [relay_for(topic, url) for topic, url in options["upstream"]]
    for relay in relays:
        relay.setServiceParent(top)
    if metered:
        from txsse import metrics

        metrics.watch_hub(hub, servers)
        for relay in relays:
            metrics.instrument_source(relay.source)
    _log.info(
        "sse-hub on {port}, topics in {backend}, {upstreams} upstream relay(s)",
        port=options["port"],
        backend=backend,
        upstreams=len(options["upstream"]),
    )
    return top
