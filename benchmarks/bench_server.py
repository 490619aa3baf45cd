"""Fan-out benchmark: txsse's EventStreamResource against aiohttp-sse and sse-starlette.

Every server runs in its own process and serves the same thing: ``GET /events``
(an event stream); a line protocol on a second port broadcasts one event (``P``)
or counts the registered subscribers (``S``). This process is the
load: it opens N loopback connections that read everything, then triggers
broadcasts one at a time and waits until every connection has the event.

Measured per server and N:

* memory per idle subscriber: the server's RSS growth from before the N
  connections to after, divided by N;
* time to deliver one broadcast to all N (median over the broadcasts), and the
  delivered events per second over all of them;
* server CPU (user + system, from /proc) per delivered event.

Usage: benchmarks/run.sh server [--sizes 100,1000,10000] [--only txsse,aiohttp-sse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version

#: "txsse" writes straight to idle sockets (the default); "txsse-transport" is the same
#: server with ``direct_writes=False``: every byte through Twisted's transport.
KINDS = ["txsse", "txsse-transport", "twisted-plain", "aiohttp-sse", "sse-starlette"]
TXSSE_KINDS = ("txsse", "txsse-transport")
PAYLOAD = "x" * 80
KEEPALIVE = 15.0


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def event_data(seq: int) -> str:
    return json.dumps({"seq": seq, "payload": PAYLOAD})


# -- servers (each runs in a child process) -----------------------------------


def serve_twisted(port: int, plain: bool, direct_writes: bool = True) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    from txsse import format_event
    from txsse.server import EventStreamResource, MemoryChannel

    count = [0]

    if plain:

        class Plain(Resource):
            """What one writes without txsse: a set of requests, request.write each."""

            isLeaf = True

            def __init__(self) -> None:
                super().__init__()
                self.requests: set = set()

            def render_GET(self, request):
                request.setHeader(b"content-type", b"text/event-stream")
                request.setHeader(b"cache-control", b"no-cache")
                request.write(b":\n")
                self.requests.add(request)
                request.notifyFinish().addBoth(lambda _: self.requests.discard(request))
                return NOT_DONE_YET

        stream = Plain()

        def publish(data: str) -> None:
            count[0] += 1
            chunk = format_event(data, event="update", id=str(count[0]))
            for request in list(stream.requests):
                request.write(chunk)

        def subscribers() -> int:
            return len(stream.requests)

    else:
        channel = MemoryChannel(history=1000)
        # All features on: keep-alives, retry hint, history, slow-client bound.
        stream = EventStreamResource(
            channel, keepalive=KEEPALIVE, retry=3.0, direct_writes=direct_writes
        )

        def publish(data: str) -> None:
            count[0] += 1
            channel.publish(data, event="update")

        def subscribers() -> int:
            return channel.subscriber_count

    from twisted.internet.protocol import Factory, Protocol

    class Control(Protocol):
        def dataReceived(self, data: bytes) -> None:
            for command in data.split():
                if command == b"P":
                    publish(event_data(count[0]))
                    self.transport.write(b"ok\n")
                else:
                    self.transport.write(b"%d\n" % subscribers())

    root = Resource()
    root.putChild(b"events", stream)
    site = Site(root)
    site.log = lambda request: None  # no access log for any server
    listening = reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    control = reactor.listenTCP(0, Factory.forProtocol(Control), interface="127.0.0.1")
    reactor.callWhenRunning(
        lambda: print("READY", listening.getHost().port, control.getHost().port, flush=True)
    )
    reactor.run()


_servers: list = []


async def control_server(queues: set, count: list[int]) -> int:
    """The trigger for the asyncio servers: ``P`` broadcasts, ``S`` counts."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while command := await reader.readline():
            if command.strip() == b"P":
                count[0] += 1
                item = (count[0], event_data(count[0]))
                for queue in queues:
                    queue.put_nowait(item)
                writer.write(b"ok\n")
            else:
                writer.write(b"%d\n" % len(queues))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    _servers.append(server)
    return server.sockets[0].getsockname()[1]


def serve_aiohttp(port: int) -> None:
    from aiohttp import web
    from aiohttp_sse import sse_response

    queues: set[asyncio.Queue] = set()
    count = [0]

    async def events(request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue = asyncio.Queue()
        async with sse_response(request) as response:
            response.ping_interval = KEEPALIVE
            queues.add(queue)
            try:
                while True:
                    seq, data = await queue.get()
                    await response.send(data, id=str(seq), event="update")
            except ConnectionResetError:
                pass  # the client went away (the load closing its connections)
            finally:
                queues.discard(queue)
        return response

    app = web.Application()
    app.router.add_get("/events", events)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        control = await control_server(queues, count)
        print("READY", site._server.sockets[0].getsockname()[1], control, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_starlette(port: int) -> None:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    queues: set[asyncio.Queue] = set()
    count = [0]

    async def events(request):
        queue: asyncio.Queue = asyncio.Queue()
        queues.add(queue)

        async def stream():
            try:
                while True:
                    seq, data = await queue.get()
                    yield {"data": data, "id": str(seq), "event": "update"}
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream(), ping=int(KEEPALIVE))

    app = Starlette(
        routes=[
            Route("/events", events),
        ]
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            port = self.servers[0].sockets[0].getsockname()[1]
            control = await control_server(queues, count)
            print("READY", port, control, flush=True)

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", access_log=False, backlog=1024
    )
    Server(config).run()


def serve(kind: str, port: int) -> None:
    raise_fd_limit()
    if kind in TXSSE_KINDS:
        serve_twisted(port, plain=False, direct_writes=kind == "txsse")
    elif kind == "twisted-plain":
        serve_twisted(port, plain=True)
    elif kind == "aiohttp-sse":
        serve_aiohttp(port)
    elif kind == "sse-starlette":
        serve_starlette(port)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


# -- the load -------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """Reads a stream and counts ``data:`` lines (one per event)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.headers = False
        self.events = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(  # type: ignore[attr-defined]
            b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data
        if not self.headers and b"\r\n\r\n" in buf:
            self.headers = True
            self.run.headers += 1
        found = buf.count(b"data:")
        self.tail = buf[-4:]
        if found:
            self.events += found
            self.run.delivered(self, found)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost += 1


@dataclass
class Result:
    kind: str
    n: int
    kib_per_subscriber: float
    deliver_ms: float
    events_per_s: float
    cpu_us_per_event: float


class Run:
    def __init__(self, n: int) -> None:
        self.n = n
        self.headers = 0
        self.lost = 0
        self.target = 0
        self.reached = 0
        self.done: asyncio.Future | None = None

    def delivered(self, sub: Subscriber, found: int) -> None:
        if sub.events >= self.target and sub.events - found < self.target:
            self.reached += 1
            if self.reached == self.n and self.done is not None and not self.done.done():
                self.done.set_result(time.perf_counter())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Control:
    """The persistent trigger connection to a server's control port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, command: bytes) -> bytes:
        self.writer.write(command + b"\n")
        return (await asyncio.wait_for(self.reader.readline(), 60)).strip()


async def wait_until(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def measure(
    kind: str, port: int, control_port: int, pid: int, n: int, broadcasts: int, transports: list
) -> Result:
    loop = asyncio.get_running_loop()
    control = Control(*await asyncio.open_connection("127.0.0.1", control_port))
    run = Run(n)
    # Warm up the code paths, then take the baseline.
    warm = [await loop.create_connection(lambda: Subscriber(Run(1)), "127.0.0.1", port)]
    await asyncio.sleep(0.2)
    await control.ask(b"P")
    await asyncio.sleep(0.2)
    for transport, _ in warm:
        transport.close()
    await asyncio.sleep(0.3)
    before = rss_kib(pid)
    subs: list[Subscriber] = []
    batch = 200
    for start in range(0, n, batch):
        results = await asyncio.gather(
            *(
                loop.create_connection(lambda: Subscriber(run), "127.0.0.1", port)
                for _ in range(min(batch, n - start))
            )
        )
        for transport, protocol in results:
            transports.append(transport)
            subs.append(protocol)
        await wait_until(lambda: run.headers >= len(subs), "response headers", 60)

    async def registered() -> int:
        return int(await control.ask(b"S"))

    deadline = time.monotonic() + 60
    while await registered() < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind}: subscribers never all registered")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    times = []
    cpu0 = cpu_seconds(pid)
    wall0 = time.perf_counter()
    for k in range(broadcasts):
        run.target = k + 1
        run.reached = 0
        run.done = loop.create_future()
        t0 = time.perf_counter()
        await control.ask(b"P")
        t1 = await asyncio.wait_for(run.done, 120)
        times.append(t1 - t0)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds(pid) - cpu0
    delivered = n * broadcasts
    if run.lost:
        raise RuntimeError(f"{kind}: {run.lost} subscribers lost their connection")
    # The caller kills the server first, then the connections go with the loop.
    return Result(
        kind,
        n,
        (after - before) / n,
        statistics.median(times) * 1000,
        delivered / wall,
        cpu / delivered * 1e6,
    )


def broadcasts_for(n: int) -> int:
    return max(10, min(200, 200_000 // n))


async def bench(kind: str, n: int) -> Result:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    transports: list[asyncio.BaseTransport] = []
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        if not line.startswith("READY "):
            raise RuntimeError(f"{kind} did not start: {line!r}")
        port, control_port = map(int, line.split()[1:])
        return await measure(kind, port, control_port, proc.pid, n, broadcasts_for(n), transports)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for transport in transports:
            transport.close()


def report(results: list[Result]) -> None:
    print()
    print(
        f"{'server':<16} {'N':>6} {'KiB/sub':>8} {'deliver ms':>11}"
        f" {'events/s':>10} {'CPU us/event':>13}"
    )
    for r in results:
        print(
            f"{r.kind:<16} {r.n:>6} {r.kib_per_subscriber:>8.1f} {r.deliver_ms:>11.2f}"
            f" {r.events_per_s:>10.0f} {r.cpu_us_per_event:>13.2f}"
        )
    print()
    by = {(r.kind, r.n): r for r in results}
    for own in TXSSE_KINDS:
        print(f"ratios, {own} / peer (below 1 is better for txsse):")
        for r in results:
            mine = by.get((own, r.n))
            if r.kind in TXSSE_KINDS or mine is None:
                continue
            cpu = mine.cpu_us_per_event / r.cpu_us_per_event
            print(
                f"  vs {r.kind:<16} N={r.n:>6}: CPU/event {cpu:.2f}"
                f"  memory/sub {mine.kib_per_subscriber / max(r.kib_per_subscriber, 0.01):.2f}"
                f"  deliver time {mine.deliver_ms / r.deliver_ms:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--only", default=",".join(KINDS))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    raise_fd_limit()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.only.split(",")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f};"
        f" twisted {version('twisted')}, aiohttp {version('aiohttp')},"
        f" aiohttp-sse {version('aiohttp-sse')}, sse-starlette {version('sse-starlette')},"
        f" uvicorn {version('uvicorn')}; fd limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
    )
    print("keep-alives every 15 s in every server; txsse also: retry hint, history 1000,")
    print("(txsse: direct socket writes; txsse-transport: direct_writes=False)")
    print("slow-client bound; event: ~100 bytes of JSON with id and event type.")
    results = []
    for n in sizes:
        for kind in kinds:
            result = asyncio.run(bench(kind, n))
            print(
                f"  {kind} N={n}: {result.kib_per_subscriber:.1f} KiB/sub,"
                f" {result.deliver_ms:.2f} ms/broadcast,"
                f" {result.cpu_us_per_event:.2f} us CPU/event",
                flush=True,
            )
            results.append(result)
    report(results)


if __name__ == "__main__":
    main()
