"""How many bytes an HTTP/2 stream holds in Twisted's send queue.

Twisted's HTTP/2 connection pauses a response's producer only when the
stream's flow-control window is used up, and that window is the client's to
choose (up to 2 GiB): a client that opens a large window and never reads
would have the server queue that much. To keep every client's queue bounded,
a stream asks :func:`h2_queued` how much of what it wrote still waits in the
connection and holds further bytes in its own (counted) backlog past a limit.

It reads ``H2Stream._conn`` and ``H2Stream.streamID``, then the public
methods ``H2Connection.remainingOutboundWindow`` and the h2 state machine's
``local_flow_control_window``. If any of them is missing (another Twisted
version, or no HTTP/2), :func:`h2_queued` answers ``None`` and the stream
relies on flow control alone.
"""

from __future__ import annotations

from collections.abc import Callable


def h2_queued(channel: object) -> Callable[[], int] | None:
    """A function answering how many bytes ``channel`` has queued, or ``None``.

    :param channel: a request's channel; only an HTTP/2 stream has an answer.
    :returns: a function of no arguments giving the bytes written to the
        stream and not yet sent (``0`` once the stream is closed), or ``None``
        if ``channel`` is not an HTTP/2 stream this module understands.
    """
    connection: object = getattr(channel, "_conn", None)
    stream_id = getattr(channel, "streamID", None)
    remaining = getattr(connection, "remainingOutboundWindow", None)
    window = getattr(getattr(connection, "conn", None), "local_flow_control_window", None)
    if not (isinstance(stream_id, int) and callable(remaining) and callable(window)):
        return None

    def queued() -> int:
        try:
            return int(window(stream_id)) - int(remaining(stream_id))
        except Exception:  # the stream is closed: nothing more is queued for it
            return 0

    return queued
