"""Parser throughput: txsse against the stream parsers of other Python SSE clients.

Every implementation is fed the same bytes from memory, in chunks of the same
size, through its own lowest stream-parsing layer (no sockets, no HTTP):

- ``txsse``: ``EventStreamParser.feed`` on each chunk;
- ``sseclient-py``: ``sseclient.SSEClient(iterator_of_chunks).events()``;
- ``httpx-sse``: ``httpx_sse.EventSource(response).iter_sse()`` over an
  ``httpx.Response`` whose body streams the chunks (the path ``connect_sse``
  takes, minus the transport);
- ``launchdarkly``: ``ld_eventsource.reader._SSEReader`` over
  ``_BufferedLineReader.lines_from(chunks)`` (what ``SSEClient`` runs per
  connection).

Each implementation is first checked on every workload (event count, type,
data and last event ID, compared one by one with what the generator wrote) and
then timed: best of ``--repeat`` runs, the implementations interleaved so that
load on a busy machine hits all of them alike. Peers' events are consumed at C
speed (``deque(zip(events, count()), maxlen=0)``), the best case for them.

A second table runs tricky inputs (CR-only line ends, CRLF split across
chunks, BOM, NUL in ``id``, ``retry: 1.5``, split UTF-8, ...) through every
implementation and shows which get them wrong.

Usage::

    python benchmarks/bench_parser.py                       # everything
    python benchmarks/bench_parser.py --only txsse,launchdarkly --workload a
    python benchmarks/bench_parser.py --repeat 3 --scale 0.1 --no-edge-cases

From Python::

    from bench_parser import run
    results = run(workloads="a", implementations=["txsse", "httpx-sse"], repeat=3)
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import os
import platform
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

CHUNK_SIZE = 64 * 1024

#: What an implementation reports for one event: (type, data, last event ID).
Observed = tuple[str, str, str]


# --------------------------------------------------------------------------- implementations


class Observation:
    """What a run reported besides events: the reconnection time it ended with."""

    def __init__(self) -> None:
        self.retry: Any = None


@dataclass(frozen=True)
class Implementation:
    """One parser under test.

    :ivar count: the timed path: parse the chunks, return how many events came out.
    :ivar observe: the checked path: yield every event as ``(type, data, last id)``
        and record the final reconnection time in the :class:`Observation`.
    """

    name: str
    distribution: str
    count: Callable[[Sequence[bytes]], int]
    observe: Callable[[Sequence[bytes], Observation], Iterator[Observed]]

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "?"


def _consume(events: Iterable[object]) -> int:
    """Exhaust ``events`` at C speed and return how many there were."""
    counter = itertools.count()
    deque(zip(events, counter, strict=False), maxlen=0)
    return next(counter)


def _as_retry(value: Any) -> Any:
    """Normalise a peer's retry report: a digit string counts as its integer."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _txsse() -> Implementation:
    from txsse import Event, EventStreamParser

    def count(chunks: Sequence[bytes]) -> int:
        feed = EventStreamParser().feed
        n = 0
        for chunk in chunks:
            n += len(feed(chunk))
        return n

    def observe(chunks: Sequence[bytes], seen: Observation) -> Iterator[Observed]:
        parser = EventStreamParser()
        for chunk in chunks:
            for item in parser.feed(chunk):
                if type(item) is Event:
                    yield item.event, item.data, item.id
        seen.retry = parser.retry

    return Implementation("txsse", "txsse", count, observe)


def _sseclient() -> Implementation:
    from sseclient import SSEClient

    def count(chunks: Sequence[bytes]) -> int:
        return _consume(SSEClient(iter(chunks)).events())

    def observe(chunks: Sequence[bytes], seen: Observation) -> Iterator[Observed]:
        for event in SSEClient(iter(chunks)).events():
            if event.retry is not None:
                seen.retry = _as_retry(event.retry)
            yield event.event, event.data, event.id or ""

    return Implementation("sseclient-py", "sseclient-py", count, observe)


def _httpx_sse() -> Implementation:
    import httpx
    from httpx_sse import EventSource

    headers = {"content-type": "text/event-stream"}

    def source(chunks: Sequence[bytes]) -> EventSource:
        return EventSource(httpx.Response(200, headers=headers, content=iter(chunks)))

    def count(chunks: Sequence[bytes]) -> int:
        return _consume(source(chunks).iter_sse())

    def observe(chunks: Sequence[bytes], seen: Observation) -> Iterator[Observed]:
        for event in source(chunks).iter_sse():
            if event.retry is not None:
                seen.retry = event.retry
            yield event.event, event.data, event.id

    return Implementation("httpx-sse", "httpx-sse", count, observe)


def _launchdarkly() -> Implementation:
    from ld_eventsource.actions import Event
    from ld_eventsource.reader import _BufferedLineReader, _SSEReader

    lines_from = _BufferedLineReader.lines_from

    def count(chunks: Sequence[bytes]) -> int:
        # The workloads have no comments, so every item is an event.
        return _consume(_SSEReader(lines_from(chunks)).events_and_comments())

    def observe(chunks: Sequence[bytes], seen: Observation) -> Iterator[Observed]:
        def set_retry(value: int) -> None:
            seen.retry = value

        reader = _SSEReader(lines_from(chunks), None, set_retry)
        for item in reader.events_and_comments():
            if isinstance(item, Event):
                yield item.event, item.data, item.last_event_id or ""

    return Implementation("launchdarkly", "launchdarkly-eventsource", count, observe)


_FACTORIES: dict[str, Callable[[], Implementation]] = {
    "txsse": _txsse,
    "sseclient-py": _sseclient,
    "httpx-sse": _httpx_sse,
    "launchdarkly": _launchdarkly,
}
NAMES = tuple(_FACTORIES)


def load_implementations(
    names: Iterable[str] = NAMES, out: TextIO | None = None
) -> list[Implementation]:
    """Import the implementations asked for; skip (and say so) those not installed.

    :param names: names from :data:`NAMES`.
    :param out: where to report a missing package.
    :raises ValueError: for an unknown name.
    """
    loaded = []
    for name in names:
        if name not in _FACTORIES:
            raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(NAMES)}")
        try:
            loaded.append(_FACTORIES[name]())
        except ImportError as e:
            if out is not None:
                print(f"skipping {name}: not installed ({e})", file=out)
    return loaded


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """A generated stream: ``make(i)`` returns the i-th event's (type or None, data, id or None)."""

    name: str
    description: str
    events: int
    make: Callable[[int], tuple[str | None, str, str | None]]

    def encode(self) -> bytes:
        """The whole stream, LF line endings."""
        parts: list[bytes] = []
        add = parts.append
        for i in range(self.events):
            etype, data, event_id = self.make(i)
            block = []
            if event_id is not None:
                block.append(f"id: {event_id}\n")
            if etype is not None:
                block.append(f"event: {etype}\n")
            block.extend(f"data: {line}\n" for line in data.split("\n"))
            block.append("\n")
            add("".join(block).encode())
        return b"".join(parts)

    def expected(self) -> Iterator[Observed]:
        """What a correct parser reports, event by event."""
        last_id = ""
        for i in range(self.events):
            etype, data, event_id = self.make(i)
            if event_id is not None:
                last_id = event_id
            yield etype or "message", data, last_id


_FILLER = "".join(
    random.Random(20240601).choices(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", k=1 << 17
    )
)
_TYPES = ("update", "tick", "price", "heartbeat-ish", "user.created")


def _json_like(i: int, size: int) -> str:
    """``{"n":i,"v":"..."}`` padded with varying filler to exactly ``size`` characters."""
    width = size - 13 - len(str(i))
    start = (i * 7919) % (len(_FILLER) - width)
    return f'{{"n":{i},"v":"{_FILLER[start : start + width]}"}}'


def _small(i: int) -> tuple[str | None, str, str | None]:
    return _TYPES[i % len(_TYPES)], _json_like(i, 32), str(i)


def _one_kib(i: int) -> tuple[str | None, str, str | None]:
    return None, _json_like(i, 1024), None


def _big(i: int) -> tuple[str | None, str, str | None]:
    return None, "\n".join(_json_like(i * 64 + j, 1024) for j in range(64)), None


def make_workloads(scale: float = 1.0) -> dict[str, Workload]:
    """The three workloads of the benchmark, their event counts multiplied by ``scale``."""

    def n(count: int) -> int:
        return max(1, round(count * scale))

    return {
        "a": Workload("a", "events with id, event and 32 bytes of data", n(100_000), _small),
        "b": Workload("b", "events of 1 KiB data", n(20_000), _one_kib),
        "c": Workload("c", "events of 64 KiB data on 64 lines", n(2_000), _big),
    }


def split(blob: bytes, size: int) -> list[bytes]:
    """``blob`` in chunks of ``size`` bytes."""
    return [blob[i : i + size] for i in range(0, len(blob), size)]


# --------------------------------------------------------------------------- checking


def check(impl: Implementation, chunks: Sequence[bytes], expected: Iterable[Observed]) -> str:
    """Compare what ``impl`` reports with ``expected``, streaming; return ``"ok"`` or why not."""
    got_iter = impl.observe(chunks, Observation())
    n = 0
    try:
        for n, (want, got) in enumerate(itertools.zip_longest(expected, got_iter), 1):
            if want != got:
                if got is None:
                    return f"incorrect: only {n - 1} events"
                if want is None:
                    return f"incorrect: more than {n - 1} events"
                return f"incorrect: event {n} differs"
    except Exception as e:
        return f"error: {type(e).__name__} after {n} events"
    return "ok"


# --------------------------------------------------------------------------- timing


@dataclass
class Result:
    """One implementation on one workload."""

    implementation: str
    status: str
    events: int = 0
    best: float = float("inf")
    times: list[float] = field(default_factory=list)

    def events_per_second(self) -> float:
        return self.events / self.best

    def megabytes_per_second(self, size: int) -> float:
        return size / self.best / 1e6


def time_workload(
    workload: Workload,
    impls: Sequence[Implementation],
    repeat: int = 5,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[int, list[Result]]:
    """Check, then time every implementation on ``workload``.

    :returns: the stream's size in bytes and one :class:`Result` per implementation.
    """
    blob = workload.encode()
    size = len(blob)
    chunks = split(blob, chunk_size)
    del blob
    results = [Result(impl.name, check(impl, chunks, workload.expected())) for impl in impls]
    timed = [
        (impl, r)
        for impl, r in zip(impls, results, strict=True)
        if not r.status.startswith("error")
    ]
    for _ in range(repeat):
        for impl, result in timed:
            gc.collect()
            start = time.perf_counter()
            result.events = impl.count(chunks)
            elapsed = time.perf_counter() - start
            result.times.append(elapsed)
            result.best = min(result.best, elapsed)
    for _, result in timed:
        if result.status == "ok" and result.events != workload.events:
            result.status = f"incorrect: counted {result.events} events"
    return size, results


# --------------------------------------------------------------------------- edge cases


@dataclass(frozen=True)
class EdgeCase:
    """A tricky input, as chunks, and what the WHATWG algorithm makes of it."""

    name: str
    chunks: tuple[bytes, ...]
    events: tuple[Observed, ...]
    retry: int | None = None


def _m(data: str, last_id: str = "", etype: str = "message") -> Observed:
    return etype, data, last_id


EDGE_CASES = (
    EdgeCase(
        "CR-only line ends",
        (b"data: a\rdata: b\r\rid: 1\rdata: c\r\r",),
        (_m("a\nb"), _m("c", "1")),
    ),
    EdgeCase(
        "CRLF split across chunks", (b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"), (_m("a\nb"),)
    ),
    EdgeCase("mixed CR, LF, CRLF", (b"data: a\r\ndata: b\ndata: c\r\r\n",), (_m("a\nb\nc"),)),
    EdgeCase("leading BOM dropped", (b"\xef\xbb\xbfdata: a\n\n",), (_m("a"),)),
    EdgeCase("BOM split across chunks", (b"\xef", b"\xbb", b"\xbfdata: a\n\n"), (_m("a"),)),
    EdgeCase(
        "only one BOM dropped",
        (b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",),
        (_m("b"),),
    ),
    EdgeCase(
        "id with NUL ignored",
        (b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",),
        (_m("a", "1"), _m("b", "1")),
    ),
    EdgeCase(
        "last event ID persists", (b"id: 7\ndata: a\n\ndata: b\n\n",), (_m("a", "7"), _m("b", "7"))
    ),
    EdgeCase(
        "empty id clears it", (b"id: 7\ndata: a\n\nid\ndata: b\n\n",), (_m("a", "7"), _m("b"))
    ),
    EdgeCase(
        "retry: 1.5 ignored",
        (b"retry: 1000\ndata: a\n\nretry: 1.5\ndata: b\n\n",),
        (_m("a"), _m("b")),
        1000,
    ),
    EdgeCase(
        "retry: -5 ignored",
        (b"retry: 1000\ndata: a\n\nretry: -5\ndata: b\n\n",),
        (_m("a"), _m("b")),
        1000,
    ),
    EdgeCase("split UTF-8", (b"data: \xc3", b"\xa9t\xc3", b"\xa9\n\n"), (_m("\xe9t\xe9"),)),
    EdgeCase("invalid UTF-8 is U+FFFD", (b"data: a\xffb\n\n",), (_m("a\ufffdb"),)),
    EdgeCase(
        "Unicode line breaks are data",
        (b"data: a\x0bb\x0cc\x1cd\xc2\x85e\xe2\x80\xa8f\n\n",),
        (_m("a\x0bb\x0cc\x1cd\x85e\u2028f"),),
    ),
    EdgeCase("event without data not dispatched", (b"event: x\n\ndata: a\n\n",), (_m("a"),)),
    EdgeCase("blank lines after an id", (b"id: 1\ndata: a\n\n\n\n",), (_m("a", "1"),)),
    EdgeCase("data with no value", (b"data\n\n",), (_m(""),)),
    EdgeCase("one space removed, not two", (b"data:  a\ndata:b\n\n",), (_m(" a\nb"),)),
    EdgeCase("field names case-sensitive", (b"Data: a\n\ndata: b\n\n",), (_m("b"),)),
    EdgeCase("comments ignored", (b": hi\ndata: a\n:\n\n",), (_m("a"),)),
    EdgeCase(
        "event type reset", (b"event: x\ndata: a\n\ndata: b\n\n",), (_m("a", etype="x"), _m("b"))
    ),
    EdgeCase("unfinished event discarded", (b"data: a\n\ndata: b\n",), (_m("a"),)),
)


def run_edge_case(impl: Implementation, case: EdgeCase) -> tuple[str, str]:
    """Run ``case`` through ``impl``: ``("ok" | "WRONG" | "raises", detail)``."""
    seen = Observation()
    try:
        events = tuple(impl.observe(case.chunks, seen))
    except Exception as e:
        return "raises", f"{type(e).__name__}: {e}"
    problems = []
    if events != case.events:
        problems.append(f"events {events!r}, expected {case.events!r}")
    if seen.retry != case.retry:
        problems.append(f"retry {seen.retry!r}, expected {case.retry!r}")
    return ("WRONG", "; ".join(problems)) if problems else ("ok", "")


# --------------------------------------------------------------------------- report


def machine() -> str:
    """One line naming the interpreter, the CPU and the load."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load unknown"
    return (
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {cpu}, {os.cpu_count()} CPUs, {load}"
    )


def _table(rows: Sequence[Sequence[str]], out: TextIO, right: Sequence[bool]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(row, widths, right, strict=True)
        ]
        print("  " + "  ".join(cells).rstrip(), file=out)
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths), file=out)


def report_workload(
    workload: Workload,
    size: int,
    results: Sequence[Result],
    repeat: int,
    chunk_size: int,
    out: TextIO,
) -> float | None:
    """Print one workload's table; return txsse / fastest peer (events/s), if both ran."""
    chunks = -(-size // chunk_size)
    print(
        f"\nWorkload ({workload.name}): {workload.events:,} {workload.description}; "
        f"{size / 1e6:.1f} MB in {chunks:,} chunks of {chunk_size:,} bytes; best of {repeat}",
        file=out,
    )
    timed = [r for r in results if r.times]
    txsse = next((r for r in timed if r.implementation == "txsse"), None)
    rows = [("implementation", "events/s", "MB/s", "best s", "txsse/this", "check")]
    for r in results:
        if not r.times:
            rows.append((r.implementation, "-", "-", "-", "-", r.status))
            continue
        vs = f"{r.best / txsse.best:.2f}x" if txsse else "-"
        rows.append(
            (
                r.implementation,
                f"{r.events_per_second():,.0f}",
                f"{r.megabytes_per_second(size):,.1f}",
                f"{r.best:.3f}",
                vs,
                r.status,
            )
        )
    _table(rows, out, (False, True, True, True, True, False))
    peers = [r for r in timed if r.implementation != "txsse"]
    if txsse is None or not peers:
        return None
    fastest = min(peers, key=lambda r: r.best)
    ratio = fastest.best / txsse.best
    note = "" if fastest.status == "ok" else f" (that peer is {fastest.status})"
    line = f"  txsse / fastest peer ({fastest.implementation}): {ratio:.2f}x{note}"
    correct = [r for r in peers if r.status == "ok"]
    if correct and fastest.status != "ok":
        best_ok = min(correct, key=lambda r: r.best)
        line += (
            f"; / fastest correct peer ({best_ok.implementation}): {best_ok.best / txsse.best:.2f}x"
        )
    print(line, file=out)
    return ratio


def report_edge_cases(
    impls: Sequence[Implementation], out: TextIO, verbose: bool = False
) -> dict[str, list[str]]:
    """Print the tricky-inputs table; return, per implementation, the cases it got wrong."""
    print("\nTricky inputs (WHATWG 'interpreting an event stream'): ok / WRONG / raises", file=out)
    rows = [("case", *(impl.name for impl in impls))]
    failures: dict[str, list[str]] = {impl.name: [] for impl in impls}
    details = []
    for case in EDGE_CASES:
        row = [case.name]
        for impl in impls:
            verdict, detail = run_edge_case(impl, case)
            row.append(verdict)
            if verdict != "ok":
                failures[impl.name].append(case.name)
                details.append(f"  {impl.name} / {case.name}: {detail}")
        rows.append(tuple(row))
    _table(rows, out, (False, *(False for _ in impls)))
    for name, failed in failures.items():
        print(f"  {name}: {len(EDGE_CASES) - len(failed)}/{len(EDGE_CASES)} right", file=out)
    if verbose and details:
        print("\n".join(details), file=out)
    return failures


def run(
    workloads: str | Iterable[str] = "abc",
    implementations: Iterable[str] = NAMES,
    repeat: int = 5,
    chunk_size: int = CHUNK_SIZE,
    scale: float = 1.0,
    edge_cases: bool = True,
    verbose: bool = False,
    out: TextIO = sys.stdout,
) -> dict[str, Any]:
    """Run the benchmark and print its report.

    :returns: ``{"workloads": {name: (size, [Result, ...], ratio)}, "edge_cases": {...}}``.
    """
    impls = load_implementations(implementations, out)
    all_workloads = make_workloads(scale)
    print(machine(), file=out)
    print(
        "versions: " + ", ".join(f"{impl.distribution} {impl.version}" for impl in impls),
        file=out,
    )
    summary: dict[str, Any] = {"workloads": {}, "edge_cases": None}
    for name in workloads:
        workload = all_workloads[name]
        size, results = time_workload(workload, impls, repeat, chunk_size)
        ratio = report_workload(workload, size, results, repeat, chunk_size, out)
        summary["workloads"][name] = (size, results, ratio)
        out.flush()
    if edge_cases:
        summary["edge_cases"] = report_edge_cases(impls, out, verbose)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(NAMES),
        help=f"comma-separated implementations (default: {','.join(NAMES)})",
    )
    parser.add_argument(
        "--workload", default="a,b,c", help="comma-separated workloads: a, b, c (default: all)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; best one counts")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="bytes per feed")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply event counts")
    parser.add_argument("--no-edge-cases", action="store_true", help="skip the tricky inputs")
    parser.add_argument("-v", "--verbose", action="store_true", help="say what each got wrong")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    bad = [w for w in workloads if w not in "abc" or len(w) != 1]
    if bad:
        parser.error(f"unknown workload {bad[0]!r}: choose from a, b, c")
    if args.repeat < 1 or args.chunk_size < 1 or args.scale <= 0:
        parser.error("--repeat, --chunk-size and --scale must be positive")
    try:
        run(
            workloads,
            names,
            repeat=args.repeat,
            chunk_size=args.chunk_size,
            scale=args.scale,
            edge_cases=not args.no_edge_cases,
            verbose=args.verbose,
        )
    except ValueError as e:
        parser.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
