"""One connection attempt: the request, the ``prepare`` hook, redirects.

:func:`request_stream` sends the request of one attempt and follows redirects
until a final response; it knows nothing of states or timers (the source adds
the connect timeout and decides what the response means).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.logger import Logger
from twisted.web.iweb import IAgent, IResponse

from txsse.client._policy import header
from txsse.client._request import REDIRECT_STATUSES, Body, RequestAttempt, build_attempt, redirected
from txsse.client._wire import BytesProducer, discard_body
from txsse.errors import NetworkError, RedirectError, SSEError

#: A per-attempt hook: may change the request in place, and may return an awaitable.
Prepare = Callable[[RequestAttempt], "Awaitable[object] | object"]

_log = Logger(namespace="txsse.client")


@dataclass(frozen=True)
class RequestSettings:
    """What every attempt of one source sends, and how it follows redirects.

    :ivar url: the source's URL (every attempt starts from it).
    :ivar method: the HTTP method.
    :ivar headers: the caller's headers.
    :ivar body: the body, or a factory called on every attempt.
    :ivar prepare: the per-attempt hook, or ``None``.
    :ivar max_redirects: the most redirects followed per attempt.
    :ivar sensitive: lower-case names of headers dropped across origins.
    :ivar allow_insecure_redirect: follow ``https`` to ``http`` redirects.
    """

    url: str
    method: str
    headers: Mapping[str, str]
    body: Body
    prepare: Prepare | None
    max_redirects: int
    sensitive: frozenset[str]
    allow_insecure_redirect: bool


async def request_stream(
    settings: RequestSettings, agent: IAgent, last_event_id: str, attempt: int
) -> tuple[IResponse, RequestAttempt]:
    """Send one attempt's request, following redirects, until a final response.

    :param settings: the source's request settings.
    :param agent: where requests go.
    :param last_event_id: sent as ``Last-Event-ID`` when not empty.
    :param attempt: the attempt number.
    :returns: the final response and the request that got it.
    :raises NetworkError: when a request fails (refused, reset, DNS, TLS...).
    :raises RedirectError: for a redirect that cannot be followed.
    :raises Exception: whatever the body factory or the ``prepare`` hook raised.
    """
    request = build_attempt(
        settings.url, settings.method, settings.headers, settings.body, last_event_id, attempt
    )
    if settings.prepare is not None:
        result = settings.prepare(request)
        if inspect.iscoroutine(result):
            await Deferred.fromCoroutine(result)
        elif inspect.isawaitable(result):  # a Deferred, or any other awaitable
            await result
    hops = 0
    while True:
        _log.debug(
            "Requesting {method} {url} (attempt {attempt})",
            method=request.method,
            url=request.url,
            attempt=attempt,
        )
        try:
            producer = BytesProducer(request.body) if request.body is not None else None
            response: IResponse = await agent.request(
                request.method.encode("ascii"),
                request.url.encode("utf-8"),
                request.twisted_headers(),
                producer,
            )
        except (CancelledError, TimeoutError, SSEError):
            raise
        except Exception as error:
            raise NetworkError(settings.url, error) from None
        if response.code not in REDIRECT_STATUSES:
            return response, request
        location = header(response.headers, b"location")
        discard_body(response)
        hops += 1
        if hops > settings.max_redirects:
            raise RedirectError(
                f"{settings.url}: more than {settings.max_redirects} redirects; "
                "the server is probably redirecting in a loop"
            )
        request = redirected(
            request,
            response.code,
            location,
            sensitive=settings.sensitive,
            allow_insecure=settings.allow_insecure_redirect,
        )
