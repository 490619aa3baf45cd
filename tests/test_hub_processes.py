"""`twistd sse-hub` as real processes on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_twisted
from _hubhelpers import HubProcess, Stream, publish, until
from _redisserver import RedisServer, free_port, redis_server  # noqa: F401 (fixture)
from twisted.internet import reactor
from twisted.web.server import Site

from txsse.server import EventStreamResource, MemoryChannel

pytestmark = pytest.mark.slow

Start = Callable[..., "pytest_twisted.Deferred[HubProcess]"]


@pytest_twisted.async_yield_fixture
async def hubs(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Start hub processes with ``await start(*args)``; all are stopped after the test."""
    token = tmp_path / "token"
    token.write_text("secret\n")
    started: list[HubProcess] = []

    async def start(*args: str) -> HubProcess:
        hub = HubProcess(free_port(), *args, token_file=token)
        started.append(hub)
        return await hub.start()

    yield start
    for hub in started:
        hub.stop()


@pytest_twisted.ensureDeferred
async def test_two_hubs_share_topics_and_a_client_moves_without_loss(
    redis_server: RedisServer,  # noqa: F811
    hubs: Callable[..., object],
) -> None:
    """Publish on B reaches A (with the token only); A killed, the client resumes on B."""
    a: HubProcess = await hubs("--redis", redis_server.url)  # type: ignore[misc]
    b: HubProcess = await hubs("--redis", redis_server.url)  # type: ignore[misc]
    on_a = await Stream(f"{a.base}/topics/news").open()
    assert on_a.status == 200
    refused = await publish(b.base, "news", "no token", token="")
    assert refused.code == 401 and b"Bearer" in await refused.content()
    ids = []
    for i in range(5):
        response = await publish(b.base, "news", f"e{i}")
        assert response.code == 200
        ids.append((await response.json())["id"])
    await until(lambda: len(on_a.events) == 5, what="A's subscriber to get B's events")
    assert on_a.data == [f"e{i}" for i in range(5)]
    assert [e.id for e in on_a.events] == ids

    a.kill()
    await until(lambda: on_a.is_ended, what="the client to notice A died")
    for i in range(5, 10):  # published while the client is between hubs
        assert (await publish(b.base, "news", f"e{i}")).code == 200
    on_b = await Stream(f"{b.base}/topics/news", last_event_id=on_a.events[-1].id).open()
    for i in range(10, 15):
        assert (await publish(b.base, "news", f"e{i}")).code == 200
    await until(lambda: len(on_b.events) == 10, what="B to replay and stream the rest")
    assert on_a.data + on_b.data == [f"e{i}" for i in range(15)]
    assert not [e for e in on_b.events if e.event == "reset"]
    await on_b.close()


@pytest_twisted.ensureDeferred
async def test_redis_restart_503_for_publishers_streams_survive(
    redis_server: RedisServer,  # noqa: F811
    hubs: Callable[..., object],
) -> None:
    """Redis down: POST gets 503 and nothing is lost; after restart publishing works again."""
    hub: HubProcess = await hubs("--redis", redis_server.url)  # type: ignore[misc]
    stream = await Stream(f"{hub.base}/topics/t").open()
    assert (await publish(hub.base, "t", "before")).code == 200
    await until(lambda: stream.data == ["before"])

    redis_server.stop()
    codes: list[int] = []

    async def refused() -> bool:
        response = await publish(hub.base, "t", "during")
        codes.append(response.code)
        return response.code == 503

    await until_async(refused, what="publishing to answer 503 while Redis is down")
    response = await publish(hub.base, "t", "during")
    assert response.code == 503
    assert response.headers.getRawHeaders("retry-after") == ["1"]
    assert b"Redis" in await response.content()
    assert set(codes) <= {200, 503}

    redis_server.start()

    async def accepted() -> bool:
        return (await publish(hub.base, "t", "after")).code == 200

    await until_async(accepted, timeout=20, what="publishing to work again after Redis is back")
    await until(lambda: "after" in stream.data, timeout=20, what="the stream to carry on")
    assert not stream.is_ended
    assert stream.data[0] == "before" and stream.data[-1] == "after"
    assert "during" not in stream.data or codes.count(200) > 0
    await stream.close()


async def until_async(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Repeat an async check until it returns True; fail after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest_twisted.ensureDeferred
async def test_upstream_relay_survives_upstream_drops_without_gap(
    hubs: Callable[..., object],
) -> None:
    """The hub relays an upstream stream; the upstream drops its clients twice; nothing lost."""
    channel = MemoryChannel(100)
    upstream = EventStreamResource(channel, keepalive=None, retry=0.05)
    port = reactor.listenTCP(0, Site(upstream), interface="127.0.0.1")  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port.getHost().port}/"
    try:
        hub: HubProcess = await hubs("--upstream", f"relayed={url}")  # type: ignore[misc]
        await until(lambda: upstream.stream_count == 1, what="the hub to connect upstream")
        local = await Stream(f"{hub.base}/topics/relayed").open()
        sent = []
        for round_ in range(3):
            for i in range(5):
                sent.append(f"r{round_}-{i}")
                channel.publish(sent[-1], event="tick")
            if round_ < 2:
                await until(lambda: len(local.events) == len(sent), what="relayed events")
                upstream.close(0.05, spread=False)  # drop the hub's upstream connection
                upstream.reopen()
                channel.publish(f"gap-{round_}")  # published while the hub is away
                sent.append(f"gap-{round_}")
                await until(lambda: upstream.stream_count == 1, what="the relay to reconnect")
        await until(lambda: len(local.events) == len(sent), what="every event relayed")
        assert local.data == sent
        assert {e.event for e in local.events} == {"tick", "message"}
        await local.close()
    finally:
        await port.stopListening()
