"""The hub's connection-level defences, on real loopback sockets: early refusals, per-IP limits."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.helpers.hub import HubProcess, RawClient, publish
from tests.helpers.reading import Stream
from tests.helpers.system import TWISTD, free_port
from tests.helpers.waiting import until
from txsse.hub._resource import Hub
from txsse.server import MemoryChannel


def post_head(length: int, *, token: str | None = None, expect: bool = False) -> bytes:
    """The head of a publish whose body is ``length`` bytes; no body."""
    lines = [b"POST /topics/t?event=x HTTP/1.1", b"Host: 127.0.0.1", b"Content-Length: %d" % length]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode())
    if expect:
        lines.append(b"Expect: 100-continue")
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize("expect", [False, True])
@pytest.mark.parametrize(
    ("token", "length", "status"),
    [(None, 10, 401), ("wrong", 10, 401), ("secret", 1_000_000, 413)],
)
@pytest_twisted.ensureDeferred
async def test_a_refused_publish_is_answered_before_its_body(
    serve: Any, token: str | None, length: int, status: int, expect: bool
) -> None:
    """No token, a wrong one, or too large a Content-Length: answered from the headers alone."""
    hub = serve(max_event_size=100)
    client = await hub.connect(post_head(length, token=token, expect=expect))
    await until(lambda: b"\r\n\r\n" in client.received, what="an answer without the body")
    assert client.status == status
    assert b"connection: close" in client.head.lower()
    assert b"100 Continue" not in client.received
    if expect:  # nothing more can come: the connection is closed at once
        await until(lambda: client.closed.called, what="the connection to close")
    else:  # the body may be on its way: it is read, dropped, then the connection closes
        client.send(b"x" * length)
        await until(lambda: client.closed.called, what="the connection to close")
        assert client.received.count(b"HTTP/1.1") == 1
    assert hub.hub.router.channel_count == 0  # nothing was published


@pytest_twisted.ensureDeferred
async def test_an_accepted_publish_with_expect_continue_gets_100_then_200(serve: Any) -> None:
    """A valid publish that asks for 100 Continue gets it, sends its body and is published."""
    hub = serve()
    client = await hub.connect(post_head(5, token="secret", expect=True))
    await until(lambda: b"100 Continue" in client.received, what="100 Continue")
    client.send(b"hello")
    await until(lambda: b"\r\n\r\n" in client.received.partition(b"\r\n\r\n")[2])
    assert client.status == 200
    assert hub.hub.router.channel("t").last_id is not None


@pytest_twisted.ensureDeferred
async def test_connections_per_ip_are_limited(serve: Any) -> None:
    """Past max_connections_per_ip a connection gets 503 and is closed; a freed place is reused."""
    hub = serve(max_connections_per_ip=2)
    first = await Stream(f"{hub.base}/topics/a").open()
    second = await hub.connect()
    third = await hub.connect(b"GET /topics/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await until(lambda: third.closed.called, what="the third connection to be closed")
    assert third.status == 503 and b"retry-after: 10" in third.head.lower()
    assert b"--max-connections-per-ip" in third.received
    assert hub.site.connections_per_ip == {"127.0.0.1": 2}
    await second.close()
    await until(lambda: hub.site.connections_per_ip == {"127.0.0.1": 1}, what="the release")
    fourth = await Stream(f"{hub.base}/topics/a").open()
    assert fourth.status == 200
    await first.close()
    await fourth.close()
    await until(lambda: hub.site.connections_per_ip == {}, what="every connection released")


def get_head(path: str, host: str | None) -> bytes:
    """A GET request's head with the given Host header (or none)."""
    lines = [f"GET {path} HTTP/1.1".encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("hub.example", 200),
        ("HUB.example:8080", 200),
        ("127.0.0.1:9999", 200),
        ("127.0.0.1:1234", 400),
        ("[::1]", 200),
        ("attacker.example", 400),
        (None, 400),
    ],
)
@pytest_twisted.ensureDeferred
async def test_allowed_hosts_refuse_other_host_headers(
    serve: Any, host: str | None, status: int
) -> None:
    """With allowed_hosts, a Host not listed (DNS rebinding) gets 400; /health answers any."""
    hub = serve(allowed_hosts=["hub.example", "127.0.0.1:9999", "[::1]"])
    client = await hub.connect(get_head("/topics/t", host))
    await until(lambda: b"\r\n\r\n" in client.received, what="an answer")
    assert client.status == status
    if status == 400:
        assert b"--allowed-host" in client.received
    health = await hub.connect(get_head("/health", "attacker.example"))
    await until(lambda: b"\r\n\r\n" in health.received, what="the health answer")
    assert health.status == 200


@pytest_twisted.ensureDeferred
async def test_an_early_refusal_checks_the_host_first(serve: Any) -> None:
    """A publish to a Host not allowed gets the same 400 from its headers alone."""
    hub = serve(allowed_hosts=["hub.example"])
    client = await hub.connect(post_head(10, token="secret"))  # Host: 127.0.0.1
    await until(lambda: b"\r\n\r\n" in client.received, what="an answer without the body")
    assert client.status == 400 and b"--allowed-host" in client.received


def test_allowed_hosts_must_be_host_names() -> None:
    """An allowed host with a scheme or a path is refused with ValueError."""
    for bad in ("http://hub.example", "hub.example/x", "hub.example:port", ""):
        with pytest.raises(ValueError, match="not a host name"):
            Hub(MemoryChannel, publish_token="x", allowed_hosts=[bad])


@pytest.mark.parametrize(("token", "body"), [(None, b"ok: 0 subscribers\n"), ("sub", b"ok\n")])
@pytest_twisted.ensureDeferred
async def test_health_tells_only_liveness_behind_a_subscribe_token(
    serve: Any, token: str | None, body: bytes
) -> None:
    """/health counts subscribers for an open hub, and says only "ok" behind a subscribe token."""
    hub = serve(subscribe_token=token)
    client = await hub.connect(get_head("/health", "127.0.0.1"))
    await until(lambda: client.received.endswith(b"\n") and client.status == 200)
    assert client.received.partition(b"\r\n\r\n")[2].endswith(body)


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port``, as ``ss`` reports it (Send-Q)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_twistd_hub_backlog_allowed_hosts_and_connections_per_ip(tmp_path: Path) -> None:
    """Twistd sse-hub: a large default backlog, --allowed-host and --max-connections-per-ip."""
    token = tmp_path / "token"
    token.write_text("secret\n")
    port = free_port()
    hub = HubProcess(port, "--allowed-host", "hub.example", "--max-connections-per-ip", "2",
                     token_file=token)  # fmt: skip
    await hub.start()
    clients: list[RawClient] = []
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert listen_backlog(port) == min(4096, somaxconn)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        for host in ("127.0.0.1", "hub.example"):
            clients.append(await connectProtocol(endpoint, RawClient()))
            clients[-1].send(get_head("/topics/t", host))
        refused, stream = clients
        await until(lambda: b"\r\n\r\n" in refused.received and b"\r\n\r\n" in stream.received)
        assert refused.status == 400 and b"--allowed-host" in refused.received
        assert stream.status == 200
        # Both connections stay open: a third one from the same address is one too many.
        clients.append(await connectProtocol(endpoint, RawClient()))
        third = clients[-1]
        await until(lambda: third.closed.called, what="the connection past the limit to close")
        assert third.status == 503 and b"--max-connections-per-ip" in third.received
        assert not refused.closed.called and not stream.closed.called
    finally:
        for client in clients:
            await client.close()
        hub.stop()


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_twistd_hub_max_topics_answers_503_and_topic_ttl_needs_memory(
    tmp_path: Path,
) -> None:
    """--max-topics 1: a second topic gets 503 with Retry-After; --topic-ttl with --redis exits."""
    token = tmp_path / "token"
    token.write_text("secret\n")
    hub = await HubProcess(free_port(), "--max-topics", "1", token_file=token).start()
    try:
        assert (await publish(hub.base, "one", "x")).code == 200
        refused = await publish(hub.base, "two", "x")
        assert refused.code == 503
        assert refused.headers.getRawHeaders("retry-after") == ["10"]
        assert b"--max-topics" in await refused.content()
        head = await treq.head(f"{hub.base}/topics/three", persistent=False)
        assert head.code == 200  # a HEAD creates no topic, whatever the limit
    finally:
        hub.stop()
    refused_start = subprocess.run(
        [str(TWISTD), "-n", "--pidfile=", "sse-hub", "--publish-token-file", str(token),
         "--redis", "redis://127.0.0.1:1/0", "--topic-ttl", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused_start.returncode != 0
    assert "--topic-ttl is for the memory backend" in refused_start.stdout + refused_start.stderr
