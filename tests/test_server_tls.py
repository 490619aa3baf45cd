"""EventStreamResource over TLS on loopback: no direct socket sends, resume still exact."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, ssl
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.helpers.rawclient import is_direct
from tests.helpers.serving import Recording
from tests.helpers.tls import self_signed
from tests.helpers.waiting import TIMEOUT, until
from txsse import Event, EventSource, trust_certificate
from txsse.server import EventStreamResource, MemoryChannel

# Twisted's server-side certificate options still pass pyOpenSSL X509 and PKey objects.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning"),
    pytest.mark.usefixtures("direct_writes"),
]


@pytest_twisted.ensureDeferred
async def test_tls_stream_resumes_across_forced_disconnect() -> None:
    """Over TLS events go through the TLS transport and a cut client resumes without loss."""
    cert_pem, key_pem = self_signed()
    channel = MemoryChannel(history=100, first_id=1)
    events = Recording(EventStreamResource(channel, keepalive=5.0))
    root = Resource()
    root.putChild(b"events", events)
    options = ssl.PrivateCertificate.loadPEM(cert_pem + key_pem).options()
    port = reactor.listenSSL(0, Site(root), options, interface="127.0.0.1")  # type: ignore[attr-defined]
    url = f"https://127.0.0.1:{port.getHost().port}/events"
    source = EventSource(
        url, tls=trust_certificate(cert_pem), reconnect_delay=0.01, max_reconnect_delay=0.05
    )
    source.startService()
    try:
        await source.when_open().addTimeout(TIMEOUT, reactor)
        await until(lambda: channel.subscriber_count == 1, "the subscription")
        (stream,) = events.stream._streams
        assert not is_direct(stream), "no direct socket sends under TLS"
        published = [channel.publish(f"e{n}") for n in range(3)]
        received: list[Event] = [
            await source.next().addTimeout(TIMEOUT, reactor) for _ in published
        ]
        events.cut()
        await until(lambda: channel.subscriber_count == 0, "the cut")
        published += [channel.publish(f"e{n}") for n in range(3, 6)]
        while len(received) < len(published):
            received.append(await source.next().addTimeout(TIMEOUT, reactor))
        assert [e.id for e in received] == published
    finally:
        await source.close()
        events.stream.close()
        await port.stopListening()
