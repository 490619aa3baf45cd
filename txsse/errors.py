"""The txsse exception hierarchy.

Every exception txsse raises on purpose derives from :class:`SSEError`, so one
``except SSEError`` catches them all. Each message says what was wrong and, where
there is one, what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from txsse._event import Comment, Event


class SSEError(Exception):
    """Base class of every txsse error."""


class ParseError(SSEError):
    """The event stream cannot be parsed any further.

    The parser stops at the offending line. Events completed earlier in the same
    :meth:`~txsse.EventStreamParser.feed` call are not lost: they are in
    :attr:`events`, in order, and the parser's ``last_event_id`` reflects them.

    :ivar events: the events (and comments) completed before the error.
    """

    events: Sequence[Event | Comment]

    def __init__(self, message: str, events: Sequence[Event | Comment] = ()) -> None:
        super().__init__(message)
        self.events = events


class LineTooLong(ParseError):
    """A line of the stream is longer than the parser's ``max_line_length``.

    :ivar limit: the limit that was exceeded, in characters.
    """

    def __init__(self, limit: int, events: Sequence[Event | Comment] = ()) -> None:
        super().__init__(
            f"event stream line longer than max_line_length={limit} characters; "
            "raise max_line_length if the server really sends lines this long",
            events,
        )
        self.limit = limit


class EventTooLarge(ParseError):
    """The data of one event is larger than the parser's ``max_event_size``.

    :ivar limit: the limit that was exceeded, in characters.
    """

    def __init__(self, limit: int, events: Sequence[Event | Comment] = ()) -> None:
        super().__init__(
            f"event data larger than max_event_size={limit} characters; "
            "raise max_event_size if the server really sends events this large",
            events,
        )
        self.limit = limit


class StreamClosed(SSEError):
    """The event source was closed: no more events will be delivered."""


class ConnectionFailed(SSEError):
    """The server's answer means the stream must not be retried.

    This is "fail the connection" in the WHATWG terms: the source goes to
    ``CLOSED`` and does not reconnect by itself.
    """


class HTTPStatusError(ConnectionFailed):
    """The server answered with a status that does not open a stream.

    :ivar status: the HTTP status code.
    :ivar url: the URL that answered.
    """

    def __init__(self, status: int, url: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"{url} answered HTTP {status}{detail}")
        self.status = status
        self.url = url


class NoContent(HTTPStatusError):
    """The server answered 204 No Content: it asks the client to stop for good."""

    def __init__(self, url: str) -> None:
        super().__init__(204, url, "No Content means the server wants no reconnection")


class ContentTypeError(ConnectionFailed):
    """The response is not ``text/event-stream``.

    :ivar content_type: the ``Content-Type`` the server sent (empty if none).
    :ivar url: the URL that answered.
    """

    def __init__(self, content_type: str, url: str) -> None:
        shown = content_type or "no Content-Type"
        super().__init__(
            f"{url} answered with {shown!r}, not 'text/event-stream': "
            "check the URL points at an event stream"
        )
        self.content_type = content_type
        self.url = url


class ContentEncodingError(ConnectionFailed):
    """The body is compressed with a coding txsse does not decode (only gzip and deflate).

    :ivar coding: the ``Content-Encoding`` the server sent.
    :ivar url: the URL that answered.
    """

    def __init__(self, coding: str, url: str) -> None:
        super().__init__(
            f"{url} sent its body with Content-Encoding {coding!r}, which txsse cannot decode "
            "(only gzip and deflate): have the server (or the proxy in front of it) send the "
            "stream uncompressed; txsse asks for that with Accept-Encoding: identity"
        )
        self.coding = coding
        self.url = url


class RedirectError(ConnectionFailed):
    """A redirect could not be followed (no ``Location``, too many hops, https to http)."""


class StateFileError(SSEError):
    """The daemon's state file cannot be read, parsed or written."""


class TransientError(SSEError):
    """A failure after which the source reconnects (network, timeout, end of body)."""


class ConnectTimeout(TransientError):
    """No response headers arrived within ``connect_timeout`` seconds."""


class IdleTimeout(TransientError):
    """No bytes at all arrived within ``idle_timeout`` seconds."""


class NetworkError(TransientError):
    """The connection failed or broke (refused, reset, DNS, TLS); the source reconnects.

    :ivar reason: the underlying exception.
    """

    def __init__(self, url: str, reason: BaseException) -> None:
        super().__init__(f"connection to {url} failed: {reason}")
        self.url = url
        self.reason = reason


class InvalidResponse(TransientError):
    """The server's answer is not valid HTTP/1.1 (txsse's own HTTP client parses it).

    The source reconnects with backoff, as after a network error.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the server's answer is not valid HTTP/1.1 ({detail}); check that the URL "
            "points at an HTTP server (an https URL on a plain HTTP port, or the reverse, "
            "gives this)"
        )
        self.detail = detail


class DecompressionError(TransientError):
    """A gzip or deflate body could not be decompressed (corrupt data); the source reconnects.

    :ivar coding: the body's ``Content-Encoding``.
    """

    def __init__(self, coding: str, detail: str) -> None:
        super().__init__(
            f"the {coding} body of the event stream is corrupt ({detail}); the source reconnects"
        )
        self.coding = coding


class StreamEnded(TransientError):
    """The server ended the response body; the source reconnects."""


class ChannelUnavailable(SSEError):
    """The channel's broker (Redis) cannot be reached right now.

    Raised, or failed with, by a channel's ``publish`` and ``subscribe`` while
    its connection is down; the channel keeps reconnecting with backoff, so the
    same call may succeed a moment later. The hub answers it with ``503``.
    """


class ChannelLimitReached(SSEError, KeyError):
    """A router already serves as many channels as it may; try again later.

    Raised by :meth:`txsse.server.ChannelRouter.channel` for a new name past
    ``max_channels`` (the hub's ``--max-topics``); over HTTP the answer is
    ``503`` with ``Retry-After``. Idle channels are dropped after the router's
    ``idle_timeout``, which makes room again. A :class:`KeyError` too, as the
    limit raised before.

    :ivar limit: the limit that was reached.
    """

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(
            f"cannot open channel {name!r}: {limit} channels are open already "
            "(max_channels); retry once idle ones are dropped, or raise the limit"
        )
        self.limit = limit

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


__all__ = [
    "ChannelLimitReached",
    "ChannelUnavailable",
    "ConnectTimeout",
    "ConnectionFailed",
    "ContentEncodingError",
    "ContentTypeError",
    "DecompressionError",
    "EventTooLarge",
    "HTTPStatusError",
    "IdleTimeout",
    "InvalidResponse",
    "LineTooLong",
    "NetworkError",
    "NoContent",
    "ParseError",
    "RedirectError",
    "SSEError",
    "StateFileError",
    "StreamClosed",
    "StreamEnded",
    "TransientError",
]
