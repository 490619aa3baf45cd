"""Building an event-stream request, and following redirects.

No I/O here: :class:`RequestAttempt` describes one request, :func:`redirected`
computes the next hop of a redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from twisted.web.http_headers import Headers

from txsse._validate import check_url
from txsse.errors import RedirectError

#: Statuses followed as redirects.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Default most redirects followed for one connection (as the Fetch standard).
DEFAULT_MAX_REDIRECTS = 20
#: Headers always dropped when a redirect leaves the origin (lower case).
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

#: A request body, or a factory called on every attempt to produce it again.
Body = bytes | Callable[[], bytes] | None


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url``."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


@dataclass
class RequestAttempt:
    """One request the source is about to send; a ``prepare`` hook may change it.

    :ivar url: the URL requested (the original one on every reconnection).
    :ivar method: the HTTP method.
    :ivar headers: the request headers (``Accept``, ``Cache-Control``,
        ``Accept-Encoding: identity`` and, when
        there is one, ``Last-Event-ID`` included); change them in place, for
        example to refresh an ``Authorization`` token.
    :ivar body: the request body, or ``None``.
    :ivar attempt: 1 for the first connection, then one more per reconnection.
    """

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    attempt: int = 1

    def twisted_headers(self) -> Headers:
        """The headers as a :class:`~twisted.web.http_headers.Headers`.

        :returns: a new ``Headers``; values are encoded as UTF-8.
        """
        result = Headers()
        for name, value in self.headers.items():
            result.addRawHeader(name.encode("ascii"), value.encode("utf-8"))
        return result


def build_attempt(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: Body,
    last_event_id: str,
    attempt: int,
) -> RequestAttempt:
    """The request for one connection attempt.

    :param url: the source's URL.
    :param method: the HTTP method.
    :param headers: the caller's headers, added over the defaults.
    :param body: the body, or a factory called now to produce it.
    :param last_event_id: sent as ``Last-Event-ID`` when not empty.
    :param attempt: the attempt number.
    :returns: the request.
    """
    merged = {
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
        "Accept-Encoding": "identity",  # a compressed stream only delays events
    }
    lowered = {name.lower(): name for name in merged}
    for name, value in headers.items():
        if name.lower() == "last-event-id":
            continue
        merged.pop(lowered.get(name.lower(), name), None)
        merged[name] = value
    if last_event_id:
        merged["Last-Event-ID"] = last_event_id
    payload = body() if callable(body) else body
    return RequestAttempt(url, method, merged, payload, attempt)


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Check custom headers: ASCII names, no CR, LF or NUL anywhere.

    :param headers: name to value.
    :returns: a copy.
    :raises ValueError: for a header that cannot be sent.
    """
    for name, value in headers.items():
        if not name or not name.isascii() or any(c in name for c in " :\r\n\0"):
            raise ValueError(f"invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid value for header {name!r}: CR, LF and NUL are not allowed")
    return dict(headers)


def sensitive_names(headers: Iterable[str]) -> frozenset[str]:
    """The lower-case names of the headers a cross-origin redirect drops.

    :param headers: the user's sensitive header names (any case).
    :returns: them, with :data:`CREDENTIAL_HEADERS`.
    :raises TypeError: when ``headers`` is a string or holds a non-string.
    """
    if isinstance(headers, str | bytes):
        raise TypeError(f"sensitive_headers must be a collection of header names, not {headers!r}")
    names = set(CREDENTIAL_HEADERS)
    for name in headers:
        if not isinstance(name, str):
            raise TypeError(f"sensitive_headers must hold header names (str), not {name!r}")
        names.add(name.lower())
    return frozenset(names)


def redirected(
    request: RequestAttempt,
    status: int,
    location: str | None,
    *,
    sensitive: frozenset[str] = CREDENTIAL_HEADERS,
    allow_insecure: bool = False,
) -> RequestAttempt:
    """The request to send after a redirect response.

    ``307`` and ``308`` repeat the method and body; ``301``, ``302`` and ``303``
    turn anything but ``GET`` and ``HEAD`` into a ``GET`` without a body, as
    browsers do. The ``sensitive`` headers are dropped when the redirect leaves
    the origin (scheme, host and port).

    :param request: the request that was redirected.
    :param status: the redirect status.
    :param location: the ``Location`` header, or ``None``.
    :param sensitive: lower-case names of the headers dropped on a
        cross-origin redirect (see :func:`sensitive_names`).
    :param allow_insecure: follow a redirect from ``https`` to ``http``.
    :returns: the next request.
    :raises RedirectError: when ``Location`` is missing, empty or not an
        http(s) URL, or leads from ``https`` to ``http`` without
        ``allow_insecure``.
    """
    if not location or not location.strip():
        raise RedirectError(
            f"{request.url} answered HTTP {status} without a Location header: "
            "the server's redirect is broken"
        )
    target = urljoin(request.url, location.strip())
    try:
        check_url(target)
    except ValueError as error:
        raise RedirectError(f"{request.url} redirected to an unusable URL: {error}") from None
    if (
        not allow_insecure
        and urlsplit(request.url).scheme == "https"
        and urlsplit(target).scheme == "http"
    ):
        raise RedirectError(
            f"{request.url} redirected to {target}, from https to plain http: refused so that "
            "the stream and its headers are not sent unencrypted; pass "
            "allow_insecure_redirect=True to follow such redirects"
        )
    method, body = request.method, request.body
    headers = dict(request.headers)
    if status in (301, 302, 303) and method not in ("GET", "HEAD"):
        method, body = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if _origin(target) != _origin(request.url):
        headers = {k: v for k, v in headers.items() if k.lower() not in sensitive}
    return RequestAttempt(target, method, headers, body, request.attempt)
