"""The hub's HTTP side: ``/topics/<name>`` to subscribe (GET) and publish (POST).

Subscribing is :class:`~txsse.server.EventStreamResource` (resume with
``Last-Event-ID``, keep-alives, slow clients) behind a
:class:`~txsse.server.ChannelRouter`; this module adds what a public hub
needs in front of it: bearer tokens, CORS, a subscriber limit, a body size
limit and clear 4xx/5xx answers.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from txsse._reactor import default_reactor
from txsse._validate import check_count
from txsse.errors import ChannelLimitReached, ChannelUnavailable
from txsse.hub._site import HubRequest, HubSite, Refusal
from txsse.server import ChannelRouter, IEventChannel

TOPIC_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}\Z")
"""Valid topic names: letters, digits, ``_ . -``; 1 to 128 characters, not starting with a dot."""

_ALLOW = b"GET, HEAD, POST, OPTIONS"
_PREFLIGHT_HEADERS = b"Authorization, Content-Type, Last-Event-ID, Cache-Control"


def _token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    header = request.getHeader(b"authorization")
    if header is None:
        return None
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _checked(topic: str) -> str:
    """``topic``, if it is a valid topic name.

    :raises ValueError: if it is not.
    """
    if not TOPIC_NAME.match(topic):
        raise ValueError(f"invalid topic name {topic!r}")
    return topic


def _answer(request: Request, status: int, message: str, **headers: str) -> bytes:
    """A plain-text error answer: the status and one line saying what to do."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return Refusal(status, message, named).answer(request)


def host_name(value: str) -> tuple[str, int | None] | None:
    """The host name (lower case, IPv6 without brackets) and port of a ``Host`` value.

    :param value: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``.
    :returns: ``(name, port)``, the port ``None`` when absent; ``None`` if
        ``value`` is not a host.
    """
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username:
        return None
    return parts.hostname, port


def query_args(request: Request) -> dict[bytes, list[bytes]]:
    """The parameters of the request's query string only, never of its body.

    twisted.web merges a form-encoded or multipart ``POST`` body into
    ``request.args``; a publish body is the event's data, whatever it looks like.

    :param request: the incoming request.
    :returns: each parameter's values, in order (blank values kept).
    """
    _, _, query = request.uri.partition(b"?")
    return parse_qs(query, keep_blank_values=True)


class Hub:
    """Topics served over HTTP, with auth, CORS and limits.

    :param channel_factory: makes the channel of a topic on first use
        (``MemoryChannel`` per topic, or ``RedisStreamChannel``).
    :param publish_token: the bearer token publishers must present.
    :param subscribe_token: the token subscribers must present (header or
        ``access_token`` query parameter), or ``None`` for open subscribing.
    :param keepalive: seconds between keep-alive comments, or ``None``.
    :param retry: seconds for the ``retry:`` hint sent to subscribers, or ``None``.
    :param max_subscribers: the most streams open at once, over all topics;
        more get ``503``.
    :param max_event_size: the largest publish body in bytes; larger get ``413``.
    :param cors_origins: origins (``https://app.example``) whose pages may
        subscribe and publish; ``*`` for any. Other cross-origin requests get ``403``.
    :param max_topics: the most topics kept at once, or ``None`` for no limit;
        a new topic past it gets ``503`` with ``Retry-After``.
    :param topic_grace: seconds after which a topic with no subscriber and no
        publish in flight is dropped from memory (made again on next use).
    :param topic_ttl: for channels that keep their history in this process
        (the memory backend): seconds a topic's history is kept after its
        last publish while no one subscribes; ``None`` when the history lives
        elsewhere (Redis) and only ``topic_grace`` applies.
    :param available: tells whether the backend is reachable now; while it
        is not, new subscribers get ``503`` at once.
    :param allowed_hosts: the names (``hub.example.com``, ``127.0.0.1``,
        ``[::1]``, optionally with ``:port``) the ``Host`` header must match;
        empty for any. Other requests get ``400`` (DNS rebinding); ``/health``
        answers any host.
    :param max_connections_per_ip: the most connections one IP address may
        hold at once, or ``None`` for no limit (see :meth:`site`).
    :param reactor: the clock of the topics' streams and timers, and the
        reactor of :meth:`site`; the global reactor by default.
    :param stream_options: more keyword arguments for
        :class:`~txsse.server.EventStreamResource` (``max_unsent``, ...).
    :raises ValueError: for an empty token, out-of-range limits or a host
        that is not a host name.
    """

    _log = Logger()

    def __init__(
        self,
        channel_factory: Callable[[str], IEventChannel],
        *,
        publish_token: str,
        subscribe_token: str | None = None,
        keepalive: float | None = 15.0,
        retry: float | None = None,
        max_subscribers: int = 10_000,
        max_event_size: int = 64 * 1024,
        cors_origins: Iterable[str] = (),
        max_topics: int | None = None,
        topic_grace: float = 10.0,
        topic_ttl: float | None = None,
        available: Callable[[], bool] = lambda: True,
        allowed_hosts: Iterable[str] = (),
        max_connections_per_ip: int | None = None,
        reactor: IReactorTime | None = None,
        **stream_options: Any,
    ) -> None:
        if not publish_token or (subscribe_token is not None and not subscribe_token):
            raise ValueError("tokens must not be empty")
        for name, value in (
            ("max_subscribers", max_subscribers),
            ("max_event_size", max_event_size),
            ("max_topics", max_topics),
            ("max_connections_per_ip", max_connections_per_ip),
        ):
            check_count(name, value, minimum=1)
        hosts = [(entry, host_name(entry)) for entry in allowed_hosts]
        for entry, parsed in hosts:
            if parsed is None:
                raise ValueError(
                    f"allowed host {entry!r} is not a host name (with an optional port)"
                )
        self.allowed_hosts = frozenset(parsed for _, parsed in hosts if parsed is not None)
        self.max_connections_per_ip = max_connections_per_ip
        self.publish_token = publish_token
        self.subscribe_token = subscribe_token
        self.max_subscribers = max_subscribers
        self.max_event_size = max_event_size
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.available = available
        self.subscribers = 0
        self.max_topics = max_topics
        self._reactor: IReactorTime = default_reactor(reactor)
        self.router = ChannelRouter(
            reactor=self._reactor,
            default=channel_factory,
            max_channels=max_topics,
            idle_timeout=topic_grace,
            history_ttl=topic_ttl,
            keepalive=keepalive,
            retry=retry,
            **stream_options,
        )

    def resource(self) -> IResource:
        """The root resource: ``/topics/<name>`` and ``/health``."""
        root = _Root(self)
        root.putChild(b"topics", _Topics(self))
        root.putChild(b"health", _Health(self))
        return root

    def site(self, **site_options: object) -> Site:
        """A :class:`~twisted.web.server.Site` serving :meth:`resource`, with the hub's limits.

        Publish bodies are never buffered past ``max_event_size`` nor parsed
        as forms; over HTTP/1.x a publish without the right token or with a
        ``Content-Length`` past the limit is answered from its headers,
        before its body; each IP address holds at most
        ``max_connections_per_ip`` connections.

        :param site_options: more keyword arguments for the
            :class:`~twisted.web.server.Site` (``timeout``, ...).
        :returns: the site, on the hub's reactor.
        """
        request_class = type(
            "LimitedHubRequest",
            (HubRequest,),
            {"max_body": self.max_event_size, "early_check": staticmethod(self._early_check)},
        )
        site_options.setdefault("reactor", self._reactor)
        return HubSite(
            self.resource(),
            requestFactory=request_class,
            max_connections_per_ip=self.max_connections_per_ip,
            **site_options,
        )

    def channel(self, topic: str) -> IEventChannel:
        """The channel of ``topic``, created on first use.

        Do not keep it: an idle topic is dropped after ``topic_grace``.

        :raises ValueError: if the name is not a valid topic name.
        :raises ~txsse.errors.ChannelLimitReached: (a ``KeyError``) if
            ``max_topics`` topics are kept already.
        """
        return self.router.channel(_checked(topic))

    def publish(self, topic: str, data: str, event: str | None = None) -> object:
        """Publish to a topic (what ``POST /topics/<topic>`` does, without HTTP).

        :returns: the id, or a Deferred of it (see :meth:`IEventChannel.publish`).
        :raises ValueError: for an invalid topic name or event.
        :raises ~txsse.errors.ChannelLimitReached: as :meth:`channel`.
        """
        return self.router.publish(_checked(topic), data, event)

    def close(self, retry: float | None = None, *, spread: bool = True) -> None:
        """Close every subscriber's stream (for :class:`~txsse.server.EventStreamService`)."""
        self.router.close(retry, spread=spread)

    def reopen(self) -> None:
        """Accept subscribers again after :meth:`close` (a restarted service)."""
        self.router.reopen()

    # -- checks shared by the methods ---------------------------------------

    def _early_check(
        self, request: Request, method: bytes, uri: bytes, length: int | None
    ) -> Refusal | None:
        """What a publish is refused with from its headers alone, if anything.

        :param request: the request, with its headers (no method, URI or body yet).
        :param method: the method from the request line.
        :param uri: the URI from the request line.
        :param length: the body's announced length, or ``None`` (chunked).
        :returns: the refusal, or ``None`` to read the body and render as usual.
        """
        if method != b"POST" or not uri.startswith(b"/topics/"):
            return None
        refusal = (
            self.host_refusal(request)
            or self.origin_refusal(request)
            or self.token_refusal(request, self.publish_token, "publishing")
        )
        if refusal is None and length is not None and length > self.max_event_size:
            refusal = self._too_large()
        return refusal

    def _too_large(self) -> Refusal:
        return Refusal(
            413,
            f"Content Too Large: an event's data is at most {self.max_event_size} bytes "
            "(--max-event-size)",
        )

    def host_refusal(self, request: Request) -> Refusal | None:
        """Refuse (``400``) a ``Host`` that is not one of ``allowed_hosts``, if any are set.

        :returns: the refusal, or ``None`` when the request may go on.
        """
        if not self.allowed_hosts:
            return None
        raw = request.getHeader(b"host")
        given = host_name(raw.decode("latin-1")) if raw is not None else None
        if given is not None and (
            given in self.allowed_hosts or (given[0], None) in self.allowed_hosts
        ):
            return None
        shown = "no Host header" if raw is None else f"Host {raw.decode('latin-1')!r}"
        return Refusal(
            400,
            f"Bad Request: {shown} is not a name of this hub; use one given with --allowed-host",
        )

    def origin_refusal(self, request: Request) -> Refusal | None:
        """Set the CORS headers, or refuse (``403``) an origin not allowed.

        :returns: the refusal, or ``None`` when the request may go on.
        """
        origin_header = request.getHeader(b"origin")
        if origin_header is None:
            return None
        origin = origin_header.decode("latin-1")
        allowed = "*" in self.cors_origins or origin in self.cors_origins
        host = request.getHeader(b"host")
        same = host is not None and urlsplit(origin).netloc == host.decode("latin-1")
        if allowed:
            request.setHeader(b"access-control-allow-origin", origin_header)
            request.setHeader(b"vary", b"Origin")
            return None
        if same:
            return None
        return Refusal(
            403,
            f"Forbidden: pages from origin {origin} may not use this hub; "
            "start it with --cors-origin for that origin",
        )

    def check_origin(self, request: Request) -> bytes | None:
        """Set the CORS headers, or answer ``403`` for an origin not allowed.

        :returns: the error body, or ``None`` when the request may go on.
        """
        return _answered(request, self.origin_refusal(request))

    def check_token(self, request: Request, expected: str | None, action: str) -> bytes | None:
        """Answer ``401`` unless the request carries the expected bearer token.

        :returns: the error body, or ``None`` when the request may go on.
        """
        return _answered(request, self.token_refusal(request, expected, action))

    def token_refusal(self, request: Request, expected: str | None, action: str) -> Refusal | None:
        """Refuse (``401``) a request without the expected bearer token.

        :param expected: the token, or ``None`` when none is needed.
        :param action: ``"publishing"`` or ``"subscribing"`` (which may also
            give it as an ``access_token`` query parameter).
        :returns: the refusal, or ``None`` when the request may go on.
        """
        if expected is None:
            return None
        given = _bearer(request)
        if given is None and action == "subscribing":
            values = request.args.get(b"access_token")
            given = values[0].decode("utf-8", "replace") if values else None
        if _token_matches(given, expected):
            return None
        flag = "--publish-token" if action == "publishing" else "--subscribe-token"
        if given is None:
            return Refusal(
                401,
                f"Unauthorized: {action} needs the header 'Authorization: Bearer <token>' "
                f"with the hub's {flag}",
                {"www-authenticate": 'Bearer realm="txsse-hub"'},
            )
        return Refusal(
            401,
            f"Unauthorized: wrong token for {action}",
            {"www-authenticate": 'Bearer realm="txsse-hub", error="invalid_token"'},
        )


def _answered(request: Request, refusal: Refusal | None) -> bytes | None:
    """Answer ``refusal`` on ``request``: its body, or ``None`` if there is none."""
    return None if refusal is None else refusal.answer(request)


class _Root(Resource):
    """The hub's root: checks ``Host`` (``--allowed-host``) before anything but ``/health``."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        refusal = None if path == b"health" else self._hub.host_refusal(request)
        if refusal is not None:
            return _Fixed(refusal)
        child: IResource = super().getChildWithDefault(path, request)
        return child

    def render(self, request: Request) -> bytes:
        return _NOT_FOUND.answer(request)


class _Health(Resource):
    """``GET /health``: 200 when the backend is reachable, 503 otherwise."""

    isLeaf = True

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def render_GET(self, request: Request) -> bytes:
        if self._hub.available():
            # Behind a subscribe token the hub tells nothing but its liveness.
            closed = self._hub.subscribe_token is not None
            return _answer(
                request, 200, "ok" if closed else f"ok: {self._hub.subscribers} subscribers"
            )
        return _answer(request, 503, "unavailable: the backend (Redis) is unreachable")


class _Topics(Resource):
    """``/topics/<name>``: a valid name gets its topic, anything else ``400``/``404``."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def getChild(self, path: bytes, request: Request) -> IResource:
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            name = ""
        if request.postpath:  # /topics/<name>/more
            return _Fixed(_NOT_FOUND)
        return _Topic(self._hub, name)

    def render(self, request: Request) -> bytes:
        return _NOT_FOUND.answer(request)


_NOT_FOUND = Refusal(404, "Not Found: use /topics/<name>")


class _Fixed(Resource):
    """A fixed plain-text answer."""

    isLeaf = True

    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self._refusal = refusal

    def render(self, request: Request) -> bytes:
        return self._refusal.answer(request)


class _Topic(Resource):
    """One topic: GET/HEAD subscribe, POST publishes, OPTIONS answers preflights."""

    isLeaf = True
    _log = Logger()

    def __init__(self, hub: Hub, name: str) -> None:
        super().__init__()
        self._hub = hub
        self._name = name

    def render(self, request: Request) -> bytes | int:
        hub = self._hub
        refused = hub.check_origin(request)
        if refused is not None:
            return refused
        if not TOPIC_NAME.match(self._name):
            return _answer(
                request, 400,
                "Bad Request: a topic name is 1 to 128 letters, digits, '_', '.' or '-' "
                "(not starting with '.')",
            )  # fmt: skip
        method = request.method
        if method in (b"GET", b"HEAD"):
            return self._subscribe(request)
        if method == b"POST":
            return self._publish(request)
        if method == b"OPTIONS":
            request.setResponseCode(204)
            request.setHeader(b"access-control-allow-methods", _ALLOW)
            request.setHeader(b"access-control-allow-headers", _PREFLIGHT_HEADERS)
            request.setHeader(b"access-control-max-age", b"600")
            request.setHeader(b"allow", _ALLOW)
            return b""
        return _answer(
            request, 405,
            "Method Not Allowed: GET (or HEAD) subscribes, POST publishes",
            allow=_ALLOW.decode(),
        )  # fmt: skip

    def _subscribe(self, request: Request) -> bytes | int:
        hub = self._hub
        refused = hub.check_token(request, hub.subscribe_token, "subscribing")
        if refused is not None:
            return refused
        if not hub.available():
            return _answer(
                request, 503, "Service Unavailable: the hub cannot reach Redis; retry later",
                retry_after="1",
            )  # fmt: skip
        if request.method == b"GET":
            if hub.subscribers >= hub.max_subscribers:
                return _answer(
                    request, 503,
                    f"Service Unavailable: this hub serves {hub.max_subscribers} subscribers "
                    "already (--max-subscribers); retry later or use another hub process",
                    retry_after="5",
                )  # fmt: skip
            try:
                hub.channel(self._name)  # a HEAD creates no topic
            except ChannelLimitReached:
                return self._too_many_topics(request)
            hub.subscribers += 1
            request.notifyFinish().addBoth(self._unsubscribed)
        resource = hub.router.getChild(self._name.encode(), request)
        result: bytes | int = resource.render(request)
        return result

    def _too_many_topics(self, request: Request) -> bytes:
        return _answer(
            request, 503,
            f"Service Unavailable: this hub serves {self._hub.max_topics} topics already "
            "(--max-topics); idle topics are dropped soon, retry later",
            retry_after=str(self._hub.router.retry_after),
        )  # fmt: skip

    def _unsubscribed(self, _: object) -> None:
        self._hub.subscribers -= 1

    def _publish(self, request: Request) -> bytes | int:
        hub = self._hub
        refused = hub.check_token(request, hub.publish_token, "publishing")
        if refused is not None:
            return refused
        if getattr(request, "body_too_large", False):
            return hub._too_large().answer(request)
        events = query_args(request).get(b"event", [])
        if len(events) > 1:
            return _answer(request, 400, "Bad Request: give the event parameter once")
        try:
            data = (request.content.read() if request.content else b"").decode("utf-8")
            event = events[0].decode("utf-8") if events else None
        except UnicodeDecodeError:
            return _answer(request, 400, "Bad Request: the body and event type must be UTF-8")
        if event == "":
            return _answer(request, 400, "Bad Request: the event parameter must not be empty")
        try:
            hub.channel(self._name)
        except ChannelLimitReached:
            return self._too_many_topics(request)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = maybeDeferred(hub.router.publish, self._name, data, event)
        d.addCallbacks(
            self._published, self._publish_failed, callbackArgs=(request,), errbackArgs=(request,)
        )
        d.addCallback(lambda body: self._reply(body, request, gone))
        return NOT_DONE_YET

    def _published(self, event_id: str, request: Request) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"id": event_id, "topic": self._name}).encode() + b"\n"

    @staticmethod
    def _reply(body: object, request: Request, gone: list[bool]) -> None:
        """Send the answer, unless the publisher hung up (the event may be stored)."""
        if not gone:
            request.write(body)
            request.finish()

    def _publish_failed(self, failure: Failure, request: Request) -> bytes:
        if failure.check(ValueError):
            body = _answer(request, 400, f"Bad Request: {failure.getErrorMessage()}")
        elif failure.check(ChannelUnavailable):
            self._log.warn(
                "publish to {topic} failed: {error}",
                topic=self._name,
                error=failure.getErrorMessage(),
            )
            body = _answer(
                request, 503,
                "Service Unavailable: the event could not be stored (Redis is unreachable); "
                "nothing was published, retry later",
                retry_after="1",
            )  # fmt: skip
        else:
            self._log.failure("publish to {topic} failed", failure, topic=self._name)
            body = _answer(request, 500, "Internal Server Error: the event was not published")
        return body
