"""TLS on loopback: verification by default, a trusted private certificate, a pinned one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.web import server

from tests.helpers.paths import PATHS, options_for
from tests.helpers.sseserver import ScriptedResource, StreamServer
from tests.helpers.tls import self_signed
from txsse import EventSource, ReadyState, pin_certificate, trust_certificate
from txsse.errors import NetworkError

# Twisted's server-side certificate options still pass pyOpenSSL X509 and PKey objects.
pytestmark = pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")


class TLSServer:
    """The scripted server behind TLS with a self-signed certificate."""

    def __init__(self) -> None:
        self.cert_pem, key_pem = self_signed()
        owner = StreamServer.__new__(StreamServer)
        owner.seen, owner.open_requests, owner.counts, owner.plan = [], [], {}, None
        owner._waiters = []
        self.owner = owner
        options = ssl.PrivateCertificate.loadPEM(self.cert_pem + key_pem).options()
        site = server.Site(ScriptedResource(owner))
        self.port = reactor.listenSSL(0, site, options, interface="127.0.0.1")  # type: ignore[attr-defined]
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        self.fingerprint = cert.fingerprint(hashes.SHA256()).hex(":")

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port.getHost().port}{path}"


@pytest_twisted.async_yield_fixture
async def tls_server() -> AsyncIterator[TLSServer]:
    """A TLS loopback server, stopped after the test."""
    running = TLSServer()
    yield running
    for request in list(running.owner.open_requests):
        request.channel.transport.loseConnection()
    await running.port.stopListening()


async def first_outcome(source: EventSource) -> Any:
    """The first event, or the first error, whichever comes first."""
    outcome: Deferred[Any] = Deferred()
    source.on("error", lambda e: outcome.called or outcome.callback(e))
    source.next().addBoth(lambda e: outcome.called or outcome.callback(e))
    source.startService()
    try:
        return await outcome.addTimeout(10, reactor)  # type: ignore[arg-type]
    finally:
        await source.close()


@pytest.fixture(params=PATHS)
def http_path(request: pytest.FixtureRequest) -> str:
    """Each test runs on txsse's HTTP/1.1 client and on Twisted's Agent."""
    return str(request.param)


@pytest_twisted.ensureDeferred
async def test_untrusted_certificate_refused(tls_server: TLSServer, http_path: str) -> None:
    """By default a self-signed certificate fails verification (a NetworkError, retried)."""
    outcome = await first_outcome(
        EventSource(tls_server.url("/events/1"), **options_for(http_path, reconnect_delay=5))
    )
    assert isinstance(outcome, NetworkError)
    assert tls_server.owner.seen == []


@pytest_twisted.ensureDeferred
async def test_trusted_private_certificate(tls_server: TLSServer, http_path: str) -> None:
    """trust_certificate() accepts a server certificate signed by (or being) that certificate."""
    source = EventSource(
        tls_server.url("/events/1"),
        **options_for(http_path, tls=trust_certificate(tls_server.cert_pem)),
    )
    outcome = await first_outcome(source)
    assert getattr(outcome, "data", outcome) == "event 1"


def bare_hex(fingerprint: str) -> str:
    """Lowercase hex digits, no colons."""
    return fingerprint.replace(":", "").lower()


def openssl_style(fingerprint: str) -> str:
    """``AB:CD:...``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    hex_digits = fingerprint.replace(":", "").upper()
    return ":".join(hex_digits[i : i + 2] for i in range(0, len(hex_digits), 2))


@pytest.mark.parametrize("style", [bare_hex, openssl_style], ids=["hex", "openssl"])
@pytest_twisted.ensureDeferred
async def test_pinned_certificate(tls_server: TLSServer, style: Any, http_path: str) -> None:
    """pin_certificate() accepts the certificate with that fingerprint, colons and case aside."""
    pinned = pin_certificate("00" * 32, style(tls_server.fingerprint))
    source = EventSource(tls_server.url("/events/1"), **options_for(http_path, tls=pinned))
    outcome = await first_outcome(source)
    assert getattr(outcome, "data", outcome) == "event 1"


@pytest_twisted.ensureDeferred
async def test_wrong_pin_refused(tls_server: TLSServer, http_path: str) -> None:
    """A certificate with another fingerprint is refused."""
    source = EventSource(
        tls_server.url("/events/1"),
        **options_for(http_path, tls=pin_certificate("00" * 32), reconnect_delay=5),
    )
    outcome = await first_outcome(source)
    assert isinstance(outcome, NetworkError)
    assert source.ready_state == ReadyState.CLOSED
