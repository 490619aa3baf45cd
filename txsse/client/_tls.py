"""TLS choices for the default agent: a private CA, or one pinned certificate.

By default an :class:`~txsse.EventSource` verifies the server's certificate
against the system's trusted CAs and checks the host name, as a browser does.
Devices on a local network (a Philips Hue bridge, a NAS, a home-made sensor)
often serve a certificate no public CA signed; these two policies let you trust
exactly that, and nothing weaker.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

_HEX = re.compile(r"[0-9a-f]{64}")


def _pem(certificate: bytes | str | Path) -> bytes:
    """PEM bytes from PEM text or a file path."""
    if isinstance(certificate, Path):
        return certificate.read_bytes()
    if isinstance(certificate, str):
        if "-----BEGIN" in certificate:
            return certificate.encode("ascii")
        return Path(certificate).read_bytes()
    return certificate


def trust_certificate(certificate: bytes | str | Path) -> IPolicyForHTTPS:
    """Trust one CA (or one self-signed server certificate) instead of the system CAs.

    The host name is still checked against the certificate, so the certificate
    must name the host (or IP address) in the URL.

    :param certificate: the certificate in PEM: bytes, text, or a file path.
    :returns: a policy for ``EventSource(..., tls=...)``.
    :raises ValueError: when the PEM cannot be loaded.
    """
    try:
        root = ssl.Certificate.loadPEM(_pem(certificate))
    except (SSL.Error, crypto.Error, ValueError) as error:
        raise ValueError(f"cannot load the PEM certificate: {error}") from None
    policy: IPolicyForHTTPS = BrowserLikePolicyForHTTPS(trustRoot=root)
    return policy


def _fingerprint(text: str) -> str:
    """Normalise a SHA-256 fingerprint to 64 lower-case hex digits."""
    value = text.replace(":", "").replace(" ", "").lower()
    if not _HEX.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed); "
            "get it with: openssl x509 -noout -fingerprint -sha256 -in cert.pem"
        )
    return value


@implementer(IOpenSSLClientConnectionCreator)
class _PinnedCreator:
    """Client TLS connections that accept only pinned leaf certificates."""

    def __init__(self, pins: frozenset[str], hostname: str) -> None:
        self._pins = pins
        self._hostname = hostname

    def _verify(
        self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        if depth > 0:
            return True
        digest: bytes = cert.digest("sha256")
        return digest.decode("ascii").replace(":", "").lower() in self._pins

    def clientConnectionForTLS(self, tls_protocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A TLS connection for ``tls_protocol``.

        :param tls_protocol: the ``TLSMemoryBIOProtocol`` that will use it.
        :returns: the connection.
        """
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_verify(SSL.VERIFY_PEER, self._verify)
        connection = SSL.Connection(context, None)
        connection.set_app_data(tls_protocol)
        connection.set_connect_state()
        try:
            ipaddress.ip_address(self._hostname)
        except ValueError:
            connection.set_tlsext_host_name(self._hostname.encode("idna"))
        return connection


@implementer(IPolicyForHTTPS)
class _PinnedPolicy:
    """Accept servers whose certificate has one of the pinned fingerprints."""

    def __init__(self, pins: frozenset[str]) -> None:
        self._pins = pins

    def creatorForNetloc(self, hostname: bytes, port: int) -> _PinnedCreator:
        """The connection creator for one host.

        :param hostname: the host in the URL.
        :param port: the port (unused).
        :returns: the creator.
        """
        return _PinnedCreator(self._pins, hostname.decode("ascii"))


def pin_certificate(*fingerprints: str) -> IPolicyForHTTPS:
    """Accept only a server certificate with one of these SHA-256 fingerprints.

    Neither a CA nor the host name is checked: the fingerprint alone identifies
    the server. Use it for a device whose self-signed certificate does not
    name the address you reach it at.

    :param fingerprints: SHA-256 fingerprints of the accepted certificates,
        hex, colons and case ignored.
    :returns: a policy for ``EventSource(..., tls=...)``.
    :raises ValueError: without a fingerprint, or for a malformed one.
    """
    if not fingerprints:
        raise ValueError("pin_certificate needs at least one fingerprint")
    return _PinnedPolicy(frozenset(_fingerprint(f) for f in fingerprints))
