"""Many subscribers in one process: everyone gets each broadcast, and leaving releases all."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.helpers.memhttp import make_site, request
from txsse.server import EventStreamResource, MemoryChannel

pytestmark = pytest.mark.usefixtures("direct_writes")


@pytest.mark.slow
def test_ten_thousand_subscribers_each_get_every_broadcast() -> None:
    """10,000 streams on one resource all get each event; leaving releases them all."""
    clock = Clock()
    channel = MemoryChannel(history=10, first_id=1)
    resource = EventStreamResource(channel, reactor=clock)
    site = make_site(resource, clock)
    clients = [request(site) for _ in range(10_000)]
    assert channel.subscriber_count == 10_000
    for client in clients:
        client.transport.clear()
    ids = [channel.publish(f"broadcast {n}") for n in range(2)]
    blocks = [f"id: {event_id}\ndata: broadcast {n}\n\n".encode() for n, event_id in enumerate(ids)]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(block), block) for block in blocks)
    assert all(client.transport.value() == framed for client in clients)
    for client in clients:
        client.disconnect()
    assert channel.subscriber_count == 0
    assert resource.stream_count == 0
    assert clock.getDelayedCalls() == []
