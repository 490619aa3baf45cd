"""EventStreamResource: serve a channel as ``text/event-stream`` over twisted.web."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txsse._format import format_event
from txsse._reactor import default_reactor
from txsse._validate import check_count, check_seconds
from txsse.server._channel import IEventChannel, Replay
from txsse.server._stream import _Stream

_KEEPALIVE = b":\n"
_ALLOW = b"GET, HEAD"


def _milliseconds(seconds: float) -> int:
    """Seconds to the whole milliseconds of a ``retry:`` field."""
    return round(seconds * 1000)


def last_event_id(request: Request) -> str | None:
    """The id a client wants to resume after, or ``None``.

    The ``Last-Event-ID`` header wins; polyfills that cannot set headers send
    a ``lastEventId`` query parameter instead. Invalid UTF-8 is replaced (such
    an id can never match one the channel issued, so it is reported as a gap).

    :param request: the incoming request.
    :returns: the id, or ``None`` if absent or empty.
    """
    raw = request.getHeader(b"last-event-id")
    if raw is None:
        values = (request.args or {}).get(b"lastEventId")
        raw = values[0] if values else None
    if not raw:
        return None
    return raw.decode("utf-8", "replace")


_uniform = random.random


class EventStreamResource(Resource):
    """A twisted.web resource that serves one channel as an event stream.

    ``GET`` opens a stream: the response headers, an optional ``retry:`` hint,
    the events after the client's ``Last-Event-ID`` (header, or ``lastEventId``
    query parameter), then every event as it is published, each written to the
    transport at once. ``HEAD`` answers the same headers without a body and
    without subscribing. Other methods get ``405`` with ``Allow: GET, HEAD``.

    :param channel: the :class:`IEventChannel` to serve.
    :param keepalive: seconds between keep-alive comments (``:``) sent to
        every stream, or ``None`` for none. Proxies drop idle connections.
    :param retry: seconds to put in a ``retry:`` field at the start of each
        stream (clients wait that long before reconnecting), or ``None``.
    :param max_unsent: bytes that may wait for one client (beyond what its
        transport holds: at most its 64 KiB write buffer and one 64 KiB piece),
        replay included. A client whose waiting bytes stay above this for
        ``slow_client_timeout`` seconds is disconnected; it resumes from the
        history when it reconnects.
    :param slow_client_timeout: seconds a client may stay above
        ``max_unsent`` before it is disconnected, so that one burst never
        evicts a client that reads at full speed. ``0`` disconnects at once.
    :param direct_writes: on cleartext HTTP/1.1, send each event straight to
        the socket when its transport has nothing buffered (see
        :mod:`txsse.server._direct`; about half the CPU per event). ``False``
        writes through the transport only.
    :param reset_event: the event type of the notice sent when a client asks
        to resume after an id the channel no longer holds (a gap).
    :param reactor: the :class:`IReactorTime` for keep-alive timers; the
        global reactor by default.
    :param random: returns a float in [0, 1): the source of the spread of
        :meth:`close`'s final ``retry``; :func:`random.random` by default (tests
        pass their own).
    :raises ValueError: for a channel that does not provide
        :class:`IEventChannel`, or out-of-range parameters.
    """

    isLeaf = True
    _log = Logger()

    def __init__(
        self,
        channel: IEventChannel,
        keepalive: float | None = 15.0,
        retry: float | None = None,
        *,
        max_unsent: int = 64 * 1024,
        slow_client_timeout: float = 10.0,
        direct_writes: bool = True,
        reset_event: str = "reset",
        reactor: IReactorTime | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        if not IEventChannel.providedBy(channel):
            raise ValueError(f"channel must provide IEventChannel, not {channel!r}")
        check_count("max_unsent", max_unsent, unit=" of bytes")
        if not reset_event:
            raise ValueError(
                "reset_event must be a non-empty event type (clients read '' as message)"
            )
        format_event(event=reset_event)  # raises ValueError for an unusable event type
        reactor = default_reactor(reactor)
        self.channel = channel
        self.keepalive = check_seconds("keepalive", keepalive, positive=True)
        retry_s = check_seconds("retry", retry, positive=False)
        self.retry = retry_s
        self.max_unsent = max_unsent
        timeout = check_seconds(
            "slow_client_timeout", slow_client_timeout, positive=False, optional=False
        )
        self.slow_client_timeout: float = timeout or 0.0
        self.direct_writes = bool(direct_writes)
        self.reset_event = reset_event
        self._reactor: IReactorTime = reactor
        self._random = random if random is not None else _uniform
        self._hint = b"" if retry_s is None else format_event(retry=_milliseconds(retry_s))
        self._streams: dict[_Stream, None] = {}
        self._timer: IDelayedCall | None = None
        self._closed = False
        self._frame_source: bytes | memoryview = b""
        self._framed = b"0\r\n\r\n"

    @property
    def stream_count(self) -> int:
        """How many streams are open now."""
        return len(self._streams)

    # -- HTTP --------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        """Dispatch on the method: ``GET`` streams, ``HEAD`` heads, others 405."""
        if request.method == b"GET":
            return self._render_stream(request)
        if request.method == b"HEAD":
            self._set_stream_headers(request)
            return b""
        request.setResponseCode(405)
        request.setHeader(b"allow", _ALLOW)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Method Not Allowed: an event stream answers GET (and HEAD) only.\n"

    @staticmethod
    def _set_stream_headers(request: Request) -> None:
        """The event-stream headers (never ``Connection``: HTTP/2 forbids it)."""
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")

    def _render_stream(self, request: Request) -> bytes | int:
        """Subscribe the request to the channel and keep the response open."""
        if self._closed:
            request.setResponseCode(503)
            request.setHeader(b"retry-after", b"%d" % max(1, round(self.retry or 1)))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Service Unavailable: the event stream is shutting down.\n"
        self._set_stream_headers(request)
        resume = last_event_id(request)
        stream = _Stream(self, request)
        self._streams[stream] = None
        request.notifyFinish().addBoth(stream.finished)
        d = maybeDeferred(self.channel.subscribe, stream, resume)
        if not d.called:
            stream.pending = d
        d.addCallbacks(
            self._subscribed,
            self._subscribe_failed,
            callbackArgs=(stream, resume),
            errbackArgs=(stream,),
        )
        return NOT_DONE_YET

    def _subscribed(self, replay: Replay, stream: _Stream, resume: str | None) -> None:
        """The channel answered: write the hint, any gap notice, and the replay."""
        stream.pending = None
        if not stream.open:
            self.channel.unsubscribe(stream)
            return
        notice = b""
        if replay.gap:
            self._log.info(
                "client {peer} asked to resume after {last_event_id!r}, which is not in the"
                " history (oldest kept: {oldest_id!r}); sending a {event!r} event",
                peer=stream.peer(),
                last_event_id=resume,
                oldest_id=replay.oldest_id,
                event=self.reset_event,
            )
            notice = format_event(
                json.dumps({"last_event_id": resume, "oldest_id": replay.oldest_id}),
                event=self.reset_event,
            )
        # Registered first, so that a replay filling the transport's buffer
        # pauses the stream and the rest waits, counted, in its backlog.
        stream.request.registerProducer(stream, True)
        opening = self._hint + notice
        if resume is None and replay.position is not None:
            # The resume point: sets the client's last event id, dispatches nothing.
            opening += format_event(id=replay.position)
        stream.start(opening or (b"" if replay.chunk else _KEEPALIVE), replay.chunk)
        self._start_keepalive()

    def _subscribe_failed(self, failure: Failure, stream: _Stream) -> None:
        """The channel could not subscribe: answer 503 so the client retries."""
        stream.pending = None
        if not stream.open:
            return
        self._log.failure(
            "channel {channel!r} failed to subscribe",
            failure,
            level=LogLevel.error,
            channel=self.channel,
        )
        request = stream.request
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(b"Service Unavailable: the event channel failed.\n")
        request.finish()

    # -- per-stream events ---------------------------------------------------

    def _frame(self, chunk: bytes | memoryview) -> bytes:
        """The HTTP/1.1 chunked framing of ``chunk``, computed once per broadcast."""
        if chunk is not self._frame_source:
            self._framed = b"".join((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            self._frame_source = chunk
        return self._framed

    def _release(self, stream: _Stream) -> None:
        """Forget ``stream`` and unsubscribe it, at once (idempotent)."""
        if not stream.open:
            return
        stream.open = False
        stream.discard()
        del self._streams[stream]
        if stream.pending is not None:
            pending, stream.pending = stream.pending, None
            pending.addErrback(lambda _: None)
            pending.cancel()
        self.channel.unsubscribe(stream)
        if not self._streams:
            self._stop_keepalive()

    def _evict(self, stream: _Stream) -> None:
        """Disconnect a client that did not keep up; everyone else goes on."""
        self._log.warn(
            "disconnecting slow client {peer}: more than {max_unsent} bytes waited for it"
            " for {timeout} seconds",
            peer=stream.peer(),
            max_unsent=self.max_unsent,
            timeout=self.slow_client_timeout,
        )
        stream.evicted = True
        self._release(stream)
        stream.abort()

    def _finish_stream(self, stream: _Stream, last: bytes) -> None:
        """End one response cleanly after its backlog and ``last``; close an HTTP/1.x connection."""
        if not stream.open:
            return
        request = stream.request
        stream.flush_backlog()
        self._release(stream)
        channel: object = request.channel  # None once the connection is gone
        if channel is None:
            return
        if request.producer is not None:
            request.unregisterProducer()
        if last:
            request.write(last)
        request.finish()
        if isinstance(channel, HTTPChannel):
            # HTTP/1.x: close the connection too. An HTTP/2 stream is over once
            # finished; its connection carries other streams.
            channel.loseConnection()

    # -- keep-alive ----------------------------------------------------------

    def _start_keepalive(self) -> None:
        if self._timer is None and self.keepalive is not None and self._streams:
            self._timer = self._reactor.callLater(self.keepalive, self._tick)

    def _stop_keepalive(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        """Send a keep-alive comment to every open stream."""
        self._timer = None
        for stream in tuple(self._streams):
            if stream.open and stream.pending is None:
                stream.send(_KEEPALIVE)
        self._start_keepalive()

    # -- shutdown ------------------------------------------------------------

    def close(self, retry: float | None = None, *, spread: bool = True) -> None:
        """End every stream and refuse new ones (``503`` with ``Retry-After``).

        :param retry: if given, each stream gets a final ``retry:`` field first
            so its client waits before reconnecting: with ``spread`` a uniformly
            random delay up to ``retry`` seconds per client, so they do not all
            come back at once; without it exactly ``retry`` seconds.
        :param spread: randomize the final delay per client (see ``retry``).
        :raises ValueError: if ``retry`` is negative or not a number.
        """
        seconds = check_seconds("retry", retry, positive=False)
        self._closed = True
        for stream in tuple(self._streams):
            last = b""
            if seconds is not None:
                delay = seconds * self._random() if spread else seconds
                last = format_event(retry=_milliseconds(delay))
            self._finish_stream(stream, last)
        self._stop_keepalive()

    def reopen(self) -> None:
        """Accept new streams again after :meth:`close`."""
        self._closed = False

    def __repr__(self) -> str:
        return f"<EventStreamResource {self.channel!r} streams={len(self._streams)}>"
