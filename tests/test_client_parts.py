"""The client's small parts: URL and header checks, redirects, Retry-After, TLS options."""

from __future__ import annotations

import pytest
from twisted.web.http_headers import Headers

from txsse import pin_certificate, resilient_policy, strict_policy, trust_certificate
from txsse._validate import check_url
from txsse.client._policy import mime_essence, resolve_policy, retry_after
from txsse.client._request import RequestAttempt, build_attempt, redirected
from txsse.errors import RedirectError


def headers(**values: str) -> Headers:
    """Headers from keyword arguments (underscores become dashes)."""
    result = Headers()
    for name, value in values.items():
        result.addRawHeader(name.replace("_", "-").encode(), value.encode())
    return result


@pytest.mark.parametrize(
    "url",
    ["http://h/", "https://h:8443/a?b=c", "http://127.0.0.1:80/x", "http://[::1]:9/"],
)
def test_good_urls(url: str) -> None:
    """Absolute http(s) URLs are accepted."""
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/relative",
        "ws://h/",
        "http:///nohost",
        "http://h:port/",
        "http://h/a b",
        "http://h/\u00e9",
    ],
)
def test_bad_urls(url: str) -> None:
    """Anything else raises ValueError with the URL in the message."""
    with pytest.raises(ValueError, match="URL"):
        check_url(url)


def test_build_attempt_calls_body_factory() -> None:
    """A body factory is called for each attempt."""
    attempt = build_attempt("http://h/", "POST", {}, lambda: b"x", "", 3)
    assert (attempt.body, attempt.attempt) == (b"x", 3)


def test_redirect_resolves_relative_location() -> None:
    """A relative Location resolves against the redirected URL."""
    request = RequestAttempt("http://h/a/b", "GET")
    assert redirected(request, 302, "c").url == "http://h/a/c"
    assert redirected(request, 302, "//other/x").url == "http://other/x"


def test_redirect_to_other_scheme_rejected() -> None:
    """A Location that is not http(s) is a RedirectError."""
    with pytest.raises(RedirectError):
        redirected(RequestAttempt("http://h/", "GET"), 302, "ftp://h/file")


def test_mime_essence() -> None:
    """Parameters and case are ignored; a longer type is another type."""
    assert mime_essence("Text/Event-Stream ; charset=UTF-8") == "text/event-stream"
    assert mime_essence("text/event-stream;") == "text/event-stream"
    assert mime_essence("text/event-stream-foo") != "text/event-stream"
    stream = headers(content_type="text/event-stream;charset=bogus")
    assert resilient_policy(200, stream, "u", 0).action == "open"
    assert strict_policy(200, headers(content_type="text/event-streams"), "u", 0).action == "fail"


def test_retry_after_parsing() -> None:
    """Retry-After accepts delta-seconds and HTTP dates; junk is ignored."""
    assert retry_after(headers(retry_after="120"), 0.0) == 120.0
    assert retry_after(headers(retry_after="Sun, 06 Nov 1994 08:49:37 GMT"), 784111767.0) == 10.0
    assert retry_after(headers(retry_after="Sun, 06 Nov 1994 08:49:37 GMT"), 784111787.0) == 0.0
    assert retry_after(headers(retry_after="-5"), 0.0) is None
    assert retry_after(headers(retry_after="soon"), 0.0) is None
    assert retry_after(headers(), 0.0) is None


def test_builtin_policies() -> None:
    """The two built-in policies differ only on retryable statuses."""
    assert resolve_policy("strict") is strict_policy
    assert resolve_policy("resilient") is resilient_policy
    assert strict_policy(503, headers(), "u", 0).action == "fail"
    decision = resilient_policy(503, headers(retry_after="3"), "u", 0)
    assert (decision.action, decision.retry_after) == ("retry", 3.0)
    assert resilient_policy(404, headers(), "u", 0).action == "fail"
    assert resilient_policy(200, headers(content_type="text/event-stream"), "u", 0).action == "open"


def test_pin_certificate_rejects_malformed_fingerprints() -> None:
    """A fingerprint that is not 64 hex digits raises a ValueError naming the fix."""
    with pytest.raises(ValueError, match="openssl x509"):
        pin_certificate("ab:cd")
    with pytest.raises(ValueError):
        pin_certificate()


def test_trust_certificate_rejects_garbage() -> None:
    """A PEM that does not load raises ValueError."""
    with pytest.raises(ValueError):
        trust_certificate(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_default_agent_is_txsse_http11_client() -> None:
    """The default agent is txsse's own HTTP/1.1 client, with browser-like TLS verification."""
    from twisted.internet import reactor
    from twisted.web.client import BrowserLikePolicyForHTTPS

    from txsse.client._http11 import HTTP11StreamAgent
    from txsse.client._wire import make_agent

    agent = make_agent(reactor)
    assert isinstance(agent, HTTP11StreamAgent)
    assert isinstance(agent._tls, BrowserLikePolicyForHTTPS)


def test_twisted_agent_never_pools_connections() -> None:
    """The Agent-path helper uses a non-persistent pool and browser-like TLS verification."""
    from twisted.internet import reactor
    from twisted.web.client import BrowserLikePolicyForHTTPS

    from txsse.client._wire import twisted_agent

    agent = twisted_agent(reactor)
    assert agent._pool.persistent is False
    assert isinstance(agent._endpointFactory._policyForHTTPS, BrowserLikePolicyForHTTPS)


def test_client_public_names() -> None:
    """The client's public names are exported from the package root."""
    import txsse

    for name in (
        "Decision",
        "EventSource",
        "EventStreamProtocol",
        "Opened",
        "ReadyState",
        "Reconnect",
        "RequestAttempt",
        "StatusPolicy",
        "pin_certificate",
        "resilient_policy",
        "strict_policy",
        "trust_certificate",
    ):
        assert name in txsse.__all__, name
