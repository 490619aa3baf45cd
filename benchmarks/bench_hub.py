"""Benchmark `twistd sse-hub` on Redis: many small topics and a few big ones, 1 and 2 processes.

Runs the real hub (``twistd -n sse-hub`` subprocesses) on a real ``redis-server``;
the subscribers and the publisher live in this process (raw sockets: one
buffer scan per read, no SSE parser), so the figures include everything a
deployment pays: HTTP publish, the publish script (XADD + PUBLISH), pub/sub,
fan-out, chunked writes and the loopback network.

Workloads, each with 1 and 2 hub processes (subscribers split, publishes alternate):
  10,000 topics x 1 subscriber    (one topic per user)
  10 topics x 1,000 subscribers   (a few busy topics)

Per scenario: memory per idle topic (hub RSS growth after publishing once to
--idle-topics topics nobody subscribes to; and Redis's used_memory growth),
memory per subscriber, Redis connections (``INFO clients``),
publish-to-delivery p50/p99, throughput, server CPU (hubs + redis-server) per
delivered event, and where the machine's CPU went during the throughput phase
(hubs, redis-server, this load generator, everything else) as a share of the
cores: that split is the profile that says whether a second hub process can
gain anything on this machine.

Usage: benchmarks/run.sh hub [--scale 1.0] [--only small|big] [--processes 1,2] [--profile]
Needs redis-server on the PATH. Bounded: 2 to 5 minutes at --scale 1 on 2 cores, as busy
as they are with other work.
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
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.web.client import HTTPConnectionPool

TOKEN = "bench-token"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, health: bool = False) -> None:
    """Wait until something listens on ``port`` (and, with ``health``, answers 200 there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not health:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return  # 200 (an error status raises)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing healthy on port {port} after {timeout} s")


def redis_command(port: int, *args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode()))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(parts))
        reply = sock.recv(65536)
        if reply.startswith(b"$"):  # a bulk string: read all of it
            header, _, body = reply.partition(b"\r\n")
            while len(body) < int(header[1:]) + 2:
                body += sock.recv(65536)
            return body
        return reply


def redis_info(port: int, name: str) -> int:
    """One integer field of ``INFO`` (``connected_clients``, ``used_memory``)."""
    text = redis_command(port, "INFO").decode()
    line = next(x for x in text.split("\r\n") if x.startswith(name + ":"))
    return int(line.split(":")[1])


def rss(pids: list[int]) -> int:
    """Resident memory of these processes, in bytes."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds every core spent not idle, since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


class Subscriber(Protocol):
    """A raw SSE subscriber: records latency for every ``data: <seq> <t0>`` line."""

    def __init__(self, bench: Bench, topic: str) -> None:
        self.bench = bench
        self.topic = topic
        self.buffer = b""
        self.opened = False

    def connectionMade(self) -> None:
        self.transport.write(
            b"GET /topics/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.topic.encode()
        )

    def dataReceived(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.opened:
            self.opened = True
            self.bench.opened += 1
        buffer = self.buffer + data
        end = buffer.rfind(b"\n")
        if end < 0:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 1 :]
        for line in buffer[: end + 1].split(b"\n"):
            if line.startswith(b"data: "):
                seq, sent = line[6:].split(b" ")
                self.bench.received(int(seq), now - float(sent))


class Bench:
    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.subscribers: list[Subscriber] = []
        self.opened = 0
        self.counts: dict[int, int] = {}
        self.latencies: list[float] = []
        self.waiters: dict[int, tuple[int, defer.Deferred[None]]] = {}
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 32

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

    async def connect(self, topics: list[str], batch: int = 500) -> None:
        """One subscriber per entry of ``topics``, spread over the hub processes."""
        for start in range(0, len(topics), batch):
            for i in range(start, min(start + batch, len(topics))):
                subscriber = Subscriber(self, topics[i])
                self.subscribers.append(subscriber)
                factory = ClientFactory.forProtocol(lambda s=subscriber: s)
                reactor.connectTCP("127.0.0.1", self.ports[i % len(self.ports)], factory)
            deadline = time.monotonic() + 60
            while self.opened < len(self.subscribers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {self.opened} subscribers opened")
                await task.deferLater(reactor, 0.02, lambda: None)

    async def publish(self, seq: int, topic: str) -> None:
        port = self.ports[seq % len(self.ports)]
        body = f"{seq} {time.perf_counter()!r}".encode()
        response = await treq.post(
            f"http://127.0.0.1:{port}/topics/{topic}",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            pool=self.pool,
        )
        await response.content()
        if response.code != 200:
            raise RuntimeError(f"publish answered {response.code}")

    async def close(self) -> None:
        for subscriber in self.subscribers:
            if subscriber.transport is not None:
                subscriber.transport.abortConnection()
        await self.pool.closeCachedConnections()


@dataclass
class Workload:
    name: str
    topics: int
    per_topic: int
    latency_events: int
    throughput_events: int

    def subscriber_topics(self) -> list[str]:
        # Subscriber i of topic t: consecutive subscribers share a topic, so
        # with two processes every topic has subscribers on both.
        return [f"t{i // self.per_topic}" for i in range(self.topics * self.per_topic)]


async def scenario(
    workload: Workload,
    processes: int,
    redis_port: int,
    redis_pid: int,
    tmp: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    redis_command(redis_port, "FLUSHALL")
    ports = [free_port() for _ in range(processes)]
    profiles = [tmp / f"hub-{p}.prof" if args.profile else None for p in ports]
    hubs = [
        start_hub(p, tmp, redis_port, profile) for p, profile in zip(ports, profiles, strict=True)
    ]
    pids = [h.pid for h in hubs]
    try:
        bench = Bench(ports)
        # Warm up (imports, buffers), then idle topics: published once, no subscriber.
        for i in range(50):
            await bench.publish(-1 - i, f"warm{i}")
        rss0, redis0 = rss(pids), redis_info(redis_port, "used_memory")
        for i in range(args.idle_topics):
            await bench.publish(-1000 - i, f"idle{i}")
        idle_rss = (rss(pids) - rss0) / args.idle_topics
        idle_redis = (redis_info(redis_port, "used_memory") - redis0) / args.idle_topics
        rss1 = rss(pids)
        topics = workload.subscriber_topics()
        started = time.perf_counter()
        await bench.connect(topics)
        connect_s = time.perf_counter() - started
        per_subscriber = (rss(pids) - rss1) / len(topics)
        connections = redis_info(redis_port, "connected_clients") - 1  # not the INFO itself
        # Latency: one event at a time, to topic seq % topics.
        n = workload.topics
        for seq in range(workload.latency_events):
            await bench.publish(seq, f"t{seq % n}")
            await bench.delivered(seq, workload.per_topic)
        latencies = sorted(bench.latencies)
        # Throughput: 10 publishes in flight.
        first = workload.latency_events
        seqs = range(first, first + workload.throughput_events)
        own = os.getpid()
        before = [cpu_seconds(p) for p in [*pids, redis_pid, own]]
        busy0, started = machine_busy(), time.perf_counter()
        semaphore = defer.DeferredSemaphore(10)
        await defer.gatherResults(
            [semaphore.run(bench.publish, s, f"t{s % n}") for s in seqs], consumeErrors=True
        )
        await defer.gatherResults([bench.delivered(s, workload.per_topic) for s in seqs])
        elapsed = time.perf_counter() - started
        busy = machine_busy() - busy0
        after = [cpu_seconds(p) for p in [*pids, redis_pid, own]]
        used = [b - a for a, b in zip(before, after, strict=True)]
        hub_cpu, redis_cpu, load_cpu = sum(used[:processes]), used[processes], used[-1]
        deliveries = workload.throughput_events * workload.per_topic
        cores = os.cpu_count() or 1
        await bench.close()
        return {
            "workload": workload.name,
            "processes": processes,
            "connect_s": connect_s,
            "connections": connections,
            "idle_rss": idle_rss,
            "idle_redis": idle_redis,
            "per_subscriber": per_subscriber,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
            "deliveries_s": deliveries / elapsed,
            "cpu_us": (hub_cpu + redis_cpu) / deliveries * 1e6,
            # shares of the machine's cores during the throughput phase
            "hubs_pct": 100 * hub_cpu / elapsed / cores,
            "redis_pct": 100 * redis_cpu / elapsed / cores,
            "load_pct": 100 * load_cpu / elapsed / cores,
            "other_pct": 100 * (busy - hub_cpu - redis_cpu - load_cpu) / elapsed / cores,
            "hub_split": [round(100 * u / elapsed) for u in used[:processes]],
        }
    finally:
        for hub in hubs:
            hub.terminate()
            hub.wait(60)
        if profiles[0] is not None:
            print_profile(profiles[0], f"{workload.name}, {processes} process(es), hub 1")


def print_profile(path: Path, title: str) -> None:
    """The functions that took the most time in one hub process (cProfile, own time)."""
    import pstats

    print(f"\nprofile of {title} (whole run, by own time):")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(12)


def start_hub(
    port: int, tmp: Path, redis_port: int, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    token = tmp / "token"
    token.write_text(TOKEN)
    twistd = Path(sys.executable).with_name("twistd")
    with (tmp / f"hub-{port}.log").open("ab") as out:
        process = subprocess.Popen(
            [str(twistd), "-n", "--pidfile=",
             *([f"--profile={profile}", "--profiler=cprofile", "--savestats"] if profile else []),
             "sse-hub",
             "--port", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
             "--publish-token-file", str(token), "--keepalive", "0",
             "--redis", f"redis://127.0.0.1:{redis_port}/0",
             "--max-subscribers", "100000", "--max-topics", "100000"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_port(port, health=True)
    return process


def report(results: list[dict[str, Any]]) -> None:
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"\nsse-hub on Redis, loopback, one machine: {cores} cores, load average {load:.1f}")
    print(
        f"{'workload':<28} {'procs':>5} {'Redis conns':>11} {'idle topic':>10} {'Redis/idle':>10}"
        f" {'per sub':>8} {'p50 ms':>7} {'p99 ms':>7} {'deliv/s':>8} {'CPU us':>7}"
    )
    for r in results:
        print(
            f"{r['workload']:<28} {r['processes']:>5} {r['connections']:>11}"
            f" {r['idle_rss']:>9.0f}B {r['idle_redis']:>9.0f}B {r['per_subscriber']:>7.0f}B"
            f" {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['deliveries_s']:>8.0f}"
            f" {r['cpu_us']:>7.1f}"
        )
    print("\nwhere the cores went during the throughput phase (% of all cores):")
    print(
        f"{'workload':<28} {'procs':>5} {'hubs':>6} {'(each)':>10} {'redis':>6}"
        f" {'load':>6} {'other':>6}"
    )
    for r in results:
        each = "/".join(f"{x}%" for x in r["hub_split"])
        print(
            f"{r['workload']:<28} {r['processes']:>5} {r['hubs_pct']:>5.0f}% {each:>10}"
            f" {r['redis_pct']:>5.0f}% {r['load_pct']:>5.0f}% {r['other_pct']:>5.0f}%"
        )
    print("(each: one hub process's CPU as a % of ONE core; 100% = a core saturated)")


async def main(args: argparse.Namespace) -> None:
    scale = args.scale
    workloads = [
        Workload("10,000 topics x 1 subscriber", round(10_000 * scale), 1,
                 round(200 * scale) or 1, round(1000 * scale) or 1),
        Workload("10 topics x 1,000 subscribers", 10, round(1000 * scale) or 1,
                 round(20 * scale) or 1, round(200 * scale) or 1),
    ]  # fmt: skip
    if args.only:
        workloads = [w for w in workloads if ("10,000" in w.name) == (args.only == "small")]
    processes = [int(p) for p in args.processes.split(",")]
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results = []
    started = time.monotonic()
    try:
        wait_port(redis_port)
        for workload in workloads:
            for count in processes:
                print(f"... {workload.name}, {count} process(es)", flush=True)
                results.append(await scenario(workload, count, redis_port, redis.pid, tmp, args))
    finally:
        redis.terminate()
        redis.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    print(f"\n(run time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--only", choices=["small", "big"], help="one workload only")
    parser.add_argument("--processes", default="1,2", help="hub process counts to run")
    parser.add_argument("--idle-topics", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the first hub process")
    options = parser.parse_args()

    def run() -> defer.Deferred[None]:
        d = defer.Deferred.fromCoroutine(main(options))
        d.addErrback(lambda f: print(f.getTraceback(), file=sys.stderr))
        d.addBoth(lambda _: reactor.stop())
        return d

    reactor.callWhenRunning(run)
    reactor.run()
