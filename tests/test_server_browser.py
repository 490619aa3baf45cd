"""A real browser (headless Chromium) reads EventStreamResource across a forced disconnect."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.interfaces import IListeningPort
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.helpers.rawclient import listen as raw_listen
from tests.helpers.serving import Recording
from tests.helpers.system import require_program
from tests.helpers.waiting import until
from txsse.server import EventStreamResource, MemoryChannel

pytestmark = pytest.mark.usefixtures("direct_writes")

CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT = 60.0

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>txsse browser test</title></head>
<body><script>
let seq = 0;
function report(kind, fields) {
  const body = JSON.stringify(Object.assign({seq: seq++, kind: kind}, fields));
  fetch("/report", {method: "POST", body: body, keepalive: true});
}
const source = new EventSource("/events");
source.onopen = () => report("open", {});
source.onerror = () => report("error", {state: source.readyState});
source.onmessage = (e) => report("message", {data: e.data, id: e.lastEventId});
source.addEventListener("reset", (e) => report("reset", {data: e.data}));
</script></body></html>
"""


class Reports(Resource):
    """Collects the page's JSON reports (POST /report)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, Any]] = []

    def render_POST(self, request: Any) -> bytes:
        self.items.append(json.loads(request.content.read()))
        request.setHeader(b"content-type", b"text/plain")
        return b"ok"

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Reports of one kind, in the page's order.

        Over HTTP/2 the reports share the cut connection, and the browser resends
        the ones that were in flight: a report is counted once per ``seq``.
        """
        unique = {r["seq"]: r for r in self.items if r["kind"] == kind}
        return [unique[seq] for seq in sorted(unique)]


class Page(Resource):
    """The test page."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return PAGE


def listen(site: Site, protocol: str) -> tuple[IListeningPort, str, list[str]]:
    """Listen for ``http/1.1`` (cleartext) or ``h2`` (TLS, ALPN); the URL and browser flags."""
    if protocol == "http/1.1":
        port = raw_listen(site, protocol)
        return port, f"http://127.0.0.1:{port.getHost().port}/", []  # type: ignore[attr-defined]
    pytest.importorskip("h2", reason="HTTP/2 needs twisted[http2] (the test extra has it)")
    port = raw_listen(site, protocol)
    url = f"https://127.0.0.1:{port.getHost().port}/"  # type: ignore[attr-defined]
    return port, url, ["--ignore-certificate-errors"]


def serve_page(
    channel: MemoryChannel, protocol: str
) -> tuple[Any, Recording, Reports, str, list[str]]:
    """The test page, the channel at /events (retry 0.2 s) and /report; port, URL, flags."""
    events = Recording(EventStreamResource(channel, keepalive=5.0, retry=0.2))
    reports = Reports()
    root = Resource()
    root.putChild(b"", Page())
    root.putChild(b"events", events)
    root.putChild(b"report", reports)
    root.putChild(b"favicon.ico", notFound())
    port, url, flags = listen(Site(root), protocol)
    return port, events, reports, url, flags


@pytest.fixture
def browser_home() -> Iterator[Path]:
    """Chromium's profile and TMPDIR: a short path (its sockets live there), removed after.

    Chromium's own temporary folders (``org.chromium.Chromium.*``) go to ``tmp`` in
    it, not to ``/tmp``, where nothing would remove them.
    """
    home = Path(tempfile.mkdtemp(prefix="txsse-chromium-"))
    (home / "tmp").mkdir()
    yield home
    left = list((home / "tmp").glob("org.chromium.Chromium.*"))
    shutil.rmtree(home)
    assert left, "Chromium's temporary folders did not go to the test's TMPDIR"


def launch(url: str, flags: list[str], home: Path) -> subprocess.Popen[bytes]:
    """Headless Chromium opening ``url``, in its own process group, its files in ``home``."""
    binary = require_program(CHROMIUM, "chromium")
    return subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={home / 'profile'}",
            *flags,
            url,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: renderers die with it
        env=dict(os.environ, TMPDIR=str(home / "tmp")),
    )


async def stop(browser: subprocess.Popen[bytes], events: Recording, port: Any) -> None:
    """Kill the browser, close the streams, stop listening."""
    os.killpg(browser.pid, signal.SIGKILL)
    browser.wait(timeout=30)
    events.stream.close()
    await port.stopListening()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")
@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
@pytest_twisted.ensureDeferred
async def test_browser_gets_every_event_exactly_once(browser_home: Path, protocol: str) -> None:
    """Chromium's EventSource resumes after a server-side cut; each event arrives once."""
    channel = MemoryChannel(history=100, first_id=1)
    port, events, reports, url, flags = serve_page(channel, protocol)
    browser = launch(url, flags, browser_home)
    try:

        def messages() -> list[dict[str, Any]]:
            return reports.of("message")

        await until(lambda: len(reports.of("open")) == 1, "the page to open", BROWSER_TIMEOUT)
        expected_proto = b"HTTP/2" if protocol == "h2" else b"HTTP/1.1"
        assert events.requests[0].clientproto == expected_proto
        published = [channel.publish(f"before {n}") for n in range(5)]
        await until(lambda: len(messages()) == 5, "5 events in the browser", BROWSER_TIMEOUT)

        events.cut()  # forced disconnect, server side
        await until(lambda: channel.subscriber_count == 0, "the cut", BROWSER_TIMEOUT)
        published += [channel.publish(f"during {n}") for n in range(5)]
        await until(lambda: len(reports.of("open")) == 2, "the reconnection", BROWSER_TIMEOUT)
        assert events.requests[-1].getHeader(b"last-event-id") == published[4].encode()
        published += [channel.publish(f"after {n}") for n in range(5)]
        await until(lambda: len(messages()) >= 15, "15 events in the browser", BROWSER_TIMEOUT)

        # One more round trip: nothing extra is still in flight.
        channel.publish("last")
        await until(lambda: len(messages()) >= 16, "the last event", BROWSER_TIMEOUT)
        got = messages()
        assert [m["id"] for m in got] == [*published, channel.last_id]
        expected = [f"{phase} {n}" for phase in ("before", "during", "after") for n in range(5)]
        assert [m["data"] for m in got] == [*expected, "last"]
        assert reports.of("reset") == []
        assert len(reports.of("error")) == 1

        # Shutdown: the stream ends, the browser comes back, is refused (503) and stops.
        events.stream.close()
        await until(
            lambda: any(r["state"] == 2 for r in reports.of("error")),
            "the browser to give up after the 503",
            BROWSER_TIMEOUT,
        )
        assert channel.subscriber_count == 0
        assert len(messages()) == 16
    finally:
        await stop(browser, events, port)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")
@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
@pytest_twisted.ensureDeferred
async def test_browser_cut_before_its_first_event_resumes_from_its_resume_point(
    browser_home: Path, protocol: str
) -> None:
    """Chromium takes the id-only first line as its last event id and misses nothing."""
    channel = MemoryChannel(history=100, first_id=1)
    port, events, reports, url, flags = serve_page(channel, protocol)
    browser = launch(url, flags, browser_home)
    try:
        await until(lambda: len(reports.of("open")) == 1, "the page to open", BROWSER_TIMEOUT)
        await until(lambda: channel.subscriber_count == 1, "the subscription", BROWSER_TIMEOUT)
        events.cut()  # before any event: a newcomer without the resume point would lose them
        published = [channel.publish(f"while away {n}") for n in range(3)]
        await until(lambda: len(reports.of("open")) == 2, "the reconnection", BROWSER_TIMEOUT)
        assert events.requests[-1].getHeader(b"last-event-id") == b"before-1"
        await until(lambda: len(reports.of("message")) >= 3, "3 events", BROWSER_TIMEOUT)
        assert [m["id"] for m in reports.of("message")] == published
        assert reports.of("reset") == []
    finally:
        await stop(browser, events, port)
