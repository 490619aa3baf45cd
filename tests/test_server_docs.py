"""The runnable example in docs/server.md runs and streams what it promises."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.helpers.docs import runnable_example
from tests.helpers.reading import connect
from tests.helpers.waiting import TIMEOUT, until

pytestmark = pytest.mark.usefixtures("direct_writes")


@pytest_twisted.ensureDeferred
async def test_runnable_example_streams_ticks() -> None:
    """The example's service serves the page and a resumable stream of ``tick`` events."""
    service, channel = runnable_example("server.md")["make_service"](port=0)
    service.startService()
    try:
        server = next(iter(service))
        port = server._port.getHost().port
        channel.publish_json({"time": 1.0}, event="tick")
        response, reader = await connect(f"http://127.0.0.1:{port}/events")
        assert response.code == 200
        await until(lambda: channel.subscriber_count == 1, "the subscription")
        channel.publish_json({"time": 2.0}, event="tick")
        event = await reader.queue.get().addTimeout(TIMEOUT, reactor)
        assert (event.event, event.json()) == ("tick", {"time": 2.0})
        assert reader.parser.retry == 2000
    finally:
        await service.stopService()
    await reader.done.addTimeout(TIMEOUT, reactor)
    assert 0 <= reader.parser.retry <= 5000
