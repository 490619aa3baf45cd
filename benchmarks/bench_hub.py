"""Benchmark `twistd sse-hub`: publish-to-receive latency and throughput, 1,000 subscribers.

Runs the real hub (``twistd -n sse-hub`` subprocesses) and, for the Redis
backend, a real ``redis-server``; the subscribers and the publisher live in
this process (raw sockets: one buffer scan per read, no SSE parser), so the
figures include everything a deployment pays: HTTP publish, XADD, XREAD,
fan-out, chunked writes and the loopback network.

Scenarios (one run, printed side by side):
  memory backend, 1 hub process (the memory backend cannot span processes)
  Redis backend,  1 hub process
  Redis backend,  2 hub processes (subscribers split, publishes alternate)

Usage: benchmarks/run.sh hub [--subscribers 1000]
       [--latency-events 30] [--throughput-events 300] [--in-flight 10]
Needs txsse[redis] in the venv and redis-server on the PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.web.client import HTTPConnectionPool

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class Subscriber(Protocol):
    """A raw SSE subscriber: records (seq, latency) for every ``data: <seq> <t0>`` line."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(
            b"GET /topics/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )

    def dataReceived(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data
        end = buffer.rfind(b"\n")
        if end < 0:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 1 :]
        if not self.bench.opened.get(self):
            self.bench.opened[self] = True
        for line in buffer[: end + 1].split(b"\n"):
            if line.startswith(b"data: "):
                seq, sent = line[6:].split(b" ")
                self.bench.received(int(seq), now - float(sent))


class Bench:
    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.opened: dict[Subscriber, bool] = {}
        self.counts: dict[int, int] = {}
        self.latencies: list[float] = []
        self.waiters: dict[int, tuple[int, defer.Deferred[None]]] = {}
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 32
        self.published = 0

    def received(self, seq: int, latency: float) -> None:
        self.latencies.append(latency)
        count = self.counts.get(seq, 0) + 1
        self.counts[seq] = count
        waiter = self.waiters.get(seq)
        if waiter is not None and count >= waiter[0]:
            del self.waiters[seq]
            waiter[1].callback(None)

    def delivered(self, seq: int, expected: int) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if self.counts.get(seq, 0) >= expected:
            d.callback(None)
        else:
            self.waiters[seq] = (expected, d)
        return d

    async def connect(self, n: int) -> None:
        factory = ClientFactory()
        factory.protocol = lambda: Subscriber(self)  # type: ignore[assignment]
        for i in range(n):
            reactor.connectTCP("127.0.0.1", self.ports[i % len(self.ports)], factory)
            if i % 100 == 99:
                await task.deferLater(reactor, 0.01, lambda: None)
        deadline = time.monotonic() + 60
        while len(self.opened) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.opened)} of {n} subscribers opened")
            await task.deferLater(reactor, 0.05, lambda: None)

    async def publish(self, seq: int) -> None:
        port = self.ports[seq % len(self.ports)]
        body = f"{seq} {time.perf_counter()!r}".encode()
        response = await treq.post(
            f"http://127.0.0.1:{port}/topics/bench",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            pool=self.pool,
        )
        await response.content()
        if response.code != 200:
            raise RuntimeError(f"publish answered {response.code}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def scenario(
    name: str, ports: list[int], pids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    bench = Bench(ports)
    n = args.subscribers
    await bench.connect(n)
    # warm-up
    await bench.publish(0)
    await bench.delivered(0, n)
    bench.latencies.clear()
    # latency: one event at a time, each to every subscriber
    seq = 1
    for _ in range(args.latency_events):
        await bench.publish(seq)
        await bench.delivered(seq, n)
        seq += 1
    latencies = sorted(bench.latencies)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    # throughput: many events, a few publishes in flight
    first = seq
    last = seq + args.throughput_events - 1
    started = time.perf_counter()
    cpu_before = cpu_seconds(pids)
    semaphore = defer.DeferredSemaphore(args.in_flight)
    await defer.gatherResults(
        [semaphore.run(bench.publish, s) for s in range(first, last + 1)], consumeErrors=True
    )
    await defer.gatherResults([bench.delivered(s, n) for s in range(first, last + 1)])
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    for sub in list(bench.opened):
        sub.transport.abortConnection()
    await bench.pool.closeCachedConnections()
    return {
        "name": name,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "events_s": args.throughput_events / elapsed,
        "deliveries_s": args.throughput_events * n / elapsed,
        "cpu_us": cpu / (args.throughput_events * n) * 1e6,
    }


def start_hub(port: int, token_file: Path, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    twistd = Path(sys.executable).with_name("twistd")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(twistd), "-n", "--pidfile=", "sse-hub",
             "--port", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
             "--publish-token-file", str(token_file), "--keepalive", "0",
             "--max-subscribers", "100000", *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_port(port)
    return process


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    token = tmp / "token"
    token.write_text(TOKEN)
    processes: list[subprocess.Popen[bytes]] = []
    results = []
    try:
        redis_port = free_port()
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        redis = subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(redis)
        wait_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        plans = [
            ("memory, 1 process", [()]),
            ("Redis, 1 process", [("--redis", redis_url)]),
            ("Redis, 2 processes", [("--redis", redis_url), ("--redis", redis_url)]),
        ]
        for name, hubs in plans:
            ports = [free_port() for _ in hubs]
            started = [
                start_hub(p, token, *extra, log=tmp / f"hub-{p}.log")
                for p, extra in zip(ports, hubs, strict=True)
            ]
            processes += started
            try:
                pids = [p.pid for p in started] + ([redis.pid] if len(hubs[0]) else [])
                results.append(await scenario(name, ports, pids, args))
            finally:
                for process in started:
                    process.terminate()
                    process.wait(20)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nsse-hub, {args.subscribers} subscribers, loopback, one machine (CPU: {os.cpu_count()})"
    )
    print("(server CPU: hub processes + redis-server, per event delivered to one subscriber)")
    print(
        f"{'scenario':<22} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>9} {'deliveries/s':>13}"
        f" {'server CPU us':>14}"
    )
    for r in results:
        print(
            f"{r['name']:<22} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f" {r['events_s']:>9.0f} {r['deliveries_s']:>13.0f} {r['cpu_us']:>14.1f}"
        )
    base = results[0]
    for r in results[1:]:
        print(
            f"{r['name']} vs {base['name']}: p50 x{r['p50_ms'] / base['p50_ms']:.2f}, "
            f"throughput x{r['events_s'] / base['events_s']:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--latency-events", type=int, default=30)
    parser.add_argument("--throughput-events", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=10)
    options = parser.parse_args()

    def run() -> defer.Deferred[None]:
        d = defer.Deferred.fromCoroutine(main(options))
        d.addErrback(lambda f: (f.printTraceback(), None)[1])
        d.addBoth(lambda _: reactor.stop())
        return d

    reactor.callWhenRunning(run)
    reactor.run()
