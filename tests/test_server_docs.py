"""The runnable example in docs/server.md runs and streams what it promises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_server_loopback import TIMEOUT, EventReader, wait_for
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from txsse import EventStreamParser

pytestmark = pytest.mark.usefixtures("direct_writes")

DOC = Path(__file__).parent.parent / "docs" / "server.md"


def example() -> dict[str, Any]:
    """Execute the first Python block of the guide (the runnable example) as a module."""
    block = re.search(r"## A runnable example.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/server.md lost its runnable example"
    namespace: dict[str, Any] = {"__name__": "clock_example"}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace


@pytest_twisted.ensureDeferred
async def test_runnable_example_streams_ticks() -> None:
    """The example's service serves the page and a resumable stream of ``tick`` events."""
    service, channel = example()["make_service"](port=0)
    service.startService()
    try:
        server = next(iter(service))
        port = server._port.getHost().port
        channel.publish_json({"time": 1.0}, event="tick")
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        url = f"http://127.0.0.1:{port}/events".encode()
        response = await agent.request(b"GET", url).addTimeout(TIMEOUT, reactor)
        assert response.code == 200
        reader = EventReader(EventStreamParser())
        response.deliverBody(reader)
        await wait_for(lambda: channel.subscriber_count == 1, "the subscription")
        channel.publish_json({"time": 2.0}, event="tick")
        event = await reader.queue.get().addTimeout(TIMEOUT, reactor)
        assert (event.event, event.json()) == ("tick", {"time": 2.0})
        assert reader.parser.retry == 2000
    finally:
        await service.stopService()
    await reader.done.addTimeout(TIMEOUT, reactor)
    assert 0 <= reader.parser.retry <= 5000
