"""A scriptable twisted.web event-stream server for loopback client tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web import http, resource, server

EVENT_STREAM = b"text/event-stream; charset=utf-8"


def numbered(first: int, last: int) -> bytes:
    """The bytes of events ``first`` to ``last`` (id N, data "event N")."""
    return b"".join(b"id: %d\ndata: event %d\n\n" % (n, n) for n in range(first, last + 1))


@dataclass
class Seen:
    """One request the server received."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CutPlan:
    """Cut a numbered stream at planned byte offsets, one cut per connection."""

    total: int
    cuts: list[int]
    stream: bytes = b""
    starts: dict[int, int] = field(default_factory=dict)

    @classmethod
    def random(cls, total: int, cuts: int, seed: int) -> CutPlan:
        """``cuts`` distinct random offsets inside a stream of ``total`` events."""
        plan = cls(total, [])
        offset = 0
        for n in range(1, total + 1):
            plan.starts[n] = offset
            offset += len(numbered(n, n))
        plan.stream = numbered(1, total)
        plan.cuts = sorted(random.Random(seed).sample(range(1, len(plan.stream)), cuts))
        return plan


class ScriptedResource(resource.Resource):
    """Serve the behaviour named by the request path (see ``render``)."""

    isLeaf = True

    def __init__(self, owner: StreamServer) -> None:
        super().__init__()
        self.owner = owner

    def render(self, request: server.Request) -> Any:
        owner = self.owner
        path = request.path.decode()
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        body = request.content.read() if request.content is not None else b""
        owner.seen.append(Seen(path, request.method.decode(), headers, body))
        owner.arrived()
        last_id = headers.get("last-event-id", "")
        name, _, arg = path.strip("/").partition("/")
        handler = getattr(self, "serve_" + name.replace("-", "_"), None)
        if handler is None:
            request.setResponseCode(404)
            return b"no such script"
        return handler(request, last_id, arg)

    def _stream(self, request: server.Request) -> None:
        request.setHeader(b"content-type", EVENT_STREAM)
        request.setHeader(b"cache-control", b"no-cache")
        self.owner.open_requests.append(request)
        request.notifyFinish().addBoth(lambda _: self.owner.open_requests.remove(request))

    def serve_events(self, request: server.Request, last_id: str, arg: str) -> Any:
        """Events after Last-Event-ID up to ``arg``, one write each, then end the body."""
        self._stream(request)
        start = int(last_id or 0) + 1
        for n in range(start, int(arg) + 1):
            request.write(numbered(n, n))
        request.finish()
        return server.NOT_DONE_YET

    def serve_cut(self, request: server.Request, last_id: str, arg: str) -> Any:
        """The owner's CutPlan: resume after Last-Event-ID, drop at the next planned cut."""
        plan = self.owner.plan
        assert plan is not None
        last = int(last_id or 0)
        if last >= plan.total:
            request.setResponseCode(204)
            return b""
        self._stream(request)
        start = plan.starts[last + 1]
        if not plan.cuts:
            request.write(plan.stream[start:])
            request.finish()
            return server.NOT_DONE_YET
        cut = plan.cuts.pop(0)
        if cut > start:
            piece = plan.stream[start:cut]
            step = max(1, len(piece) // 3)
            for i in range(0, len(piece), step):
                request.write(piece[i : i + step])
        request.channel.transport.loseConnection()  # type: ignore[union-attr]
        return server.NOT_DONE_YET

    def serve_drop_mid(self, request: server.Request, last_id: str, arg: str) -> Any:
        """First connection: one event, half of the next, dropped; then the rest."""
        self._stream(request)
        if not last_id:
            request.write(b"id: 1\ndata: one\n\n")
            request.write(b"id: 2\ndata: par")
            request.channel.transport.loseConnection()  # type: ignore[union-attr]
        else:
            request.write(b"id: 2\ndata: two\n\n")
        return server.NOT_DONE_YET

    def serve_stall(self, request: server.Request, last_id: str, arg: str) -> Any:
        """One event, then silence (the connection stays open)."""
        self._stream(request)
        request.write(b"id: %d\ndata: stalled\n\n" % (int(last_id or 0) + 1))
        return server.NOT_DONE_YET

    def serve_hang(self, request: server.Request, last_id: str, arg: str) -> Any:
        """Never answer (no status line, no headers)."""
        self.owner.open_requests.append(request)
        request.notifyFinish().addBoth(lambda _: self.owner.open_requests.remove(request))
        return server.NOT_DONE_YET

    def serve_garbage(self, request: server.Request, last_id: str, arg: str) -> Any:
        """Bytes that are not a sensible event stream, then one good event."""
        self._stream(request)
        request.write(b"\xff\xfe\x00\x80garbage\r\n\r\n:\x00\xc3\nretry: x\ndata\xe2\x82: z\n\n")
        request.write(random.Random(1).randbytes(2000).replace(b"\n", b"").replace(b"\r", b""))
        request.write(b"\n\nevent: good\ndata: ok\n\n")
        return server.NOT_DONE_YET

    def serve_redirect(self, request: server.Request, last_id: str, arg: str) -> Any:
        """302 to ``/arg`` (or without Location when ``arg`` is ``none``)."""
        request.setResponseCode(302)
        if arg != "none":
            request.setHeader(b"location", b"/" + arg.encode())
        return b""

    def serve_status(self, request: server.Request, last_id: str, arg: str) -> Any:
        """Answer with status ``arg`` once, then a stream with one event."""
        key = f"status/{arg}"
        if self.owner.counts.get(key):
            return self.serve_events(request, "", "1")
        self.owner.counts[key] = 1
        code, _, retry_after = arg.partition("-")
        request.setResponseCode(int(code))
        if retry_after:
            request.setHeader(b"retry-after", retry_after.encode())
        request.setHeader(b"content-type", b"text/plain")
        return b"status " + code.encode()

    def serve_text(self, request: server.Request, last_id: str, arg: str) -> Any:
        """200 with the wrong content type."""
        request.setHeader(b"content-type", b"text/html")
        return b"<html>not a stream</html>"


class StreamServer:
    """A loopback twisted.web server running :class:`ScriptedResource`."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.open_requests: list[server.Request] = []
        self.counts: dict[str, int] = {}
        self.plan: CutPlan | None = None
        self._waiters: list[tuple[int, Deferred[None]]] = []
        site = server.Site(ScriptedResource(self))
        site.displayTracebacks = False
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]

    def url(self, path: str) -> str:
        """The loopback URL of ``path``."""
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"

    def arrived(self) -> None:
        for waiter in list(self._waiters):
            if len(self.seen) >= waiter[0]:
                self._waiters.remove(waiter)
                waiter[1].callback(None)

    def requests(self, count: int, timeout: float = 10.0) -> Deferred[None]:
        """Fire once ``count`` requests have arrived (fails after ``timeout``)."""
        waiter: Deferred[None] = Deferred()
        self._waiters.append((count, waiter))
        self.arrived()
        return waiter.addTimeout(timeout, reactor)  # type: ignore[arg-type]

    def stop(self) -> Deferred[Any]:
        """Close open streams and stop listening."""
        for request in list(self.open_requests):
            request.channel.transport.loseConnection()  # type: ignore[union-attr]
        return self.port.stopListening()  # type: ignore[no-any-return]


__all__ = ["CutPlan", "StreamServer", "http"]
