"""Blocking-client and metrics benchmark: events/s through txsse.blocking, and metrics' cost.

Same server, workloads and method as ``bench_client.py`` (one fresh process per
measurement, each run once), with these clients:

- ``txsse-next``: the asynchronous EventSource awaiting ``next()`` (the reference);
- ``txsse-metrics``: the same, instrumented with ``txsse.metrics.instrument_source``;
- ``txsse-blocking``: ``txsse.blocking.EventSource``, a plain thread calling ``next()``;
- ``sseclient-py`` and ``httpx-sse``: the usual blocking peers.

Run it through ``benchmarks/run.sh blocking`` (builds ``benchmarks/.venv``), or::

    benchmarks/.venv/bin/python benchmarks/bench_blocking.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_client  # noqa: E402

CLIENTS = ("txsse-next", "txsse-metrics", "txsse-blocking", "sseclient-py", "httpx-sse")


def run_txsse_metrics(url: str, count: int, event: bytes) -> int:
    """As ``txsse-next``, with every client metric on."""
    from prometheus_client import CollectorRegistry

    from txsse.metrics import instrument_source

    def instrument(source: object) -> None:
        instrument_source(source, registry=CollectorRegistry())  # type: ignore[arg-type]

    return bench_client.consume(url, count, bench_client.by_next, instrument)


def run_txsse_blocking(url: str, count: int, event: bytes) -> int:
    """txsse.blocking.EventSource: the reactor in its thread, next() in the main thread."""
    from txsse.blocking import EventSource

    bench_client._start()
    got = 0
    with EventSource(url, **bench_client.SOURCE_OPTIONS) as source:
        while got < count:
            source.next(timeout=60)
            got += 1
    return got


bench_client.RUNNERS["txsse-metrics"] = run_txsse_metrics
bench_client.RUNNERS["txsse-blocking"] = run_txsse_blocking
# Children are started with this file, so that they know the runners above.
bench_client.__file__ = __file__


def report(workload: str, rates: dict[str, float]) -> None:
    """One row, then the ratios this benchmark is about."""
    print(f"{workload:<10} " + " ".join(f"{r / 1000:>17.1f}k" for r in rates.values()), flush=True)
    base = rates.get("txsse-next") or 0.0
    blocking = rates.get("txsse-blocking") or 0.0
    peer = max(rates.get("sseclient-py", 0.0), rates.get("httpx-sse", 0.0))
    if base and blocking:
        print(
            f"{'':<10} metrics on/off {rates.get('txsse-metrics', 0.0) / base:.2f}; "
            f"blocking/async {blocking / base:.2f}; "
            f"blocking/best blocking peer {blocking / peer if peer else 0:.2f}",
            flush=True,
        )


bench_client.report = report


if __name__ == "__main__":
    if sys.argv[1:2] != ["--serve"] and "--clients" not in sys.argv:
        sys.argv += ["--clients", ",".join(CLIENTS)]
    bench_client.entry()
