"""End-to-end client benchmark: events/s from a loopback server to a consumer.

One run measures, side by side, txsse's EventSource (a consumer awaiting
``next()``), the peers (httpx-sse sync and async, sseclient-py, launchdarkly-
eventsource, aiohttp-sse-client) and the ceiling: a bare Twisted Agent protocol
that only counts bytes. The server is a separate process that writes a prepared
response as fast as the socket takes it, either with one HTTP chunk per event
(as real servers flush) or without chunked coding (close-delimited body).

Run it through ``benchmarks/run.sh client`` (which builds ``benchmarks/.venv``
with the peers), or directly with that venv's python::

    benchmarks/.venv/bin/python benchmarks/bench_client.py [--quick] [--profile] [--repeat N]

Each (client, workload) pair runs once in a fresh subprocess; ratios are
against the bare-Twisted ceiling of the same workload.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (bytes of one event's lines, number of events)
WORKLOADS: dict[str, tuple[bytes, int]] = {
    "small": (b"data: x\n\n", 200_000),
    "small+id": (b'id: 1234567\nevent: tick\ndata: {"n": 1}\n\n', 150_000),
    "multiline": (b"data: line one of five\n" * 5 + b"\n", 80_000),
    "1KiB": (b"data: " + b"x" * 1018 + b"\n\n", 40_000),
}
ENCODINGS = ("chunked", "plain")
CLIENTS = (
    "twisted-bare",
    "txsse",
    "txsse-listener",
    "httpx-sse",
    "httpx-sse-async",
    "sseclient-py",
    "launchdarkly",
    "aiohttp-sse-client",
)
ASYNCIO_PEERS = ("httpx-sse-async", "aiohttp-sse-client")


# The server


def body_for(event: bytes, count: int, encoding: str) -> bytes:
    """The response (headers and body) for ``count`` copies of ``event``."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    if encoding == "chunked":
        chunk = b"%x\r\n%s\r\n" % (len(event), event)
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * count + b"0\r\n\r\n"
    return head + b"Connection: close\r\n\r\n" + event * count


def serve(port_file: str) -> None:
    """Serve ``/<workload>/<encoding>``: the prepared response, then close."""
    cache: dict[str, bytes] = {}
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    Path(port_file).write_text(str(listener.getsockname()[1]))
    while True:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    break
                request += data
            if not request:
                continue
            path = request.split(b" ", 2)[1].decode()
            _, workload, encoding = path.split("/")[:3]
            if path not in cache:
                event, count = WORKLOADS[workload]
                cache[path] = body_for(event, count, encoding)
            try:
                conn.sendall(cache[path])
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)
            except OSError:
                pass


# The clients (each runs in its own process and prints events/s)


def run_twisted_bare(url: str, count: int, event: bytes) -> int:
    """Agent + a protocol that only counts bytes: the ceiling of any Agent-based client."""
    from twisted.internet import defer, protocol
    from twisted.web.client import Agent, HTTPConnectionPool

    async def main(reactor: object) -> int:
        done: defer.Deferred[int] = defer.Deferred()

        class Count(protocol.Protocol):
            n = 0

            def dataReceived(self, data: bytes) -> None:
                self.n += len(data)

            def connectionLost(self, reason: object = None) -> None:
                done.callback(self.n)

        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        _start()
        response = await agent.request(b"GET", url.encode())
        response.deliverBody(Count())
        size = await done
        assert size == len(event) * count, (size, len(event) * count)
        return count

    return _react(main)


_t0: list[float] = []


def _start() -> None:
    """Mark the start of the measured part (after imports and set-up)."""
    _t0.append(time.perf_counter())


def _react(main: object) -> int:
    """Run a coroutine function under the reactor and return its result."""
    from twisted.internet import defer, task

    out: list[int] = []

    async def wrapper(reactor: object) -> None:
        out.append(await main(reactor))  # type: ignore[operator]

    try:
        task.react(lambda reactor: defer.ensureDeferred(wrapper(reactor)))
    except SystemExit as stop:
        if stop.code:
            raise
    return out[0]


def run_txsse(url: str, count: int, event: bytes) -> int:
    """txsse's EventSource, a consumer awaiting next() for every event."""
    sys.path.insert(0, str(ROOT))
    from txsse import EventSource

    async def main(reactor: object) -> int:
        source = EventSource(url, idle_timeout=None, reconnect_delay=60.0, max_reconnect_delay=60.0)
        _start()
        source.startService()
        got = 0
        next_event = source.next
        while got < count:
            await next_event()
            got += 1
        await source.close()
        return got

    return _react(main)


def run_txsse_listener(url: str, count: int, event: bytes) -> int:
    """txsse's EventSource with a listener callback (queue off): the cheapest delivery."""
    sys.path.insert(0, str(ROOT))
    from twisted.internet import defer

    from txsse import EventSource

    async def main(reactor: object) -> int:
        done: defer.Deferred[int] = defer.Deferred()
        source = EventSource(
            url, idle_timeout=None, reconnect_delay=60.0, max_reconnect_delay=60.0, queue_size=0
        )
        got = [0]

        def listener(event: object) -> None:
            got[0] += 1
            if got[0] == count:
                done.callback(count)

        source.add_listener("message", listener)
        source.add_listener("tick", listener)
        _start()
        source.startService()
        await done
        await source.close()
        return got[0]

    return _react(main)


def run_httpx_sse(url: str, count: int, event: bytes) -> int:
    import httpx
    from httpx_sse import connect_sse

    got = 0
    _start()
    with httpx.Client(timeout=None) as client, connect_sse(client, "GET", url) as source:
        for _ in source.iter_sse():
            got += 1
            if got == count:
                break
    return got


def run_httpx_sse_async(url: str, count: int, event: bytes) -> int:
    import asyncio

    import httpx
    from httpx_sse import aconnect_sse

    async def main() -> int:
        got = 0
        _start()
        async with (
            httpx.AsyncClient(timeout=None) as client,
            aconnect_sse(client, "GET", url) as source,
        ):
            async for _ in source.aiter_sse():
                got += 1
                if got == count:
                    break
        return got

    return asyncio.run(main())


def run_sseclient_py(url: str, count: int, event: bytes) -> int:
    import requests
    import sseclient

    _start()
    response = requests.get(url, stream=True, headers={"Accept": "text/event-stream"})
    got = 0
    for _ in sseclient.SSEClient(response).events():
        got += 1
        if got == count:
            break
    response.close()
    return got


def run_launchdarkly(url: str, count: int, event: bytes) -> int:
    from ld_eventsource import SSEClient

    _start()
    client = SSEClient(url)
    got = 0
    for _ in client.events:
        got += 1
        if got == count:
            break
    client.close()
    return got


def run_aiohttp_sse_client(url: str, count: int, event: bytes) -> int:
    import asyncio

    import aiohttp
    from aiohttp_sse_client import client as sse_client

    async def main() -> int:
        got = 0
        timeout = aiohttp.ClientTimeout(total=None)
        _start()
        async with sse_client.EventSource(url, timeout=timeout) as source:
            async for _ in source:
                got += 1
                if got == count:
                    break
        return got

    return asyncio.run(main())


RUNNERS = {
    "twisted-bare": run_twisted_bare,
    "txsse": run_txsse,
    "txsse-listener": run_txsse_listener,
    "httpx-sse": run_httpx_sse,
    "httpx-sse-async": run_httpx_sse_async,
    "sseclient-py": run_sseclient_py,
    "launchdarkly": run_launchdarkly,
    "aiohttp-sse-client": run_aiohttp_sse_client,
}


def child(client: str, workload: str, url: str, profile: str | None) -> None:
    """Run one client once and print a JSON line with its rate."""
    event, count = WORKLOADS[workload]
    runner = RUNNERS[client]
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        got = runner(url, count, event)
        profiler.disable()
        elapsed = time.perf_counter() - _t0[-1]
        profiler.dump_stats(profile)
    else:
        got = runner(url, count, event)
        elapsed = time.perf_counter() - _t0[-1]
    assert got == count, (client, got, count)
    print(json.dumps({"rate": count / elapsed, "seconds": elapsed}))


# The parent: start the server, run every pair once, print the table


def measure(
    client: str, workload: str, base: str, encoding: str, profile: str | None = None
) -> float:
    """Events/s of one client on one workload (0 when it failed)."""
    command = [
        sys.executable,
        __file__,
        "--child",
        client,
        workload,
        f"{base}/{workload}/{encoding}",
    ]
    if profile:
        command += ["--profile-to", profile]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {client} {workload} {encoding}: timed out", file=sys.stderr)
        return 0.0
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {client} {workload} {encoding}: failed: {tail}", file=sys.stderr)
        return 0.0
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def split(profile: str) -> dict[str, float]:
    """Share of txsse's time: HTTP layer and reactor, parser, delivery, consumer."""
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in stats.values())

    def cumulative(path_part: str, name: str) -> float:
        return sum(
            ct
            for (file, _, func), (_, _, _, ct, _) in stats.items()
            if path_part in file and func == name
        )

    # txsse runs in three places: the body protocol's dataReceived (it only keeps the
    # chunk), the parse of a reactor turn's chunks (parser, then delivery), and the
    # wake-up of a waiting consumer (which then drains the queue until it waits again).
    received = cumulative("txsse/_protocol.py", "dataReceived")
    turn = cumulative("txsse/_protocol.py", "_parse_turn")
    wake = cumulative("txsse/_client.py", "_wake")
    parser = cumulative("txsse/_parser.py", "feed")
    mine = received + turn + wake
    return {
        "http+reactor": max(total - mine, 0.0) / total,
        "parser": parser / total,
        "delivery+consumer": max(mine - parser, 0.0) / total,
    }


def report(workload: str, rates: dict[str, float]) -> None:
    """Print one workload's row and the comparisons."""
    ceiling = rates.get("twisted-bare") or 0.0
    cells = []
    for client, rate in rates.items():
        share = f" ({rate / ceiling:.0%})" if ceiling and client != "twisted-bare" else ""
        cells.append(f"{rate / 1000:>10.1f}k{share:>7}")
    print(f"{workload:<10} " + " ".join(cells), flush=True)
    peers = {c: r for c, r in rates.items() if not c.startswith(("txsse", "twisted"))}
    mine = rates.get("txsse")
    if not peers or not mine or not ceiling:
        return
    best = max(peers, key=peers.__getitem__)
    async_best = max((r for c, r in peers.items() if c in ASYNCIO_PEERS), default=0.0)
    print(
        f"{'':<10} txsse/ceiling {mine / ceiling:.2f}; fastest peer {best} "
        f"({peers[best] / 1000:.1f}k): txsse/peer {mine / peers[best]:.2f}; "
        f"txsse/best asyncio peer {mine / async_best if async_best else 0:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "WORKLOAD", "URL"))
    parser.add_argument("--profile-to")
    parser.add_argument("--quick", action="store_true", help="a tenth of the events")
    parser.add_argument(
        "--profile", action="store_true", help="also profile txsse once per workload"
    )
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per client and workload; the best counts"
    )
    args = parser.parse_args()
    if args.quick:
        os.environ["TXSSE_BENCH_QUICK"] = "1"
    if os.environ.get("TXSSE_BENCH_QUICK"):
        for name, (event, count) in list(WORKLOADS.items()):
            WORKLOADS[name] = (event, count // 10)
    if args.child:
        child(*args.child, args.profile_to)
        return
    port_file = ROOT / "benchmarks" / ".server-port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark server did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text()}"
        clients = args.clients.split(",")
        for encoding in ENCODINGS:
            what = "one HTTP chunk per event" if encoding == "chunked" else "no chunked coding"
            print(f"\n== {encoding} body ({what}); events/s (share of the ceiling)")
            print(f"{'workload':<10} " + " ".join(f"{c:>18}" for c in clients))
            for workload in args.workloads.split(","):
                # Interleaved repetitions, best of each: load from elsewhere hits every
                # client alike, and a disturbed run does not decide the figure.
                rates = dict.fromkeys(clients, 0.0)
                for _ in range(args.repeat):
                    for c in clients:
                        rates[c] = max(rates[c], measure(c, workload, base, encoding))
                report(workload, rates)
                if args.profile and "txsse" in clients:
                    profile = str(ROOT / "benchmarks" / f".profile-{workload}-{encoding}")
                    measure("txsse", workload, base, encoding, profile)
                    shares = ", ".join(f"{k} {v:.0%}" for k, v in split(profile).items())
                    print(f"{'':<10} txsse profile: {shares}")
                    Path(profile).unlink(missing_ok=True)
    finally:
        server.kill()
        server.wait()
        port_file.unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        if os.environ.get("TXSSE_BENCH_QUICK"):
            for _name, (_event, _count) in list(WORKLOADS.items()):
                WORKLOADS[_name] = (_event, _count // 10)
        serve(sys.argv[2])
    else:
        main()
