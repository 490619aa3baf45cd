"""The direct socket write: the one place in txsse that reads a transport's private state.

Why: on a cleartext HTTP/1.1 stream whose TCP transport has nothing buffered,
sending an event's bytes to the socket at once (as asyncio's transports do)
saves the reactor two ``epoll_ctl`` calls per event and client; at 1,000
subscribers it halves the server's CPU per delivered event (see
``docs/performance.md``). Twisted has no public API for "write now if idle",
so this module reads four private attributes of
:class:`twisted.internet.tcp.Connection`:

* ``dataBuffer`` (``bytes``) and ``_tempDataBuffer`` (``list``): what the
  transport still holds; the socket is written to only when both are empty,
  so bytes never overtake the ones already buffered;
* ``_aborting`` (``bool``) and ``disconnecting``: never write to a connection
  that is going away;
* ``socket``: the socket itself.

What it checks: :func:`direct_socket` accepts a transport only if it is a
plain (not TLS) :class:`~twisted.internet.tcp.Connection` and every one of
those attributes exists with the expected type; otherwise (another Twisted
version, a wrapped transport, TLS) it answers ``None`` and the stream writes
through ``transport.write`` like any other. Whatever the socket does not take
(a partial send, ``EAGAIN``, an error) goes to ``transport.write`` too, which
buffers it in order and reports a broken connection itself. Turn the whole
thing off with ``EventStreamResource(direct_writes=False)``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.web.server import Request


def direct_socket(transport: object) -> socket.socket | None:
    """The socket to write to directly, or ``None`` to use ``transport.write``.

    :param transport: the TCP transport under an HTTP/1.1 channel.
    :returns: its socket if ``transport`` is a cleartext
        :class:`~twisted.internet.tcp.Connection` with the private state this
        module relies on, of the expected types; ``None`` otherwise.
    """
    if not isinstance(transport, tcp.Connection) or ISSLTransport.providedBy(transport):
        return None
    sock = getattr(transport, "socket", None)
    if (
        type(getattr(transport, "_tempDataBuffer", None)) is list
        and type(getattr(transport, "dataBuffer", None)) is bytes
        and getattr(transport, "_aborting", None) is False
        and not getattr(transport, "disconnecting", True)
        and isinstance(sock, socket.socket)
    ):
        return sock
    return None


class DirectWriter:
    """Write the chunked framing of each chunk to an idle socket, else to the transport.

    :param request: the request (its ``sentLength`` counts body bytes for the access log).
    :param transport: the :class:`~twisted.internet.tcp.Connection`.
    :param sock: its socket, from :func:`direct_socket`.
    :param frame: the HTTP/1.1 chunked framing of a chunk (shared per broadcast).
    """

    __slots__ = ("_frame", "_request", "_socket", "_transport")

    def __init__(
        self,
        request: Request,
        transport: tcp.Connection,
        sock: socket.socket,
        frame: Callable[[bytes | memoryview], bytes],
    ) -> None:
        self._request = request
        self._transport = transport
        self._socket = sock
        self._frame = frame

    def write(self, chunk: bytes | memoryview) -> None:
        """Send the framed ``chunk`` to the socket if nothing is buffered; buffer the rest."""
        framed = self._frame(chunk)
        self._request.sentLength += len(chunk)
        transport = self._transport
        if not (
            transport.dataBuffer
            or transport._tempDataBuffer
            or transport.disconnecting
            or transport._aborting
        ):
            try:
                sent = self._socket.send(framed)
            except OSError:
                # Full (EAGAIN) or broken: the transport buffers it, and finds
                # and reports a broken connection itself.
                sent = 0
            if sent == len(framed):
                return
            framed = framed[sent:]
        transport.write(framed)
