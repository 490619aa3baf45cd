"""A plain twisted.web event-stream server on 127.0.0.1, run in a reactor thread.

The blocking tests drive it from ordinary threads: every method hops into the
reactor thread and waits for the answer.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from txsse._blocking import ReactorThread


class _Stream(Resource):
    """``/events``: an endless text/event-stream; ``/status/N``: an HTTP N answer."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.open: list[Any] = []
        self.requests: list[dict[str, str]] = []
        self.on_request: list[bytes] = []

    def render_GET(self, request: Any) -> Any:
        self.requests.append(
            {
                k.decode().lower(): v[0].decode()
                for k, v in request.requestHeaders.getAllRawHeaders()
            }
        )
        path = request.path.decode()
        if path.startswith("/status/"):
            request.setResponseCode(int(path.rsplit("/", 1)[1]))
            request.setHeader(b"content-type", b"text/plain")
            return b"not a stream"
        if path == "/text":
            request.setHeader(b"content-type", b"text/html")
            return b"<html></html>"
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b"".join(self.on_request) or b": hello\n\n")
        self.open.append(request)
        request.notifyFinish().addBoth(lambda _: self.open.remove(request))
        return NOT_DONE_YET


class LoopbackServer:
    """The server, listening on an ephemeral port of 127.0.0.1 in ``thread``'s reactor.

    :param thread: the reactor thread to listen in.
    """

    def __init__(self, thread: ReactorThread) -> None:
        self.thread = thread
        self.resource = _Stream()
        self.port: Any = thread.call(
            lambda: thread.reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1"),
            timeout=10,
        )
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/events"

    def url_for(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return self.url.rsplit("/", 1)[0] + path

    def send(self, chunk: bytes) -> None:
        """Write ``chunk`` to every open stream."""

        def write() -> None:
            for request in list(self.resource.open):
                request.write(chunk)

        self.thread.call(write, timeout=10)

    def end_streams(self) -> None:
        """End every open stream cleanly (the clients reconnect)."""

        def finish() -> None:
            for request in list(self.resource.open):
                request.finish()

        self.thread.call(finish, timeout=10)

    def clients(self) -> int:
        """How many streams are open now."""
        return int(self.thread.call(lambda: len(self.resource.open), timeout=10))

    def stop(self) -> None:
        """Stop listening and drop every open stream."""

        def stop() -> Any:
            for request in list(self.resource.open):
                request.loseConnection()
            return self.port.stopListening()

        self.thread.call(stop, timeout=10)
