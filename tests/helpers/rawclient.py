"""Event-stream clients on blocking sockets in their own threads: HTTP/1.1, HTTP/1.0, TLS, h2.

The server under test runs in the reactor thread; these clients never block
it. A client either reads everything (and parses events) or never reads at
all, with a small receive buffer set before connecting, as an attacker would.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any

from twisted.internet import reactor, tcp
from twisted.internet import ssl as tssl
from twisted.internet.interfaces import IListeningPort
from twisted.web.server import Site

from tests.helpers.memhttp import dechunk
from tests.helpers.tls import self_signed
from txsse import Event, EventStreamParser
from txsse.server._direct import DirectWriter
from txsse.server._h2 import h2_queued

MODES = ["http/1.1", "http/1.0", "tls", "h2"]


class RawClient:
    """One GET /events in its own thread.

    :param port: the server's port on 127.0.0.1.
    :param mode: one of :data:`MODES` (``tls`` is HTTP/1.1 over TLS).
    :param headers: extra request headers.
    :param read: read and parse the stream (``True``) or never read (``False``).
    :param rcvbuf: the socket's receive buffer, set before connecting.
    """

    def __init__(
        self,
        port: int,
        mode: str,
        *,
        headers: dict[str, str] | None = None,
        read: bool = True,
        rcvbuf: int | None = None,
    ) -> None:
        self.port = port
        self.mode = mode
        self.headers = headers or {}
        self.read = read
        self.rcvbuf = rcvbuf
        self.parser = EventStreamParser()
        self.events: list[Event] = []
        self.closed = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the client and wait for its thread."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            sock = socket.socket()
            if self.rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", self.port))
            if self.mode in ("tls", "h2"):
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                context.set_alpn_protocols(["h2"] if self.mode == "h2" else ["http/1.1"])
                sock = context.wrap_socket(sock)
            self._sock = sock
            if self.mode == "h2":
                self._h2(sock)
            else:
                self._http1(sock)
        except OSError as error:
            if not self._stop.is_set():
                self.error = error
        finally:
            self.closed.set()
            if self._sock is not None:
                self._sock.close()

    def _feed(self, body: bytes) -> None:
        self.events.extend(e for e in self.parser.feed(body) if isinstance(e, Event))

    def _idle(self) -> None:
        """Never read: wait until told to stop."""
        self._stop.wait(60)

    def _http1(self, sock: socket.socket) -> None:
        version = b"HTTP/1.0" if self.mode == "http/1.0" else b"HTTP/1.1"
        lines = [b"GET /events " + version, b"Host: 127.0.0.1"]
        lines += [f"{k}: {v}".encode() for k, v in self.headers.items()]
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        if not self.read:
            return self._idle()
        head = bytearray()
        started = False
        chunked: bytearray | None = None
        while not self._stop.is_set():
            data = sock.recv(65536)
            if not data:
                return None
            if not started:
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                header, _, data = bytes(head).partition(b"\r\n\r\n")
                started = True
                if b"transfer-encoding: chunked" in header.lower():
                    chunked = bytearray()
            if chunked is not None:
                chunked += data
                data = dechunk(chunked)
            self._feed(data)
        return None

    def _h2(self, sock: socket.socket) -> None:
        from h2.config import H2Configuration
        from h2.connection import H2Connection
        from h2.events import ConnectionTerminated, DataReceived, StreamEnded, StreamReset
        from h2.settings import SettingCodes

        conn = H2Connection(H2Configuration(client_side=True))
        conn.initiate_connection()
        # The largest windows a client may open: the server may send that much.
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        request = [(":method", "GET"), (":path", "/events"), (":scheme", "https")]
        request += [(":authority", "127.0.0.1"), *self.headers.items()]
        conn.send_headers(1, request, end_stream=True)
        sock.sendall(conn.data_to_send())
        if not self.read:
            return self._idle()
        while not self._stop.is_set():
            data = sock.recv(65536)
            if not data:
                return None
            for event in conn.receive_data(data):
                if isinstance(event, DataReceived):
                    self._feed(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, StreamEnded | StreamReset | ConnectionTerminated):
                    return None
            sock.sendall(conn.data_to_send())
        return None


def listen(site: Site, mode: str) -> IListeningPort:
    """Listen on 127.0.0.1: cleartext for HTTP/1.x, TLS offering h2 and http/1.1 otherwise."""
    if mode in ("http/1.1", "http/1.0"):
        port: IListeningPort = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        return port
    cert_pem, key_pem = self_signed()
    certificate = tssl.PrivateCertificate.loadPEM(cert_pem + key_pem)
    options = tssl.CertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        acceptableProtocols=[b"h2", b"http/1.1"],
    )
    port = reactor.listenSSL(0, site, options, interface="127.0.0.1")  # type: ignore[attr-defined]
    return port


def is_direct(stream: Any) -> bool:
    """Whether a server ``_Stream`` writes through the direct socket path."""
    return isinstance(getattr(stream._write, "__self__", None), DirectWriter)


def server_buffered(request: Any) -> int:
    """Bytes the server holds for ``request`` below txsse: HTTP/2 queue, TLS, TCP buffers."""
    channel = request.channel
    if channel is None:
        return 0
    total = 0
    queued = h2_queued(channel)
    if queued is not None:
        total += queued()
        channel = channel._conn
    transport = channel.transport
    while transport is not None:
        if isinstance(transport, tcp.Connection):
            held = len(transport.dataBuffer) - transport.offset
            return total + held + transport._tempDataLen
        total += sum(len(b) for b in getattr(transport, "_appSendBuffer", None) or [])
        transport = getattr(transport, "transport", None)
    return total
