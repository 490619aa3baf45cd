"""One Redis connection that reconnects with backoff and fails fast while down.

The RESP protocol comes from :mod:`txredisapi` (its ``RedisProtocol``, with
the ``hiredis`` reader when installed); the connection's life cycle is
Twisted's own :class:`~twisted.application.internet.ClientService` with
:func:`~twisted.application.internet.backoffPolicy`, so the clock is
injectable and a command sent while Redis is unreachable fails at once with
:class:`~txsse.errors.ChannelUnavailable` instead of waiting in a queue.
"""

from __future__ import annotations

import random
import typing
from collections.abc import Callable
from typing import NamedTuple, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IProtocol,
    IReactorTCP,
    IReactorTime,
    IReactorUNIX,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsse._reactor import default_reactor
from txsse.errors import ChannelUnavailable

_DEFAULT_PORT = 6379

_S = TypeVar("_S", bound=Service)

RedisReply: TypeAlias = str | bytes | int | list["RedisReply"] | None
"""A decoded Redis reply: a bulk or status string (``bytes`` if it is not UTF-8),
an integer, ``None`` (nil) or an array of replies. Error replies fail the
command's Deferred instead."""


class _RedisClient(typing.Protocol):
    """What a connection calls on txredisapi's ``RedisProtocol`` (txredisapi is untyped)."""

    def execute_command(self, *args: str | bytes | int) -> Deferred[RedisReply]:
        """Send one command; the Deferred fires with its reply."""

    def whenConnected(self) -> Deferred[_RedisClient]:
        """Fires with the protocol once AUTH and SELECT are done (at once if they are)."""

    def whenDisconnected(self) -> Deferred[_RedisClient]:
        """Fires with the protocol once its connection is lost."""


class RedisURL(NamedTuple):
    """Where and how to connect, parsed from a ``redis://`` URL.

    :ivar host: host name or address (empty for a UNIX socket).
    :ivar port: TCP port.
    :ivar db: database number (``SELECT``), or ``None`` for the default 0.
    :ivar username: ACL user name, or ``None``.
    :ivar password: password (``AUTH``), or ``None``.
    :ivar tls: whether to speak TLS (``rediss://``).
    :ivar path: UNIX socket path (``unix://``), or ``""``.
    """

    host: str
    port: int
    db: int | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    path: str = ""

    def __str__(self) -> str:
        """The URL without its password, fit for logs."""
        user = f"{self.username or ''}:***@" if self.password else ""
        db = f"/{self.db}" if self.db is not None else ""
        if self.path:
            return f"unix://{user}{self.path}" + (f"?db={self.db}" if self.db is not None else "")
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}{self.host}:{self.port}{db}"


def parse_redis_url(url: str) -> RedisURL:
    """Parse ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` or ``unix://``.

    :param url: the URL, as given to ``twistd sse-hub --redis``.
    :returns: the parsed form.
    :raises ValueError: for another scheme, a missing host, a bad port or a
        database that is not a non-negative integer.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported Redis URL {url!r}: use redis://host:port/db, rediss:// (TLS) "
            "or unix:///path/to/socket"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    db_text = parts.path.lstrip("/") if scheme != "unix" else ""
    for param in parts.query.split("&") if parts.query else ():
        name, _, value = param.partition("=")
        if name == "db":
            db_text = value
    db: int | None = None
    if db_text:
        if not db_text.isdigit():
            raise ValueError(f"Redis database in {url!r} must be a non-negative integer")
        db = int(db_text)
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"Redis URL {url!r} names no socket path")
        return RedisURL("", 0, db, username, password, False, parts.path)
    if not parts.hostname:
        raise ValueError(f"Redis URL {url!r} names no host")
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        raise ValueError(f"Redis URL {url!r} has an invalid port") from None
    return RedisURL(parts.hostname, port, db, username, password, scheme == "rediss")


class _SubscriberProtocol(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """A connection in pub/sub mode: each message goes to its connection's handler."""

    on_message: Callable[[str, str], None]
    on_read: Callable[[], None] | None = None

    def messageReceived(self, pattern: str | None, channel: str, message: str) -> None:
        """One ``PUBLISH``ed message (subscription confirmations are replies)."""
        self.on_message(channel, message)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        """Handle every reply and message of one read, then say so (to batch deliveries)."""
        super().dataReceived(data, unpause)
        if self.on_read is not None:
            self.on_read()


class _ProtocolFactory(Factory):
    """Builds txredisapi protocols and takes the calls they make on their factory."""

    _log = Logger()
    noisy = False

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn
        self.isLazy = True  # read by txredisapi when AUTH or SELECT fail

    def buildProtocol(self, addr: object) -> Protocol:
        """A protocol with our settings, the injected clock and no number guessing."""
        conn = self._conn
        url = conn.url
        on_message = conn._on_message
        kind = txredisapi.RedisProtocol if on_message is None else _SubscriberProtocol
        built = kind(
            "utf-8",
            replyTimeout=self._conn.reply_timeout,
            password=url.password,
            dbid=url.db or None,
            convertNumbers=False,
            username=url.username,
        )
        built.callLater = conn.reactor.callLater
        built.factory = self
        if on_message is not None:
            built.on_message = on_message
            built.on_read = conn._on_read
        # txredisapi is untyped: its RedisProtocol is a LineReceiver, a Twisted Protocol.
        protocol: Protocol = built
        return protocol

    def stopTrying(self) -> None:
        """AUTH or SELECT failed and txredisapi gives up; we keep retrying with backoff."""

    def connectionError(self, why: str) -> None:
        """AUTH or SELECT failed: say so; the connection is closed and retried."""
        if not self._conn.running:
            return
        self._log.error("{url}: {why}", url=str(self._conn.url), why=why)


class RedisConnection(Service):
    """A Redis connection kept open by a :class:`ClientService`.

    Start it (it is an :class:`~twisted.application.service.IService`) and
    send commands with :meth:`execute`. While the connection is down every
    command fails at once with :class:`~txsse.errors.ChannelUnavailable` and
    the service reconnects with exponential backoff.

    :param url: a ``redis://`` URL (see :func:`parse_redis_url`) or a parsed one.
    :param reactor: provides the clock (``IReactorTime``) and the network
        (``IReactorTCP``, or ``IReactorUNIX`` for a ``unix://`` URL); the global
        reactor by default.
    :param reply_timeout: seconds to wait for any reply before the connection
        is dropped as dead (and reconnected); ``None`` waits forever.
    :param initial_delay: first reconnection delay, in seconds (plus a random
        jitter of up to as much again); each failure multiplies it by 1.5.
    :param max_delay: longest reconnection delay, in seconds (before jitter).
    :param jitter: returns the seconds added to each reconnection delay; by default
        a uniformly random amount up to ``initial_delay`` (tests pass their own).
    :param on_message: makes this a pub/sub connection: called with the
        channel and the payload of every message received after a
        ``SUBSCRIBE`` (sent with :meth:`execute`, one channel per command).
    :param on_connect: called each time the connection is (re)established,
        before the commands waiting in :meth:`when_connected` go on.
    :param on_read: with ``on_message``: called after the messages of each
        read from the socket, so that they can be handled as one batch.
    :raises ValueError: for an invalid URL.
    """

    _log = Logger()

    def __init__(
        self,
        url: str | RedisURL,
        *,
        reactor: IReactorTime | None = None,
        reply_timeout: float | None = 10.0,
        initial_delay: float = 0.1,
        max_delay: float = 5.0,
        jitter: Callable[[], float] | None = None,
        on_message: Callable[[str, str], None] | None = None,
        on_connect: Callable[[], object] | None = None,
        on_read: Callable[[], None] | None = None,
    ) -> None:
        self.url = parse_redis_url(url) if isinstance(url, str) else url
        self.reactor: IReactorTime = default_reactor(reactor)
        self.reply_timeout = reply_timeout
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._jitter = jitter if jitter is not None else lambda: random.random() * initial_delay
        self._protocol: _RedisClient | None = None
        self._waiting: list[Deferred[None]] = []
        self._service: ClientService | None = None
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_read = on_read
        self._companions: dict[Callable[[RedisConnection], Service], Service] = {}

    def clone(
        self,
        *,
        reply_timeout: float | None,
        on_message: Callable[[str, str], None] | None = None,
        on_connect: Callable[[], object] | None = None,
        on_read: Callable[[], None] | None = None,
    ) -> RedisConnection:
        """Another connection to the same server, for example for pub/sub.

        :param reply_timeout: the new connection's reply timeout.
        :param on_message: see :class:`RedisConnection`.
        :param on_connect: see :class:`RedisConnection`.
        :param on_read: see :class:`RedisConnection`.
        :returns: a new, unstarted connection.
        """
        return RedisConnection(
            self.url,
            reactor=self.reactor,
            reply_timeout=reply_timeout,
            initial_delay=self._initial_delay,
            max_delay=self._max_delay,
            jitter=self._jitter,
            on_message=on_message,
            on_connect=on_connect,
            on_read=on_read,
        )

    def companion(self, make: Callable[[RedisConnection], _S]) -> _S:
        """The service ``make(self)`` made once for this connection, run with it.

        It is started now if this connection runs, and started and stopped
        with it. Channels share their server's pub/sub connection this way.

        :param make: builds the service from this connection; also its key.
        :returns: the same service for the same ``make``.
        """
        found = self._companions.get(make)
        if found is None:
            found = self._companions[make] = make(self)
            if self.running:
                found.startService()
        return cast(_S, found)

    @property
    def connections(self) -> int:
        """Connections to Redis open now: this one and its companions' (metrics)."""
        own = 1 if self._protocol is not None else 0
        return own + sum(getattr(c, "connections", 0) for c in self._companions.values())

    @property
    def connected(self) -> bool:
        """Whether a command sent now would reach Redis."""
        return self._protocol is not None

    def _endpoint(self) -> IStreamClientEndpoint:
        url = self.url
        if url.path:
            return UNIXClientEndpoint(IReactorUNIX(self.reactor), url.path, timeout=5)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            IReactorTCP(self.reactor), url.host, url.port, timeout=5
        )
        if url.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(url.host), endpoint)
        return endpoint

    def startService(self) -> None:
        """Connect, and keep reconnecting with backoff until stopped."""
        super().startService()
        self._service = ClientService(
            self._endpoint(),
            _ProtocolFactory(self),
            retryPolicy=backoffPolicy(
                self._initial_delay,
                self._max_delay,
                jitter=self._jitter,
            ),
            clock=self.reactor,
            prepareConnection=self._prepare,
        )
        self._service.startService()
        for companion in self._companions.values():
            companion.startService()

    def stopService(self) -> Deferred[None]:
        """Close the connection (and its companions') and stop reconnecting.

        :returns: a Deferred that fires once the connections are closed.
        """
        super().stopService()
        stopping = [maybeDeferred(c.stopService) for c in self._companions.values() if c.running]
        service, self._service = self._service, None
        self._protocol = None
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(ChannelUnavailable(f"Redis connection to {self.url} was stopped"))
        if service is not None:
            stopping.append(service.stopService())
        return gatherResults(stopping).addCallback(lambda _: None)

    def _prepare(self, protocol: IProtocol) -> None:
        # ClientService passes its proxy of what _ProtocolFactory built: the proxy
        # forwards every attribute to that txredisapi protocol, which is untyped.
        cast(_RedisClient, protocol).whenConnected().addCallback(self._ready)

    def _ready(self, protocol: _RedisClient) -> None:
        if self._service is None:
            return
        if self._protocol is None:
            self._log.info("connected to Redis at {url}", url=str(self.url))
        self._protocol = protocol
        protocol.whenDisconnected().addCallback(self._lost)
        if self._on_connect is not None:
            self._on_connect()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _lost(self, protocol: _RedisClient) -> None:
        if self._protocol is protocol:
            self._protocol = None
            if self._service is not None:
                self._log.warn(
                    "lost the connection to Redis at {url}; reconnecting", url=str(self.url)
                )

    def when_connected(self) -> Deferred[None]:
        """Wait for the connection.

        :returns: a Deferred that fires with ``None`` once connected (at once
            if already), or fails with :class:`~txsse.errors.ChannelUnavailable`
            if the service is stopped first.
        """
        if self._protocol is not None:
            return succeed(None)
        if self._service is None:
            return fail(ChannelUnavailable(f"Redis connection to {self.url} is not started"))
        d: Deferred[None] = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(d)
        return d

    def execute(self, *args: str | bytes | int) -> Deferred[RedisReply]:
        """Send one command.

        :param args: the command and its arguments, for example ``"XADD", key, ...``.
        :returns: a Deferred firing with the decoded reply (a :data:`RedisReply`:
            ``str``, ``bytes``, ``int``, ``None`` or nested lists). It fails with
            :class:`~txsse.errors.ChannelUnavailable` if Redis cannot be
            reached or the connection is lost before the reply, and with
            :class:`txredisapi.ResponseError` for an error reply.
        """
        protocol = self._protocol
        if protocol is None:
            return fail(ChannelUnavailable(f"Redis at {self.url} is unreachable; retry later"))
        try:
            d = protocol.execute_command(*args)
        except txredisapi.ConnectionError:
            return fail(ChannelUnavailable(f"Redis at {self.url} is unreachable; retry later"))
        return d.addErrback(self._translate)

    def _translate(self, failure: Failure) -> Failure:
        if failure.check(txredisapi.ConnectionError):  # includes its TimeoutError
            return Failure(
                ChannelUnavailable(
                    f"Redis at {self.url} dropped the connection ({failure.getErrorMessage()})"
                )
            )
        return failure
