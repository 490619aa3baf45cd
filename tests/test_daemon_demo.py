"""The built-in demo stream: txsse's own server, numbered events, consumed in-process."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from tests.helpers.memagent import MemoryAgent
from tests.helpers.waiting import until
from txsse import EventStreamParser
from txsse.daemon._demo import DemoService, demo_event
from txsse.daemon._service import SSEDaemon


def test_demo_event() -> None:
    """Ticks carry JSON data; every fifth event is a two-line message."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    data, event = demo_event(4, now)
    assert event == "tick"
    assert json.loads(data) == {"n": 4, "time": "2026-01-02T03:04:05+00:00"}
    assert demo_event(5, now) == ("event 5 is a message\nof two lines", None)


def test_service_serves_on_loopback_and_publishes(tmp_path: Path) -> None:
    """The service listens on 127.0.0.1, points the daemon there and publishes every interval."""
    clock = MemoryReactorClock()
    agent = MemoryAgent(clock)
    daemon = SSEDaemon("", output=str(tmp_path / "out"), reactor=clock, agent=agent)
    demo = DemoService(daemon, reactor=clock, interval=2.0)
    demo.startService()
    ((port, _, _, interface),) = clock.tcpServers
    assert (port, interface) == (0, "127.0.0.1")
    assert daemon.url == "http://127.0.0.1:0/events"
    assert agent.last.url == daemon.url
    assert demo.channel.last_id is None
    clock.advance(2.0)
    clock.advance(2.0)
    assert demo.channel.last_id == "2"
    demo.stopService()
    assert not daemon.running
    clock.advance(10.0)
    assert demo.channel.last_id == "2"
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_demo_in_process(tmp_path: Path) -> None:
    """The daemon consumes the demo stream over real loopback TCP; events arrive in order."""
    out = tmp_path / "out.sse"
    daemon = SSEDaemon("", output=str(out), output_format="sse")
    demo = DemoService(daemon, interval=0.02)
    demo.startService()
    try:
        await until(
            lambda: len(EventStreamParser().feed(out.read_bytes())) >= 6, "6 demo events", 30
        )
    finally:
        await demo.stopService()
    events = EventStreamParser().feed(out.read_bytes())
    first = int(events[0].id)  # events published before the connection opened are not replayed
    assert [int(e.id) for e in events] == list(range(first, first + len(events)))
    for e in events:
        assert (e.event == "message") == (int(e.id) % 5 == 0)
