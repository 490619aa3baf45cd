"""End-to-end client benchmark: events/s from a loopback server to a consumer.

One run measures, side by side, txsse's EventSource (a consumer iterating with
``async for``, on txsse's own HTTP/1.1 client), the same over Twisted's Agent
(``agent=``), with ``next_batch()`` and with a listener, the peers (httpx-sse
sync and async, sseclient-py, launchdarkly-eventsource, aiohttp-sse-client) and
a reference: a bare Twisted Agent protocol that only counts bytes. The server is
a separate process that writes a prepared response as fast as the socket takes
it, with one HTTP chunk per event (as real servers flush), or (``--encodings
plain``) without chunked coding (close-delimited body).

Run it through ``benchmarks/run.sh client`` (which builds ``benchmarks/.venv``
with the peers), or directly with that venv's python::

    benchmarks/.venv/bin/python benchmarks/bench_client.py [--quick] [--profile] [--repeat N]

Each (client, workload) pair runs once per repetition in a fresh subprocess,
interleaved; the best run counts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# name -> (bytes of one event's lines, number of events)
WORKLOADS: dict[str, tuple[bytes, int]] = {
    # 100k events with an id, a type and 32 bytes of JSON-like data
    "32B": (b'id: 1234567\nevent: tick\ndata: {"n": 1234567, "v": "abcdefghijk"}\n\n', 100_000),
    # 20k events of one 1 KiB data line
    "1KiB": (b"data: " + b"x" * 1024 + b"\n\n", 20_000),
    # 2k events of 64 KiB of data on 64 lines
    "64KiB": ((b"data: " + b"y" * 1023 + b"\n") * 64 + b"\n", 2_000),
}
#: txsse / fastest peer, the targets of issue 12 (events/s, end to end, async for).
TARGETS = {"32B": 1.25, "1KiB": 1.25, "64KiB": 1.1}
ENCODINGS = ("chunked", "plain")
CLIENTS = (
    "twisted-bare",
    "txsse",
    "txsse-batch",
    "txsse-listener",
    "txsse-agent",
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
_cpu0: list[float] = []
_profilers: list[Any] = []


def _start() -> None:
    """Mark the start of the measured part (after imports and set-up)."""
    for profiler in _profilers:
        profiler.enable()
    _t0.append(time.perf_counter())
    _cpu0.append(time.process_time())


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


#: The EventSource options of every txsse client here: no idle timeout, no quick reconnection.
SOURCE_OPTIONS: dict[str, Any] = {
    "idle_timeout": None,
    "reconnect_delay": 60.0,
    "max_reconnect_delay": 60.0,
}


def _source(url: str, reactor: object, agent: bool = False, **kw: object) -> object:
    """An EventSource for the benchmark (:data:`SOURCE_OPTIONS`)."""
    sys.path.insert(0, str(ROOT))
    from txsse import EventSource

    if agent:
        from twisted.web.client import Agent, HTTPConnectionPool

        kw["agent"] = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    return EventSource(url, **SOURCE_OPTIONS, **kw)


def consume(
    url: str,
    count: int,
    take: Callable[[Any, int], Awaitable[int]],
    prepare: Callable[[Any], object] | None = None,
    **kw: object,
) -> int:
    """Run an EventSource (:func:`_source`) until ``take(source, count)`` has its events.

    :param prepare: called with the source before the measured part starts.
    :param kw: for :func:`_source`.
    :returns: what ``take`` returns, the number of events taken.
    """

    async def main(reactor: object) -> int:
        source: Any = _source(url, reactor, **kw)
        if prepare is not None:
            prepare(source)
        _start()
        source.startService()
        got = await take(source, count)
        await source.close()
        return got

    return _react(main)


async def by_async_for(source: Any, count: int) -> int:
    """Take ``count`` events with ``async for`` (the documented idiom)."""
    got = 0
    async for _ in source:
        got += 1
        if got == count:
            break
    return got


async def by_next_batch(source: Any, count: int) -> int:
    """Take every queued event at once with ``next_batch()``, until ``count``."""
    got = 0
    while got < count:
        for _ in await source.next_batch():
            got += 1
    return got


async def by_next(source: Any, count: int) -> int:
    """Await ``next()`` for each of ``count`` events."""
    got = 0
    next_event = source.next
    while got < count:
        await next_event()
        got += 1
    return got


def run_txsse(url: str, count: int, event: bytes, agent: bool = False) -> int:
    """txsse's EventSource, a consumer iterating with async for (the documented idiom)."""
    return consume(url, count, by_async_for, agent=agent)


def run_txsse_agent(url: str, count: int, event: bytes) -> int:
    """As ``txsse``, over Twisted's Agent (``agent=``) instead of txsse's HTTP/1.1 client."""
    return run_txsse(url, count, event, agent=True)


def run_txsse_batch(url: str, count: int, event: bytes) -> int:
    """txsse's EventSource, a consumer taking every queued event with next_batch()."""
    return consume(url, count, by_next_batch)


def run_txsse_next(url: str, count: int, event: bytes) -> int:
    """txsse's EventSource, a consumer awaiting next() for every event."""
    return consume(url, count, by_next)


def run_txsse_listener(url: str, count: int, event: bytes) -> int:
    """txsse's EventSource with a listener callback (queue off): the cheapest delivery."""
    from twisted.internet import defer

    async def main(reactor: object) -> int:
        done: defer.Deferred[int] = defer.Deferred()
        source: Any = _source(url, reactor, queue_size=0)
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
    "txsse-batch": run_txsse_batch,
    "txsse-next": run_txsse_next,
    "txsse-agent": run_txsse_agent,
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
        _profilers.append(profiler)  # enabled by _start(), after imports and set-up
        got = runner(url, count, event)
        profiler.disable()
        elapsed = time.perf_counter() - _t0[-1]
        profiler.dump_stats(profile)
    else:
        got = runner(url, count, event)
        elapsed = time.perf_counter() - _t0[-1]
    cpu = time.process_time() - _cpu0[-1]
    assert got == count, (client, got, count)
    print(json.dumps({"rate": count / elapsed, "seconds": elapsed, "cpu_rate": count / cpu}))


# The parent: start the server, run every pair once, print the table

#: The best events per CPU second of the client's process, by (client, workload, encoding):
#: on a machine shared with other jobs, what each client costs, whoever got the CPU.
CPU_RATES: dict[tuple[str, str, str], float] = {}


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
    result = json.loads(done.stdout.strip().splitlines()[-1])
    key = (client, workload, encoding)
    CPU_RATES[key] = max(CPU_RATES.get(key, 0.0), float(result["cpu_rate"]))
    return float(result["rate"])


#: Where txsse's time goes, by the file a function is in (first match wins).
AREAS = (
    ("parser", ("txsse/_parser.py", "txsse/_event.py")),
    ("HTTP/1.1 (txsse + httptools)", ("txsse/client/_http11.py", "httptools")),
    ("delivery (txsse)", ("txsse/client/",)),
    ("consumer loop", ("bench_client.py",)),
    ("Twisted Deferreds", ("twisted/internet/defer.py",)),
    ("Twisted reactor + socket + Agent", ("twisted/",)),
)


def _area(file: str) -> str:
    """The area of a profiled function's file."""
    for name, parts in AREAS:
        if any(part in file for part in parts):
            return name
    return "other"


def split(profile: str, count: int) -> dict[str, tuple[float, float]]:
    """Per area of txsse's run: (share of the time, microseconds per event under cProfile).

    Built-in functions (``bytes.join``, ``deque.popleft``...) count for the area of
    the function that called them most.
    """
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in stats.values()) or 1.0
    spent: dict[str, float] = {}
    for (file, _, _), (_, _, tt, _, callers) in stats.items():
        area = _area(file)
        if file == "~" and callers:
            caller = max(callers, key=lambda c: callers[c][1])
            area = _area(caller[0])
        spent[area] = spent.get(area, 0.0) + tt
    order = [name for name, _ in AREAS] + ["other"]
    return {a: (spent[a] / total, spent[a] / count * 1e6) for a in order if a in spent}


def report(workload: str, rates: dict[str, float]) -> None:
    """Print one workload's row and the comparison with the fastest peer."""
    event, _ = WORKLOADS[workload]
    cells = []
    for rate in rates.values():
        mb = f" {rate * len(event) / 1e6:>5.0f}MB/s" if len(event) > 4096 else ""
        cells.append(f"{rate / 1000:>10.1f}k{mb}")
    print(f"{workload:<10} " + " ".join(cells), flush=True)
    peers = {c: r for c, r in rates.items() if not c.startswith(("txsse", "twisted"))}
    mine = rates.get("txsse")
    if not peers or not mine:
        return
    best = max(peers, key=peers.__getitem__)
    async_best = max((r for c, r in peers.items() if c in ASYNCIO_PEERS), default=0.0)
    target = TARGETS.get(workload)
    verdict = ""
    if target:
        verdict = f" (target {target}x: {'met' if mine / peers[best] >= target else 'MISSED'})"
    print(
        f"{'':<10} txsse (async for) / fastest peer {best} ({peers[best] / 1000:.1f}k): "
        f"{mine / peers[best]:.2f}x{verdict}; "
        f"/ best asyncio peer {mine / async_best if async_best else 0:.2f}x",
        flush=True,
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
        "--encodings", default="chunked", help="chunked (one HTTP chunk per event) and/or plain"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per client and workload; the best counts"
    )
    args = parser.parse_args()
    if args.quick:
        os.environ["TXSSE_BENCH_QUICK"] = "1"  # for the server and the children too
    quick_workloads()
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
        for encoding in args.encodings.split(","):
            what = "one HTTP chunk per event" if encoding == "chunked" else "no chunked coding"
            print(f"\n== {encoding} body ({what}); events/s, best of {args.repeat}")
            print(f"{'workload':<10} " + " ".join(f"{c:>18}" for c in clients))
            for workload in args.workloads.split(","):
                # Interleaved repetitions, best of each: load from elsewhere hits every
                # client alike, and a disturbed run does not decide the figure.
                rates = dict.fromkeys(clients, 0.0)
                for _ in range(args.repeat):
                    for c in clients:
                        rates[c] = max(rates[c], measure(c, workload, base, encoding))
                report(workload, rates)
                cpu = {c: CPU_RATES.get((c, workload, encoding), 0.0) for c in clients}
                print(f"{'(CPU)':<10} " + " ".join(f"{r / 1000:>10.1f}k" for r in cpu.values()))
                peers = {c: r for c, r in cpu.items() if not c.startswith(("txsse", "twisted"))}
                if peers and cpu.get("txsse"):
                    best = max(peers, key=peers.__getitem__)
                    print(
                        f"{'':<10} events per CPU second: txsse / {best} "
                        f"{cpu['txsse'] / peers[best]:.2f}x",
                        flush=True,
                    )
                if args.profile and "txsse" in clients:
                    profile = str(ROOT / "benchmarks" / f".profile-{workload}-{encoding}")
                    measure("txsse", workload, base, encoding, profile)
                    count = WORKLOADS[workload][1]
                    print(f"{'':<10} txsse profile (cProfile; share, µs per event):")
                    for area, (share, micros) in split(profile, count).items():
                        print(f"{'':<12} {area:<34} {share:>4.0%} {micros:>7.2f} µs")
                    Path(profile).unlink(missing_ok=True)
    finally:
        server.kill()
        server.wait()
        port_file.unlink(missing_ok=True)


def quick_workloads() -> None:
    """With ``--quick`` (``$TXSSE_BENCH_QUICK``), a tenth of each workload's events."""
    if os.environ.get("TXSSE_BENCH_QUICK"):
        for name, (event, count) in list(WORKLOADS.items()):
            WORKLOADS[name] = (event, count // 10)


def entry() -> None:
    """The command line: the server (``--serve PORT_FILE``, started by :func:`main`), or
    :func:`main`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        quick_workloads()
        serve(sys.argv[2])
    else:
        main()


if __name__ == "__main__":
    entry()
