"""EventSource: deterministic tests with a Clock and an in-memory agent."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from tests.helpers.harness import Harness, harness, results
from txsse import (
    Comment,
    Decision,
    Event,
    EventSource,
    Opened,
    ReadyState,
    Reconnect,
    RequestAttempt,
)
from txsse.client._backoff import FAILURE_FLOOR
from txsse.errors import (
    ConnectionFailed,
    ConnectTimeout,
    ContentTypeError,
    HTTPStatusError,
    IdleTimeout,
    LineTooLong,
    NetworkError,
    NoContent,
    RedirectError,
    StreamClosed,
    StreamEnded,
)

__all__ = ["harness"]

URL = "http://example.test/events"


def failed_with(got: list[Any], kind: type[BaseException]) -> bool:
    """Whether ``got`` (from results()) holds exactly one Failure of ``kind``."""
    return len(got) == 1 and isinstance(got[0], Failure) and got[0].check(kind) is not None


# Opening and delivering


def test_opens_and_delivers_events(harness: Harness) -> None:
    """A 200 text/event-stream response opens the stream and its events come out of next()."""
    source = harness.started()
    assert source.ready_state == ReadyState.CONNECTING
    got = results(source.next())
    body = harness.agent.last.respond()
    assert source.ready_state == ReadyState.OPEN
    body.write(b"data: hello\n\n")
    assert got == [Event("hello", "message", "")]


def test_default_request_headers(harness: Harness) -> None:
    """The request is a GET with Accept, Cache-Control and no Last-Event-ID when it is empty."""
    harness.started()
    request = harness.agent.last
    assert request.method == b"GET"
    assert request.url == URL
    assert request.header("Accept") == "text/event-stream"
    assert request.header("Cache-Control") == "no-cache"
    assert request.header("Last-Event-ID") is None
    assert request.body is None


def test_last_event_id_sent_utf8(harness: Harness) -> None:
    """A last event ID given at construction is sent as Last-Event-ID, encoded as UTF-8."""
    harness.started(last_event_id="caf\u00e9-7")
    raw = harness.agent.last.headers.getRawHeaders(b"Last-Event-ID")
    assert raw == ["caf\u00e9-7".encode()]


def test_custom_headers_added_and_override(harness: Harness) -> None:
    """Custom headers are sent, may replace Accept, and cannot forge Last-Event-ID."""
    harness.started(
        headers={
            "Authorization": "Bearer t",
            "accept": "text/event-stream, */*",
            "Last-Event-ID": "x",
        },
    )
    request = harness.agent.last
    assert request.header("Authorization") == "Bearer t"
    assert request.headers.getRawHeaders(b"accept") == [b"text/event-stream, */*"]
    assert request.header("Last-Event-ID") is None


def test_post_with_body_resent_on_every_attempt(harness: Harness) -> None:
    """A method with a body factory sends a freshly built body on each attempt."""
    calls: list[int] = []

    def body() -> bytes:
        calls.append(1)
        return b'{"n": %d}' % len(calls)

    harness.started(method="post", body=body, reconnect_delay=1.0)
    assert harness.agent.last.method == b"POST"
    assert harness.agent.last.body == b'{"n": 1}'
    harness.agent.last.respond().finish()
    harness.clock.advance(1.0)
    assert harness.agent.last.body == b'{"n": 2}'


def test_bytes_body(harness: Harness) -> None:
    """A bytes body is sent as is."""
    harness.started(method="POST", body=b"prompt")
    assert harness.agent.last.body == b"prompt"


def test_invalid_arguments_raise() -> None:
    """An invalid URL, header, method, policy or option raises at construction."""
    for bad in ("example.test/events", "ftp://example.test/", "http://", "http://h:99999/"):
        with pytest.raises(ValueError):
            Harness().source(bad)
    with pytest.raises(ValueError):
        Harness().source(URL, headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ValueError):
        Harness().source(URL, method="GET /x")
    with pytest.raises(ValueError):
        Harness().source(URL, policy="lenient")
    with pytest.raises(ValueError):
        Harness().source(URL, reconnect_delay=5, max_reconnect_delay=1)
    with pytest.raises(ValueError):
        Harness().source(URL, queue_size=-1)
    with pytest.raises(ValueError):
        Harness().source(URL, idle_timeout=0)
    with pytest.raises(ValueError):
        Harness().source(URL, connect_timeout=float("nan"))
    with pytest.raises(TypeError):
        Harness().source(URL, body="text")  # type: ignore[arg-type]


# The prepare hook


def test_prepare_hook_changes_headers_each_attempt(harness: Harness) -> None:
    """The prepare hook sees each attempt and may set headers (token refresh)."""
    seen: list[int] = []

    def prepare(request: RequestAttempt) -> None:
        seen.append(request.attempt)
        request.headers["Authorization"] = f"Bearer {request.attempt}"

    harness.started(prepare=prepare, reconnect_delay=1.0)
    assert harness.agent.last.header("Authorization") == "Bearer 1"
    harness.agent.last.respond().finish()
    harness.clock.advance(1.0)
    assert harness.agent.last.header("Authorization") == "Bearer 2"
    assert seen == [1, 2]


def test_prepare_hook_may_return_deferred(harness: Harness) -> None:
    """The request waits for a Deferred returned by the prepare hook."""
    token: Deferred[None] = Deferred()

    def prepare(request: RequestAttempt) -> Deferred[None]:
        def set_token(_: object) -> None:
            request.headers["Authorization"] = "Bearer fresh"

        return token.addCallback(set_token)

    harness.started(prepare=prepare)
    assert harness.agent.requests == []
    token.callback(None)
    assert harness.agent.last.header("Authorization") == "Bearer fresh"


def test_prepare_hook_may_return_any_awaitable(harness: Harness) -> None:
    """An awaitable that is neither a Deferred nor a coroutine is awaited too."""
    token: Deferred[None] = Deferred()

    class Later:
        def __await__(self) -> Generator[Any, Any, None]:
            return token.__await__()

    def prepare(request: RequestAttempt) -> Later:
        request.headers["Authorization"] = "Bearer later"
        return Later()

    harness.started(prepare=prepare)
    assert harness.agent.requests == []
    token.callback(None)
    assert harness.agent.last.header("Authorization") == "Bearer later"


def test_prepare_hook_may_be_async(harness: Harness) -> None:
    """A coroutine-function prepare hook is awaited."""

    async def prepare(request: RequestAttempt) -> None:
        request.headers["X-Async"] = "yes"

    harness.started(prepare=prepare)
    assert harness.agent.last.header("X-Async") == "yes"


def test_prepare_hook_failure_is_retried(harness: Harness) -> None:
    """An exception from the prepare hook is reported as is, and the source retries."""

    def prepare(request: RequestAttempt) -> None:
        if request.attempt == 1:
            raise RuntimeError("token service down")

    source = harness.started(prepare=prepare, reconnect_delay=2.0)
    assert isinstance(source.last_error, RuntimeError)
    assert source.ready_state == ReadyState.CONNECTING
    harness.clock.advance(2.0)
    assert len(harness.agent.requests) == 1


# Redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_followed_and_original_url_kept(harness: Harness, status: int) -> None:
    """A redirect is followed; the next reconnection starts from the original URL."""
    source = harness.started(reconnect_delay=1.0)
    harness.agent.last.respond(status, {"Location": "/moved?x=1"})
    assert harness.agent.last.url == "http://example.test/moved?x=1"
    body = harness.agent.last.respond()
    assert source.ready_state == ReadyState.OPEN
    body.finish()
    harness.clock.advance(1.0)
    assert harness.agent.last.url == URL


def test_redirect_303_turns_post_into_get(harness: Harness) -> None:
    """A 303 after a POST is followed with a GET without body; 307 keeps method and body."""
    harness.started(method="POST", body=b"q")
    harness.agent.last.respond(307, {"Location": "http://example.test/a"})
    assert (harness.agent.last.method, harness.agent.last.body) == (b"POST", b"q")
    harness.agent.last.respond(303, {"Location": "http://example.test/b"})
    assert (harness.agent.last.method, harness.agent.last.body) == (b"GET", None)


def test_redirect_elsewhere_drops_credentials(harness: Harness) -> None:
    """A redirect to another origin does not carry the Authorization header."""
    harness.started(headers={"Authorization": "Bearer secret"})
    harness.agent.last.respond(302, {"Location": "http://example.test/same"})
    assert harness.agent.last.header("Authorization") == "Bearer secret"
    harness.agent.last.respond(302, {"Location": "https://other.test/"})
    assert harness.agent.last.header("Authorization") is None


def test_https_to_http_redirect_refused(harness: Harness) -> None:
    """A redirect from https to plain http fails the source with RedirectError by default."""
    source = harness.started("https://example.test/events", headers={"X-Key": "k"})
    got = results(source.next())
    harness.agent.last.respond(302, {"Location": "http://example.test/events"})
    assert source.ready_state == ReadyState.CLOSED
    assert failed_with(got, RedirectError)
    assert "allow_insecure_redirect" in str(source.last_error)
    assert len(harness.agent.requests) == 1


def test_https_to_http_redirect_allowed_on_request(harness: Harness) -> None:
    """allow_insecure_redirect=True follows it, without the credentials (another origin)."""
    source = harness.started(
        "https://example.test/events",
        headers={"Authorization": "Bearer secret"},
        allow_insecure_redirect=True,
    )
    harness.agent.last.respond(302, {"Location": "http://example.test/events"})
    assert harness.agent.last.url == "http://example.test/events"
    assert harness.agent.last.header("Authorization") is None
    harness.agent.last.respond()
    assert source.ready_state == ReadyState.OPEN


def test_sensitive_headers_dropped_across_origins(harness: Harness) -> None:
    """sensitive_headers follow same-origin redirects and are dropped on cross-origin ones."""
    harness.started(
        sensitive_headers=["x-api-key"],
        headers={"X-Api-Key": "k", "Cookie": "c=1", "Proxy-Authorization": "p", "X-Other": "o"},
    )
    harness.agent.last.respond(307, {"Location": "/same-origin"})
    assert harness.agent.last.header("X-Api-Key") == "k"
    harness.agent.last.respond(307, {"Location": "http://example.test:8080/other-port"})
    request = harness.agent.last
    dropped = ("X-Api-Key", "Cookie", "Proxy-Authorization")
    assert [request.header(name) for name in dropped] == [None, None, None]
    assert request.header("X-Other") == "o"


def test_sensitive_headers_must_be_names() -> None:
    """A single string (a common slip) or a non-string name raises TypeError."""
    with pytest.raises(TypeError):
        Harness().source(URL, sensitive_headers="X-Api-Key")
    with pytest.raises(TypeError):
        Harness().source(URL, sensitive_headers=[b"X-Api-Key"])


@pytest.mark.parametrize("headers", [{}, {"Location": ""}, {"Location": "  "}])
def test_redirect_without_location_fails(harness: Harness, headers: dict[str, str]) -> None:
    """A redirect with a missing or empty Location fails the source with RedirectError."""
    source = harness.started()
    got = results(source.next())
    first = harness.agent.last.respond(302, headers)
    assert first.stopped
    assert source.ready_state == ReadyState.CLOSED
    assert isinstance(source.last_error, RedirectError)
    assert failed_with(got, RedirectError)
    assert len(harness.agent.requests) == 1


def test_redirect_limit(harness: Harness) -> None:
    """More redirects than max_redirects fail the source."""
    source = harness.started(max_redirects=3)
    for _ in range(4):
        harness.agent.last.respond(307, {"Location": "/again"})
    assert isinstance(source.last_error, RedirectError)
    assert source.ready_state == ReadyState.CLOSED
    assert len(harness.agent.requests) == 4


# Status policies


@pytest.mark.parametrize("policy", ["resilient", "strict"])
def test_204_stops_for_good(harness: Harness, policy: str) -> None:
    """204 No Content closes the source without reconnecting, under both policies."""
    source = harness.started(policy=policy)
    harness.agent.last.respond(204, {})
    assert source.ready_state == ReadyState.CLOSED
    assert isinstance(source.last_error, NoContent)
    harness.clock.advance(1000)
    assert len(harness.agent.requests) == 1


@pytest.mark.parametrize(
    "content_type",
    ["text/event-stream; charset=utf-8", "Text/Event-Stream", " text/event-stream ;x=y"],
)
def test_content_type_essence(harness: Harness, content_type: str) -> None:
    """The MIME type essence decides; parameters and case do not matter."""
    source = harness.started()
    harness.agent.last.respond(200, {"Content-Type": content_type})
    assert source.ready_state == ReadyState.OPEN


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}])
def test_wrong_content_type_fails(harness: Harness, headers: dict[str, str]) -> None:
    """A 200 that is not text/event-stream fails with ContentTypeError, no retry."""
    source = harness.started()
    harness.agent.last.respond(200, headers)
    assert isinstance(source.last_error, ContentTypeError)
    assert source.ready_state == ReadyState.CLOSED


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_resilient_retries_transient_statuses(harness: Harness, status: int) -> None:
    """The resilient policy retries 5xx, 408 and 429 after the reconnection delay."""
    source = harness.started(reconnect_delay=2.0)
    first = harness.agent.last.respond(status, {})
    assert first.stopped
    assert isinstance(source.last_error, HTTPStatusError)
    assert source.last_error.status == status
    assert source.ready_state == ReadyState.CONNECTING
    harness.clock.advance(1.9)
    assert len(harness.agent.requests) == 1
    harness.clock.advance(0.1)
    assert len(harness.agent.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_resilient_fails_on_client_errors(harness: Harness, status: int) -> None:
    """Other 4xx statuses fail the source with HTTPStatusError."""
    source = harness.started()
    got = results(source.when_open())
    harness.agent.last.respond(status, {})
    assert source.ready_state == ReadyState.CLOSED
    assert failed_with(got, HTTPStatusError)
    assert source.last_error is not None and source.last_error.status == status  # type: ignore[attr-defined]


def test_retry_after_seconds_honoured(harness: Harness) -> None:
    """503 with Retry-After waits at least that long."""
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "reconnect")
    harness.agent.last.respond(503, {"Retry-After": "7"})
    assert seen[0][1].delay == 7.0
    harness.clock.advance(6.9)
    assert len(harness.agent.requests) == 1
    harness.clock.advance(0.1)
    assert len(harness.agent.requests) == 2


def test_retry_after_date_honoured(harness: Harness) -> None:
    """A Retry-After HTTP date is measured from the source's clock."""
    harness.clock.advance(784111767)  # Sun, 06 Nov 1994 08:49:27 GMT
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "reconnect")
    harness.agent.last.respond(429, {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"})
    assert seen[0][1].delay == pytest.approx(10.0)


def test_retry_after_capped_by_max(harness: Harness) -> None:
    """Retry-After is honoured up to max_reconnect_delay."""
    source = harness.started(reconnect_delay=1.0, max_reconnect_delay=20.0)
    seen = harness.record(source, "reconnect")
    harness.agent.last.respond(503, {"Retry-After": "3600"})
    assert seen[0][1].delay == 20.0


@pytest.mark.parametrize("status", [500, 503, 404])
def test_strict_fails_on_any_other_status(harness: Harness, status: int) -> None:
    """The strict policy fails the connection on any status but 200."""
    source = harness.started(policy="strict")
    harness.agent.last.respond(status, {})
    assert source.ready_state == ReadyState.CLOSED
    assert isinstance(source.last_error, HTTPStatusError)


def test_strict_still_retries_network_errors(harness: Harness) -> None:
    """Under the strict policy, like a browser, a network error is retried."""
    source = harness.started(policy="strict", reconnect_delay=1.0)
    harness.agent.last.fail(ConnectionRefusedError())
    assert isinstance(source.last_error, NetworkError)
    assert isinstance(source.last_error.reason, ConnectionRefusedError)
    harness.clock.advance(1.0)
    assert len(harness.agent.requests) == 2


def test_custom_policy(harness: Harness) -> None:
    """A callable policy decides: here a 404 is retried with a floor delay."""
    calls: list[tuple[int, str]] = []

    def policy(status: int, headers: Any, url: str, now: float) -> Decision:
        calls.append((status, url))
        if status == 404:
            return Decision("retry", HTTPStatusError(404, url), retry_after=5.0)
        return Decision("open")

    source = harness.started(policy=policy, reconnect_delay=1.0)
    harness.agent.last.respond(404, {})
    assert source.ready_state == ReadyState.CONNECTING
    harness.clock.advance(5.0)
    harness.agent.last.respond(200, {"Content-Type": "text/plain"})
    assert source.ready_state == ReadyState.OPEN
    assert calls == [(404, URL), (200, URL)]


def test_policy_that_raises_fails_the_source(harness: Harness, logged_errors: list[Any]) -> None:
    """A policy bug is logged and fails the source instead of leaving it hanging."""

    def broken(status: int, headers: Any, url: str, now: float) -> Decision:
        raise KeyError("oops")

    source = harness.started(policy=broken)
    harness.agent.last.respond()
    assert source.ready_state == ReadyState.CLOSED
    assert isinstance(source.last_error, ConnectionFailed)
    assert len(logged_errors) == 1
    logged_errors.clear()


def test_body_factory_failure_is_reported_as_is(harness: Harness) -> None:
    """An exception from the body factory is reported unwrapped and retried."""

    def body() -> bytes:
        raise RuntimeError("cannot build the body")

    source = harness.started(method="POST", body=body)
    assert isinstance(source.last_error, RuntimeError)
    assert source.ready_state == ReadyState.CONNECTING


# Reconnection delay


def open_then_end(harness: Harness, after: float = 0.0) -> None:
    """Answer the last request with a stream, keep it open ``after`` seconds, end it."""
    body = harness.agent.last.respond()
    harness.clock.advance(after)
    body.finish()


def test_reconnection_delays_grow_and_reset(harness: Harness) -> None:
    """Consecutive failures double the delay up to the maximum; a long healthy stream resets it."""
    source = harness.started(reconnect_delay=1.0, max_reconnect_delay=5.0)
    seen = harness.record(source, "reconnect")
    delays = []
    for _ in range(5):
        harness.agent.last.fail(ConnectionRefusedError())
        delays.append(seen[-1][1].delay)
        harness.clock.advance(seen[-1][1].delay)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [r.attempt for _, r in seen] == [1, 2, 3, 4, 5]
    open_then_end(harness, after=60.0)
    assert seen[-1][1] == Reconnect(1, 1.0, seen[-1][1].reason)
    assert isinstance(seen[-1][1].reason, StreamEnded)


def test_short_lived_streams_keep_growing(harness: Harness) -> None:
    """A stream that ends before reset_backoff_after does not reset the growth."""
    source = harness.started(reconnect_delay=1.0, max_reconnect_delay=30.0)
    seen = harness.record(source, "reconnect")
    for _ in range(3):
        open_then_end(harness, after=1.0)
        harness.clock.advance(seen[-1][1].delay)
    assert [r.delay for _, r in seen] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("how", ["reconnect_delay=0", "retry: 0"])
def test_zero_reconnection_time_still_backs_off(harness: Harness, how: str) -> None:
    """With a reconnection time of 0, failures still wait, growing from the floor."""
    source = harness.started(reconnect_delay=0.0 if how == "reconnect_delay=0" else 3.0)
    seen = harness.record(source, "reconnect")
    if how == "retry: 0":
        body = harness.agent.last.respond()
        body.write(b"retry: 0\n\n")
        body.finish()  # opened and ended without an event: a failure
        harness.clock.advance(seen[-1][1].delay)
    for _ in range(6):
        harness.agent.last.fail(ConnectionRefusedError())
        harness.clock.advance(seen[-1][1].delay)
    assert [r.delay for _, r in seen][:6] == [FAILURE_FLOOR * 2**n for n in range(6)]


def test_retry_zero_after_events_reconnects_at_once(harness: Harness) -> None:
    """retry: 0 is honoured after a healthy stream: the next reconnection waits nothing."""
    source = harness.started()
    seen = harness.record(source, "reconnect")
    body = harness.agent.last.respond()
    body.write(b"retry: 0\ndata: x\n\n")
    body.finish()
    assert seen[-1][1].delay == 0.0
    harness.clock.advance(0)
    assert len(harness.agent.requests) == 2


def test_jitter_only_lengthens_the_server_retry(harness: Harness) -> None:
    """Jitter never shortens retry: 1500; it adds up to jitter * 1.5 s."""
    for draw, expected in ((0.0, 1.5), (0.5, 1.65), (0.999, 1.5 + 0.3 * 0.999)):
        source = harness.started(jitter=0.2, random=lambda draw=draw: draw)
        seen = harness.record(source, "reconnect")
        body = harness.agent.last.respond()
        body.write(b"retry: 1500\ndata: x\n\n")
        body.finish()
        assert seen[0][1].delay == pytest.approx(expected)
        source.close()


def test_streams_that_delivered_events_do_not_grow_the_delay(harness: Harness) -> None:
    """A server that ends healthy streams on purpose (after some events) keeps the base delay."""
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "reconnect")
    for _ in range(4):
        body = harness.agent.last.respond()
        body.write(b"data: a\n\n" * 300)
        body.finish()
        harness.clock.advance(seen[-1][1].delay)
    assert [(r.attempt, r.delay) for _, r in seen] == [(1, 1.0)] * 4


def test_failures_after_a_healthy_stream_grow_again(harness: Harness) -> None:
    """After a healthy stream, failed attempts grow the delay again from the base."""
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "reconnect")
    body = harness.agent.last.respond()
    body.write(b"data: a\n\n")
    body.finish()
    for _ in range(3):
        harness.clock.advance(seen[-1][1].delay)
        harness.agent.last.fail(ConnectionRefusedError())
    assert [(r.attempt, r.delay) for _, r in seen] == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 4.0)]


def test_server_retry_sets_base(harness: Harness) -> None:
    """The server's retry: replaces the base delay of the next reconnection."""
    source = harness.started(reconnect_delay=3.0)
    seen = harness.record(source, "reconnect", "retry")
    body = harness.agent.last.respond()
    body.write(b"retry: 500\n\n")
    assert source.reconnect_delay == 0.5
    body.finish()
    assert seen == [("retry", 0.5), ("reconnect", Reconnect(1, 0.5, seen[1][1].reason))]
    harness.clock.advance(0.5)
    assert len(harness.agent.requests) == 2


def test_invalid_retry_ignored(harness: Harness) -> None:
    """A retry: that is not all digits leaves the delay alone."""
    source = harness.started(reconnect_delay=3.0)
    harness.agent.last.respond().write(b"retry: -5\nretry: 1.5\nretry: 7s\n\n")
    assert source.reconnect_delay == 3.0


def test_huge_server_retry_capped(harness: Harness) -> None:
    """A huge retry: cannot park the client beyond max_reconnect_delay."""
    source = harness.started(reconnect_delay=1.0, max_reconnect_delay=30.0)
    seen = harness.record(source, "reconnect")
    body = harness.agent.last.respond()
    body.write(b"retry: 999999999999\n\n")
    body.finish()
    assert seen[0][1].delay == 30.0


def test_jitter_stays_within_bounds(harness: Harness) -> None:
    """With the default jitter a reconnection waits the delay plus at most 20 %."""
    draws = iter([0.0, 0.25, 0.5, 0.75, 0.999])
    for _ in range(5):
        source = harness.started(reconnect_delay=4.0, jitter=0.2, random=lambda: next(draws))
        seen = harness.record(source, "reconnect")
        open_then_end(harness)
        assert 4.0 <= seen[0][1].delay < 4.8
        source.close()


def test_reconnection_is_logged(harness: Harness) -> None:
    """Every scheduled reconnection is logged with url, attempt and delay fields."""
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        harness.started(reconnect_delay=2.0)
        harness.agent.last.fail(ConnectionRefusedError())
    finally:
        globalLogPublisher.removeObserver(events.append)
    logged = [e for e in events if "attempt" in e and "delay" in e]
    assert logged and logged[0]["url"] == URL and logged[0]["delay"] == 2.0


# Timers


def test_connect_timeout(harness: Harness) -> None:
    """No response headers within connect_timeout cancels the request and reconnects."""
    source = harness.started(connect_timeout=5.0, reconnect_delay=1.0)
    harness.clock.advance(5.0)
    assert harness.agent.requests[0].cancelled
    assert isinstance(source.last_error, ConnectTimeout)
    harness.clock.advance(1.0)
    assert len(harness.agent.requests) == 2


def test_connect_timeout_covers_the_prepare_hook(harness: Harness) -> None:
    """A prepare hook that never finishes is cut by connect_timeout too."""
    source = harness.started(prepare=lambda request: Deferred(), connect_timeout=5.0)
    harness.clock.advance(5.0)
    assert isinstance(source.last_error, ConnectTimeout)


def test_idle_timeout_drops_and_reconnects(harness: Harness) -> None:
    """No bytes for idle_timeout drops the connection and reconnects with the last id."""
    source = harness.started(idle_timeout=10.0, reconnect_delay=1.0)
    body = harness.agent.last.respond()
    body.write(b"id: 4\ndata: x\n\n")
    harness.clock.advance(6.0)
    body.write(b": keep-alive\n")
    harness.clock.advance(6.0)
    assert source.ready_state == ReadyState.OPEN
    harness.clock.advance(4.0)
    assert body.stopped
    assert isinstance(source.last_error, IdleTimeout)
    harness.clock.advance(1.0)
    assert harness.agent.last.header("Last-Event-ID") == "4"


def test_no_idle_timeout_while_paused(harness: Harness) -> None:
    """While back-pressure pauses the transport, the idle timeout does not fire."""
    source = harness.started(idle_timeout=10.0, queue_size=1)
    body = harness.agent.last.respond()
    body.write(b"data: 1\n\n")
    assert body.paused
    harness.clock.advance(100.0)
    assert source.ready_state == ReadyState.OPEN
    assert results(source.next()) == [Event("1")]
    assert not body.paused
    harness.clock.advance(10.0)
    assert isinstance(source.last_error, IdleTimeout)


def test_no_timer_left_after_close_in_every_state(harness: Harness) -> None:
    """close() in CONNECTING, OPEN and waiting leaves no delayed call behind."""
    source = harness.started(reconnect_delay=1.0)
    source.close()
    assert harness.clock.getDelayedCalls() == []
    source.startService()
    harness.agent.last.respond()
    source.close()
    assert harness.clock.getDelayedCalls() == []
    source.startService()
    harness.agent.last.fail(ConnectionRefusedError())
    assert len(harness.clock.getDelayedCalls()) == 1
    source.close()
    assert harness.clock.getDelayedCalls() == []


# Last event ID


def test_last_event_id_kept_and_seeds_parser(harness: Harness) -> None:
    """The last event ID survives a reconnection, and events without id carry it."""
    source = harness.started(reconnect_delay=1.0)
    body = harness.agent.last.respond()
    body.write(b"id: 1\ndata: a\n\n")
    body.drop()
    assert isinstance(source.last_error, NetworkError)
    harness.clock.advance(1.0)
    assert harness.agent.last.header("Last-Event-ID") == "1"
    first, second = results(source.next()), results(source.next())
    harness.agent.last.respond().write(b"data: b\n\n")
    assert first + second == [Event("a", id="1"), Event("b", id="1")]
    assert source.last_event_id == "1"


def test_empty_id_clears_last_event_id(harness: Harness) -> None:
    """An id: with an empty value clears the last event ID; the next request has none."""
    source = harness.started(last_event_id="9", reconnect_delay=1.0)
    body = harness.agent.last.respond()
    body.write(b"id\ndata: x\n\n")
    assert source.last_event_id == ""
    body.finish()
    harness.clock.advance(1.0)
    assert harness.agent.last.header("Last-Event-ID") is None


def test_parse_error_delivers_then_reconnects(harness: Harness) -> None:
    """On a line too long, completed events come first, then a reconnection from their id."""
    source = harness.started(reconnect_delay=1.0, max_line_length=32)
    body = harness.agent.last.respond()
    body.write(b"id: 5\ndata: ok\n\ndata: " + b"x" * 64 + b"\n\n")
    assert body.stopped
    assert isinstance(source.last_error, LineTooLong)
    assert results(source.next()) == [Event("ok", id="5")]
    harness.clock.advance(1.0)
    assert harness.agent.last.header("Last-Event-ID") == "5"


# Delivery


def test_async_for_ends_on_close(harness: Harness) -> None:
    """Iterating with async for yields events in order, and ends when the source closes."""
    source = harness.started()
    seen: list[str] = []

    async def consume() -> None:
        async for event in source:
            seen.append(event.data)

    done = results(ensureDeferred(consume()))
    body = harness.agent.last.respond()
    body.write(b"data: 1\n\ndata: 2\n\n")
    source.close()
    assert seen == ["1", "2"]
    assert done == [None]


def test_async_for_raises_failure(harness: Harness) -> None:
    """Iterating with async for raises the error that failed the source for good."""
    source = harness.started()

    async def consume() -> None:
        async for _ in source:
            pass

    done = results(ensureDeferred(consume()))
    harness.agent.last.respond(404, {})
    assert failed_with(done, HTTPStatusError)


def test_queue_exposed(harness: Harness) -> None:
    """The DeferredQueue behind next() is exposed as .queue."""
    source = harness.started()
    harness.agent.last.respond().write(b"data: q\n\n")
    assert results(source.queue.get()) == [Event("q")]


def test_listeners_per_type_including_error(harness: Harness) -> None:
    """add_listener delivers by event type, including a type literally named error."""
    source = harness.started()
    got: list[tuple[str, str]] = []
    source.add_listener("error", lambda e: got.append(("error", e.data)))
    source.add_listener("message", lambda e: got.append(("message", e.data)))
    listener = lambda e: got.append(("update", e.data))  # noqa: E731
    source.add_listener("update", listener)
    body = harness.agent.last.respond()
    body.write(b"event: error\ndata: e\n\ndata: m\n\nevent: update\ndata: u\n\n")
    source.remove_listener("update", listener)
    body.write(b"event: update\ndata: u2\n\n")
    assert got == [("error", "e"), ("message", "m"), ("update", "u")]
    assert source.last_error is None


def test_listener_exception_logged_delivery_goes_on(
    harness: Harness, logged_errors: list[Any]
) -> None:
    """A listener that raises is logged; later events and listeners still run."""
    source = harness.started()
    got: list[str] = []

    def bad(event: Event) -> None:
        raise ValueError("bug")

    source.add_listener("message", bad)
    source.add_listener("message", lambda e: got.append(e.data))
    harness.agent.last.respond().write(b"data: 1\n\ndata: 2\n\n")
    assert got == ["1", "2"]
    assert len(logged_errors) == 2
    logged_errors.clear()


def test_signals_state_open_comment_error(harness: Harness) -> None:
    """on() reports state changes, the opening response, comments and errors in order."""
    source = harness.source(reconnect_delay=1.0)
    seen = harness.record(source, "state", "open", "comment", "error")
    source.startService()
    body = harness.agent.last.respond(200, {"Content-Type": "text/event-stream", "X-Id": "7"})
    body.write(b": hello\n\n")
    body.drop()
    names = [name for name, _ in seen]
    assert names == ["state", "state", "open", "comment", "state", "error"]
    assert [v for n, v in seen if n == "state"] == [
        ReadyState.CONNECTING,
        ReadyState.OPEN,
        ReadyState.CONNECTING,
    ]
    opened = next(v for n, v in seen if n == "open")
    assert isinstance(opened, Opened) and opened.status == 200
    assert opened.headers.getRawHeaders(b"x-id") == [b"7"]
    assert next(v for n, v in seen if n == "comment") == Comment(" hello")
    with pytest.raises(ValueError):
        source.on("bogus", print)  # type: ignore[arg-type]


def test_repr_names_url_and_state(harness: Harness) -> None:
    """The repr shows the URL and the ready state."""
    source = harness.started()
    assert repr(source) == f"<EventSource {URL} CONNECTING>"


def test_ready_state_changes_before_error_is_announced(harness: Harness) -> None:
    """As in a browser, error observers already see CONNECTING (or CLOSED when failed)."""
    source = harness.started(reconnect_delay=1.0)
    states: list[ReadyState] = []
    source.on("error", lambda error: states.append(source.ready_state))
    harness.agent.last.respond().finish()
    harness.clock.advance(1.0)
    harness.agent.last.respond(404, {})
    assert states == [ReadyState.CONNECTING, ReadyState.CLOSED]


def test_close_from_state_observer_cancels_reconnection(harness: Harness) -> None:
    """Closing from a state observer during a reconnection leaves nothing scheduled."""
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "reconnect")
    source.on("state", lambda state: state == ReadyState.CONNECTING and source.close())
    harness.agent.last.respond().finish()
    assert seen == []
    assert source.ready_state == ReadyState.CLOSED
    assert harness.clock.getDelayedCalls() == []


def test_when_open(harness: Harness) -> None:
    """when_open() fires once the stream opens, at once if it already is."""
    source = harness.started()
    got = results(source.when_open())
    assert got == []
    harness.agent.last.respond()
    assert isinstance(got[0], Opened) and got[0].url == URL
    assert isinstance(results(source.when_open())[0], Opened)
    source.close()
    assert failed_with(results(source.when_open()), StreamClosed)


def test_when_open_fail_on_error(harness: Harness) -> None:
    """when_open(fail_on_error=True) fails with the first error; the source goes on retrying."""
    source = harness.started(reconnect_delay=1.0)
    patient = results(source.when_open())
    eager = results(source.when_open(fail_on_error=True))
    harness.agent.last.fail(ConnectionRefusedError())
    assert failed_with(eager, NetworkError)
    assert isinstance(eager[0].value.reason, ConnectionRefusedError)
    assert patient == []
    harness.clock.advance(1.0)
    late = results(source.when_open(fail_on_error=True))
    body = harness.agent.last.respond()
    assert isinstance(patient[0], Opened) and isinstance(late[0], Opened)
    errors = harness.record(source, "error")
    body.finish()  # a later error reaches no when_open() any more (none is called twice)
    assert [name for name, _ in errors] == ["error"]


def test_next_before_start_waits(harness: Harness) -> None:
    """next() called before the source starts waits for the first event."""
    source = harness.source()
    got = results(source.next())
    source.startService()
    harness.agent.last.respond().write(b"data: early\n\n")
    assert got == [Event("early")]


def test_cancelled_next_loses_nothing(harness: Harness) -> None:
    """Cancelling a pending next() does not swallow the following event."""
    source = harness.started()
    waiting = source.next()
    waiting.cancel()
    waiting.addErrback(lambda f: None)
    harness.agent.last.respond().write(b"data: kept\n\n")
    assert results(source.next()) == [Event("kept")]


# Back-pressure


def filled(harness: Harness, queue_size: int, count: int) -> tuple[EventSource, Any]:
    """A source with ``queue_size`` whose body received events 0 to ``count - 1``, one per read."""
    source = harness.started(queue_size=queue_size)
    body = harness.agent.last.respond()
    for n in range(count):
        body.write(b"data: %d\n\n" % n)
    return source, body


def test_back_pressure_pauses_and_resumes(harness: Harness) -> None:
    """With queue_size, a full queue pauses the body; consuming to half resumes it; none lost."""
    source, body = filled(harness, 4, 10)
    assert body.paused
    assert len(source.queue.pending) == 4
    got: list[Any] = []
    for _ in range(2):
        got += results(source.next())
    assert not body.paused or len(source.queue.pending) >= 4
    while len(got) < 10:
        got += results(source.next())
    assert [e.data for e in got] == [str(n) for n in range(10)]
    assert body.pauses >= 2


def test_queue_off_listeners_only(harness: Harness) -> None:
    """queue_size=0 turns the queue off: listeners get events, next() refuses."""
    source = harness.started(queue_size=0)
    got: list[str] = []
    source.add_listener("message", lambda e: got.append(e.data))
    harness.agent.last.respond().write(b"data: 1\n\n" * 100)
    assert len(got) == 100
    assert len(source.queue.pending) == 0
    assert failed_with(results(source.next()), ValueError)


def test_next_batch_takes_everything_queued(harness: Harness) -> None:
    """next_batch() fires with every queued event in one list; max_events caps it."""
    source = harness.started()
    harness.agent.last.respond().write(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")
    assert results(source.next_batch(max_events=2)) == [[Event("1"), Event("2")]]
    assert results(source.next_batch()) == [[Event("3")]]
    assert len(source.queue.pending) == 0
    with pytest.raises(ValueError, match="max_events"):
        source.next_batch(max_events=0)


def test_next_batch_waits_for_a_whole_read(harness: Harness) -> None:
    """With nothing queued, next_batch() fires with all the events of the next read."""
    source = harness.started()
    body = harness.agent.last.respond()
    batch = results(source.next_batch())
    assert batch == []
    body.write(b"data: 1\n\ndata: 2\n\n")
    assert batch == [[Event("1"), Event("2")]]
    source.close()
    assert failed_with(results(source.next_batch()), StreamClosed)


def test_next_batch_resumes_a_paused_body(harness: Harness) -> None:
    """Taking a batch out of a full queue resumes reading (back-pressure)."""
    source, body = filled(harness, 4, 6)
    assert body.paused
    [first] = results(source.next_batch())
    assert not body.paused
    [second] = results(source.next_batch())
    assert [e.data for e in first + second] == [str(n) for n in range(6)]


def test_async_for_takes_queued_events_without_deferreds(harness: Harness) -> None:
    """__anext__ returns a bare awaitable for a queued event, a Deferred only to wait."""
    source = harness.started()
    assert isinstance(source.__anext__(), Deferred)  # nothing queued: it waits
    harness.agent.last.respond().write(b"data: 1\n\ndata: 2\n\n")
    ready = source.__anext__()
    assert not isinstance(ready, Deferred)
    assert results(ensureDeferred(_awaited(ready))) == [Event("2")]


async def _awaited(awaitable: Any) -> Any:
    """Await ``awaitable`` and return its value."""
    return await awaitable


# Closing, restarting


def test_close_fails_pending_next(harness: Harness) -> None:
    """close() fails a pending next() with StreamClosed and aborts the body."""
    source = harness.started()
    body = harness.agent.last.respond()
    got = results(source.next())
    source.close()
    assert failed_with(got, StreamClosed)
    assert body.stopped
    assert source.ready_state == ReadyState.CLOSED
    assert failed_with(results(source.next()), StreamClosed)


def test_close_is_idempotent_and_aborts_request(harness: Harness) -> None:
    """close() while connecting cancels the request; calling it twice is harmless."""
    source = harness.started()
    assert results(source.close()) == [None]
    assert harness.agent.last.cancelled
    assert results(source.close()) == [None]
    assert source.ready_state == ReadyState.CLOSED
    assert source.last_error is None


def test_close_cancels_pending_reconnection(harness: Harness) -> None:
    """close() while waiting to reconnect cancels the reconnection."""
    source = harness.started(reconnect_delay=1.0)
    harness.agent.last.fail(ConnectionRefusedError())
    source.close()
    harness.clock.advance(100)
    assert len(harness.agent.requests) == 1


def test_close_drops_queue_without_drain(harness: Harness) -> None:
    """close() without drain drops queued events."""
    source = harness.started()
    harness.agent.last.respond().write(b"data: 1\n\n")
    source.close()
    assert failed_with(results(source.next()), StreamClosed)


def test_close_with_drain(harness: Harness) -> None:
    """close(drain=s) keeps queued events readable, then fires when the queue is empty."""
    source = harness.started()
    harness.agent.last.respond().write(b"data: 1\n\ndata: 2\n\n")
    closed = results(source.close(drain=5.0))
    assert closed == []
    assert results(source.next()) == [Event("1")]
    assert results(source.next()) == [Event("2")]
    assert closed == [None]
    assert failed_with(results(source.next()), StreamClosed)


def test_close_drain_times_out(harness: Harness) -> None:
    """close(drain=s) drops what is left after s seconds."""
    source = harness.started()
    harness.agent.last.respond().write(b"data: 1\n\ndata: 2\n\n")
    closed = results(source.close(drain=5.0))
    assert results(source.next()) == [Event("1")]
    harness.clock.advance(5.0)
    assert closed == [None]
    assert failed_with(results(source.next()), StreamClosed)


def test_close_from_listener_stops_delivery(harness: Harness) -> None:
    """Closing from a listener delivers nothing more, even from the same chunk."""
    source = harness.started()
    got: list[str] = []

    def listener(event: Event) -> None:
        got.append(event.data)
        source.close()

    source.add_listener("message", listener)
    harness.agent.last.respond().write(b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
    assert got == ["a"]
    assert source.last_event_id == "1"


def test_restart_reconnects_at_once_without_error(harness: Harness) -> None:
    """restart() drops the connection and reconnects immediately, reporting no error."""
    source = harness.started(reconnect_delay=1.0)
    seen = harness.record(source, "error", "reconnect")
    body = harness.agent.last.respond()
    body.write(b"id: 3\ndata: x\n\n")
    source.restart()
    assert body.stopped
    assert len(harness.agent.requests) == 2
    assert harness.agent.last.header("Last-Event-ID") == "3"
    assert seen == [] and source.last_error is None
    harness.agent.last.fail(ConnectionRefusedError())
    [pending] = harness.clock.getDelayedCalls()  # the scheduled reconnection
    source.restart()
    assert len(harness.agent.requests) == 3
    assert not pending.active()
    assert len(harness.clock.getDelayedCalls()) == 1  # only the new connect timeout


def test_start_after_close_keeps_last_event_id(harness: Harness) -> None:
    """Starting a closed source opens a fresh stream that sends the last event ID."""
    source = harness.started()
    harness.agent.last.respond().write(b"id: 42\ndata: x\n\n")
    source.close()
    source.startService()
    assert source.ready_state == ReadyState.CONNECTING
    assert harness.agent.last.header("Last-Event-ID") == "42"
    harness.agent.last.respond().write(b"data: y\n\n")
    assert results(source.next()) == [Event("y", id="42")]


def test_close_after_failure_ends_like_a_close(harness: Harness) -> None:
    """Closing a failed source makes next() fail with StreamClosed; last_error keeps the cause."""
    source = harness.started()
    harness.agent.last.respond(404, {})
    assert failed_with(results(source.next()), HTTPStatusError)
    source.close()
    assert failed_with(results(source.next()), StreamClosed)
    assert isinstance(source.last_error, HTTPStatusError)


def test_start_after_failure_restarts(harness: Harness) -> None:
    """A source that failed for good can be started again."""
    source = harness.started()
    harness.agent.last.respond(404, {})
    assert isinstance(source.last_error, ConnectionFailed)
    source.restart()
    assert len(harness.agent.requests) == 2
    assert source.ready_state == ReadyState.CONNECTING


def test_inside_multiservice(harness: Harness) -> None:
    """The source starts and stops with a MultiService parent."""
    parent = MultiService()
    source = harness.source()
    source.setServiceParent(parent)
    parent.startService()
    assert source.running and len(harness.agent.requests) == 1
    stopped = results(parent.stopService())
    assert len(stopped) == 1 and not isinstance(stopped[0], Failure)
    assert not source.running
    assert source.ready_state == ReadyState.CLOSED


# Delivery: once per network read


def test_waiting_consumer_is_woken_once_per_turn(harness: Harness) -> None:
    """Events reach a waiting next() once per read (Agent path: on the next turn), in order."""
    source = harness.started()
    body = harness.agent.last.respond()
    first = results(source.next())
    body.protocol.dataReceived(b"data: 1\n\ndata: 2\n\n")
    if harness.http11:  # txsse's HTTP client: parsed and delivered during the read
        assert first == [Event("1")]
    body.protocol.dataReceived(b"data: 3\n\n")
    if not harness.http11:  # the Agent path: nothing runs inside the network read
        assert first == []
    harness.clock.advance(0)
    assert first == [Event("1")]
    assert results(source.next()) == [Event("2")]
    assert results(source.next()) == [Event("3")]


def test_error_signal_comes_after_the_events_before_it(harness: Harness) -> None:
    """When the body ends in the same read as its last events, they are delivered first."""
    source = harness.started()
    seen: list[Any] = []
    source.on("error", lambda error: seen.append(type(error)))
    body = harness.agent.last.respond()
    waiting = source.next()
    waiting.addCallback(seen.append)
    body.protocol.dataReceived(b"data: last\n\n")
    body.finish()
    assert seen == [Event("last"), StreamEnded]


# Callbacks run outside the state machine


def test_close_from_prepare_hook_leaves_nothing_behind(harness: Harness) -> None:
    """close() from inside the prepare hook cancels the attempt it interrupted, timers included."""
    sources: list[Any] = []
    source = harness.started(prepare=lambda request: sources[0].close())
    sources.append(source)
    source.restart()  # the first attempt ran before the hook could see the source
    assert source.ready_state == ReadyState.CLOSED
    assert all(request.cancelled for request in harness.agent.requests[1:])
    assert harness.clock.getDelayedCalls() == []


def test_restart_from_open_waiter_reconnects_once(harness: Harness) -> None:
    """A when_open() callback that restarts the source gets exactly one new attempt."""
    source = harness.started()
    source.when_open().addCallback(lambda opened: source.restart())
    first = harness.agent.last.respond()
    assert first.stopped
    assert len(harness.agent.requests) == 2
    assert source.ready_state == ReadyState.CONNECTING


def test_callbacks_see_events_states_and_errors_in_order(harness: Harness) -> None:
    """Listeners, readers and signals are told in the order things happened."""
    source = harness.started()
    seen: list[Any] = []
    source.add_listener("message", lambda event: seen.append(("listener", event.data)))
    source.on("state", lambda state: seen.append(("state", state.name)))
    source.on("error", lambda error: seen.append(("error", type(error).__name__)))
    source.next().addCallback(lambda event: seen.append(("next", event.data)))
    body = harness.agent.last.respond()
    body.protocol.dataReceived(b"data: a\n\ndata: b\n\n")
    body.finish()
    assert seen == [
        ("state", "OPEN"),
        ("listener", "a"),
        ("listener", "b"),
        ("next", "a"),
        ("state", "CONNECTING"),
        ("error", "StreamEnded"),
    ]


def test_queue_has_the_deferred_queue_interface(harness: Harness) -> None:
    """source.queue: get() waits and is woken in order; put() queues for readers; no size."""
    source = harness.started()
    queue = source.queue
    assert queue.size is None and queue.backlog is None
    first, second = results(queue.get()), results(queue.get())
    assert len(queue.waiting) == 2
    queue.put(Event("mine"))
    body = harness.agent.last.respond()
    body.write(b"data: theirs\n\n")
    assert (first, second) == ([Event("mine")], [Event("theirs")])
    assert not queue.pending and not queue.waiting

    async def consume() -> Event:
        return await source.queue.get()

    got = results(ensureDeferred(consume()))
    body.write(b"data: awaited\n\n")
    assert got == [Event("awaited")]
