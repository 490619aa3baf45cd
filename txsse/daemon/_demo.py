"""The built-in demo event stream that ``twistd sse --demo`` serves and consumes.

It is served by txsse's own server side: a :class:`~txsse.server.MemoryChannel`
behind an :class:`~txsse.server.EventStreamResource`, on a free loopback port
of the daemon's own process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import NoReturn, cast

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from txsse._reactor import default_reactor
from txsse.daemon._service import SSEDaemon
from txsse.server import EventStreamResource, MemoryChannel

#: Seconds between two demo events.
DEMO_INTERVAL = 1.0
#: The reconnection time the demo stream asks for, in seconds.
DEMO_RETRY = 1.0
#: How many demo events a reconnecting client can catch up on.
DEMO_HISTORY = 1000


def demo_event(n: int, now: datetime) -> tuple[str, str | None]:
    """The demo stream's event number ``n``.

    Every fifth event is a two-line ``message``; the others are ``tick`` events
    with JSON data.

    :param n: the event number (also its ID).
    :param now: the time to put in a ``tick``.
    :returns: the event's data and type (``None`` for ``message``).
    """
    if n % 5 == 0:
        return f"event {n} is a message\nof two lines", None
    return json.dumps({"n": n, "time": now.isoformat(timespec="seconds")}), "tick"


class DemoService(MultiService):
    """Serve the demo stream on a free loopback port, then run the daemon on it.

    Events are numbered from 1 and kept in a history, so a daemon that
    reconnects with ``Last-Event-ID`` catches up on what it missed.

    :param daemon: the daemon to point at the demo stream; it becomes a child.
    :param reactor: the reactor to listen (``IReactorTCP``) and publish
        (``IReactorTime``) with; the global one by default.
    :param interval: seconds between two demo events.
    """

    log = Logger()

    def __init__(
        self,
        daemon: SSEDaemon,
        reactor: IReactorTime | None = None,
        interval: float = DEMO_INTERVAL,
    ) -> None:
        super().__init__()
        reactor = default_reactor(reactor)
        self._reactor = reactor
        self.channel = MemoryChannel(history=DEMO_HISTORY, first_id=1)
        self.resource = EventStreamResource(self.channel, retry=DEMO_RETRY, reactor=reactor)
        self._count = 0
        self._ticker = LoopingCall(self.publish)
        self._ticker.clock = reactor
        self._interval = interval
        self._daemon = daemon
        self._port: IListeningPort | None = None
        daemon.setServiceParent(self)

    def publish(self) -> str:
        """Publish the next demo event.

        :returns: its ID.
        """
        self._count += 1
        data, event = demo_event(self._count, datetime.now(timezone.utc))
        return self.channel.publish(data, event=event, id=str(self._count))

    def startService(self) -> None:
        """Listen on 127.0.0.1 with a free port, start publishing, start the daemon."""
        root = Resource()
        root.putChild(b"events", self.resource)
        site = Site(root)
        site.noisy = False
        # Twisted's ServerFactory is invariant in its protocol type, so mypy does
        # not see a Site as the ServerFactory that listenTCP takes.
        factory = cast(ServerFactory, site)
        self._port = IReactorTCP(self._reactor).listenTCP(0, factory, interface="127.0.0.1")
        address = self._port.getHost()
        assert isinstance(address, IPv4Address)
        url = f"http://127.0.0.1:{address.port}/events"
        self._daemon.url = url
        self.log.info("demo event stream at {url}", url=url)
        self._ticker.start(self._interval, now=False)
        super().startService()

    def stopService(self) -> Deferred[object]:
        """Stop the daemon, then stop publishing, end the streams and stop listening.

        :returns: a Deferred that fires once all of it is done.
        """
        d: Deferred[object] = super().stopService()

        def stop_serving(_: object) -> object:
            if self._ticker.running:
                self._ticker.stop()
            self.resource.close()
            port, self._port = self._port, None
            return port.stopListening() if port is not None else None

        return d.addCallback(stop_serving)


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``./scripts/demo``'s arguments between twistd and ``twistd sse``.

    twistd's own long options (``--logfile FILE``, ``--logfile=FILE``,
    ``--reactor poll``, ``--syslog``...) go to twistd; everything else
    (``--format sse``, ``-e tick``, ``--help``...) goes to ``sse``.

    :param arguments: the script's arguments.
    :returns: twistd's arguments and the plugin's, each in the order given.
    """
    from twisted.scripts.twistd import ServerOptions  # type: ignore[attr-defined]

    takes_value = {}
    for spec in ServerOptions().longOpt:
        name = spec.rstrip("=")
        if name not in ("help", "version"):
            takes_value[name] = spec.endswith("=")
    twistd: list[str] = []
    sse: list[str] = []
    remaining = list(arguments)
    while remaining:
        argument = remaining.pop(0)
        name, equals, _ = argument[2:].partition("=")
        if not argument.startswith("--") or name not in takes_value:
            sse.append(argument)
            continue
        twistd.append(argument)
        if takes_value[name] and not equals and remaining:
            twistd.append(remaining.pop(0))
    return twistd, sse


def main(arguments: Sequence[str] | None = None) -> NoReturn:
    """``./scripts/demo``: the demo daemon, events on standard output, logs on standard error.

    Runs ``twistd --nodaemon --pidfile= [twistd options] sse --demo [options]``
    in this process (see :func:`split_arguments`). Standard output carries
    nothing but the events, one JSON line each: twistd's log, which it writes to
    standard output with ``--nodaemon``, goes to standard error (or to
    ``--logfile``).

    :param arguments: the script's arguments; ``sys.argv[1:]`` by default.
    """
    twistd, sse = split_arguments(sys.argv[1:] if arguments is None else arguments)
    sys.stdout.flush()
    events = os.dup(1)  # the original standard output, for the events only
    os.dup2(2, 1)  # what twistd writes to standard output goes to standard error
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", *twistd, "sse", "--demo"]
    sys.argv += ["--output", f"/dev/fd/{events}", *sse]  # a later --output wins
    from twisted.scripts.twistd import run

    run()
    sys.exit(0)
