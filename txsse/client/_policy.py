"""Status policies: what an :class:`~txsse.EventSource` does with a response.

A policy is a callable ``policy(status, headers, url, now) -> Decision``. It sees
every final response (redirects are followed before it is asked) and says whether
to open the stream, retry later, or fail for good. Two are built in:
:func:`strict_policy` (what a browser does) and :func:`resilient_policy` (the
default, for long-running clients).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from twisted.web.http_headers import Headers

from txsse.errors import ContentTypeError, HTTPStatusError, NoContent, SSEError

#: The MIME type essence that opens a stream.
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class Decision:
    """What to do with a response.

    :ivar action: ``"open"`` the stream, ``"retry"`` later, or ``"fail"`` for good.
    :ivar error: why, for ``"retry"`` and ``"fail"``.
    :ivar retry_after: for ``"retry"``, the least delay in seconds the server asked
        for (``Retry-After``), or ``None``.
    """

    action: Literal["open", "retry", "fail"]
    error: SSEError | None = None
    retry_after: float | None = None


#: The decision that opens the stream.
OPEN = Decision("open")

#: The type of a status policy: ``(status, headers, url, now) -> Decision``, where
#: ``now`` is the source's clock in seconds since the epoch (for ``Retry-After`` dates).
StatusPolicy = Callable[[int, Headers, str, float], Decision]


def header(headers: Headers, name: bytes) -> str:
    """The first value of a response header, decoded as Latin-1, or ``""``.

    :param headers: the response headers.
    :param name: the header name.
    :returns: the value, or an empty string when absent.
    """
    values = headers.getRawHeaders(name)
    if not values:
        return ""
    value = values[0]
    return value.decode("latin-1") if isinstance(value, bytes) else value


def mime_essence(content_type: str) -> str:
    """The MIME type essence of a ``Content-Type``: no parameters, lower case.

    :param content_type: the header value, for example
        ``"text/event-stream; charset=utf-8"``.
    :returns: for example ``"text/event-stream"``.
    """
    return content_type.split(";", 1)[0].strip().lower()


def retry_after(headers: Headers, now: float) -> float | None:
    """The delay a ``Retry-After`` header asks for.

    :param headers: the response headers.
    :param now: the current time, seconds since the epoch.
    :returns: seconds (0 or more), or ``None`` without a valid header.
    """
    value = header(headers, b"retry-after").strip()
    if not value:
        return None
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def _open_or_content_error(status: int, headers: Headers, url: str) -> Decision | None:
    """Shared rules: 200 with the right type opens, 204 stops, 200 otherwise fails."""
    if status == 204:
        return Decision("fail", NoContent(url))
    if status == 200:
        content_type = header(headers, b"content-type")
        if mime_essence(content_type) == EVENT_STREAM:
            return OPEN
        return Decision("fail", ContentTypeError(content_type, url))
    return None


def strict_policy(status: int, headers: Headers, url: str, now: float) -> Decision:
    """Browser-exact: only 200 ``text/event-stream`` opens; anything else fails.

    Network errors and the end of the body are still retried, as in a browser.

    :param status: the response status.
    :param headers: the response headers.
    :param url: the URL that answered.
    :param now: the current time (unused).
    :returns: the decision.
    """
    decided = _open_or_content_error(status, headers, url)
    if decided is not None:
        return decided
    return Decision("fail", HTTPStatusError(status, url))


#: Statuses :func:`resilient_policy` retries besides 5xx.
RETRIED_STATUSES = frozenset({408, 429})


def resilient_policy(status: int, headers: Headers, url: str, now: float) -> Decision:
    """The default: retry what may heal by itself, fail on what will not.

    5xx, 408 and 429 are retried, waiting at least what ``Retry-After`` asks;
    204 stops for good; other statuses, and 200 with another content type, fail
    with a clear error.

    :param status: the response status.
    :param headers: the response headers.
    :param url: the URL that answered.
    :param now: the current time, for a ``Retry-After`` date.
    :returns: the decision.
    """
    decided = _open_or_content_error(status, headers, url)
    if decided is not None:
        return decided
    error = HTTPStatusError(status, url)
    if status >= 500 or status in RETRIED_STATUSES:
        return Decision("retry", error, retry_after(headers, now))
    return Decision("fail", error)


#: The built-in policies by name.
POLICIES: dict[str, StatusPolicy] = {
    "strict": strict_policy,
    "resilient": resilient_policy,
}


def resolve_policy(policy: str | StatusPolicy) -> StatusPolicy:
    """The policy callable for a name or a callable.

    :param policy: ``"strict"``, ``"resilient"`` or a callable.
    :returns: the callable.
    :raises ValueError: for an unknown name.
    """
    if callable(policy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"unknown policy {policy!r}: use 'resilient', 'strict' or a callable"
        ) from None
