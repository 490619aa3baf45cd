"""The built-in demo event stream that ``twistd sse --demo`` serves and consumes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from txsse._daemon import SSEDaemon
from txsse._format import format_event

#: Seconds between two demo events.
DEMO_INTERVAL = 1.0
#: The ``retry:`` the demo stream asks for, in milliseconds.
DEMO_RETRY = 1000


def demo_event(n: int, now: datetime) -> bytes:
    """Serialize the demo stream's event number ``n``.

    Every fifth event is a two-line ``message``; the others are ``tick`` events
    with JSON data.

    :param n: the event number, also its ID.
    :param now: the time to put in a ``tick``.
    :returns: the event's bytes.
    """
    if n % 5 == 0:
        return format_event(f"event {n} is a message\nof two lines", id=str(n))
    data = json.dumps({"n": n, "time": now.isoformat(timespec="seconds")})
    return format_event(data, event="tick", id=str(n))


class DemoStream(Resource):
    """An endless event stream numbered from 1, resumable with ``Last-Event-ID``.

    Each client gets its own sequence: after ``Last-Event-ID: 7`` the next event
    is number 8.

    :param clock: the time source for the interval between events.
    :param interval: seconds between two events.
    """

    isLeaf = True

    def __init__(self, clock: IReactorTime, interval: float = DEMO_INTERVAL) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._clock = clock
        self._interval = interval

    def render_GET(self, request: Any) -> int:
        """Start streaming events to ``request``.

        :param request: the client's :class:`twisted.web.server.Request`.
        :returns: ``NOT_DONE_YET``: the response never ends by itself.
        """
        last = request.getHeader(b"last-event-id") or b""
        counter = [int(last) if last.isdigit() and len(last) < 19 else 0]
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(format_event(retry=DEMO_RETRY))

        def send() -> None:
            counter[0] += 1
            request.write(demo_event(counter[0], datetime.now(timezone.utc)))

        call = LoopingCall(send)
        call.clock = self._clock
        call.start(self._interval, now=True)

        def stop(_: object) -> None:
            call.stop()

        request.notifyFinish().addBoth(stop)
        return NOT_DONE_YET


class DemoService(MultiService):
    """Serve the demo stream on a free loopback port, then run the daemon on it.

    :param daemon: the daemon to point at the demo stream; it becomes a child.
    :param reactor: the reactor to listen with; the global one by default.
    :param interval: seconds between two demo events.
    """

    log = Logger()

    def __init__(
        self, daemon: SSEDaemon, reactor: Any = None, interval: float = DEMO_INTERVAL
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._interval = interval
        self._daemon = daemon
        self._port: Any = None
        daemon.setServiceParent(self)  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        """Listen on 127.0.0.1 with a free port, then start the daemon."""
        site = Site(DemoStream(self._reactor, self._interval))  # type: ignore[no-untyped-call]
        site.noisy = False
        self._port = self._reactor.listenTCP(0, site, interface="127.0.0.1")
        url = f"http://127.0.0.1:{self._port.getHost().port}/events"
        self._daemon.url = url
        self.log.info("demo event stream at {url}", url=url)
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> Any:
        """Stop the daemon, then stop listening.

        :returns: a Deferred that fires once both are done.
        """
        d = super().stopService()  # type: ignore[no-untyped-call]
        port, self._port = self._port, None

        def stop_listening(_: object) -> object:
            return port.stopListening() if port is not None else None

        return d.addCallback(stop_listening)
