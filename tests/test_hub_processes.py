"""`twistd sse-hub` as real processes on a real redis-server."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted

from tests.helpers.hub import HubProcess, publish
from tests.helpers.reading import Stream
from tests.helpers.redis import RedisServer
from tests.helpers.serving import Upstream
from tests.helpers.system import TWISTD
from tests.helpers.waiting import until

pytestmark = pytest.mark.slow

Start = Callable[..., "pytest_twisted.Deferred[HubProcess]"]


@pytest_twisted.ensureDeferred
async def test_two_hubs_share_topics_and_a_client_moves_without_loss(
    redis_server: RedisServer,
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
    redis_server: RedisServer,
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

    await until(refused, what="publishing to answer 503 while Redis is down")
    response = await publish(hub.base, "t", "during")
    assert response.code == 503
    assert response.headers.getRawHeaders("retry-after") == ["1"]
    assert b"Redis" in await response.content()
    assert set(codes) <= {200, 503}

    redis_server.start()

    async def accepted() -> bool:
        return (await publish(hub.base, "t", "after")).code == 200

    await until(accepted, timeout=20, what="publishing to work again after Redis is back")
    await until(lambda: "after" in stream.data, timeout=20, what="the stream to carry on")
    assert not stream.is_ended
    assert stream.data[0] == "before" and stream.data[-1] == "after"
    assert "during" not in stream.data or codes.count(200) > 0
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_upstream_relay_survives_upstream_drops_without_gap(
    hubs: Callable[..., object],
    upstream: Upstream,
) -> None:
    """The hub relays an upstream stream; the upstream drops its clients twice; nothing lost."""
    channel, resource = upstream.channel, upstream.resource
    hub: HubProcess = await hubs("--upstream", f"relayed={upstream.url}")  # type: ignore[misc]
    await until(lambda: resource.stream_count == 1, what="the hub to connect upstream")
    local = await Stream(f"{hub.base}/topics/relayed").open()
    sent = []
    for round_ in range(3):
        for i in range(5):
            sent.append(f"r{round_}-{i}")
            channel.publish(sent[-1], event="tick")
        if round_ < 2:
            await until(lambda: len(local.events) == len(sent), what="relayed events")
            resource.close(0.05, spread=False)  # drop the hub's upstream connection
            resource.reopen()
            channel.publish(f"gap-{round_}")  # published while the hub is away
            sent.append(f"gap-{round_}")
            await until(lambda: resource.stream_count == 1, what="the relay to reconnect")
    await until(lambda: len(local.events) == len(sent), what="every event relayed")
    assert local.data == sent
    assert {e.event for e in local.events} == {"tick", "message"}
    await local.close()


@pytest.mark.parametrize(("end", "lease"), [("kill", "1"), ("stop", "60")])
@pytest_twisted.ensureDeferred
async def test_one_process_relays_and_another_takes_over_without_gap_or_duplicate(
    redis_server: RedisServer,
    hubs: Callable[..., object],
    upstream: Upstream,
    end: str,
    lease: str,
) -> None:
    """One of two hubs relays; killed (lease expires) or stopped (released), the other resumes."""
    channel, resource = upstream.channel, upstream.resource
    args = ("--redis", redis_server.url, "--upstream", f"relayed={upstream.url}",
            "--relay-lease", lease)  # fmt: skip
    a: HubProcess = await hubs(*args)  # type: ignore[misc]
    b: HubProcess = await hubs(*args)  # type: ignore[misc]
    await until(lambda: resource.stream_count == 1, what="one relay to connect upstream")
    streams = {hub: await Stream(f"{hub.base}/topics/relayed").open() for hub in (a, b)}
    sent = [f"e{i}" for i in range(5)]
    for data in sent:
        channel.publish(data)
    await until(lambda: all(len(s.events) == 5 for s in streams.values()))
    assert all(s.data == sent for s in streams.values())
    assert resource.stream_count == 1  # the other process does not relay

    reply = redis_server.command("GET", "txsse:topic:relayed:relay")
    pid = int(reply.split(b"\r\n")[1].rsplit(b":", 2)[1])
    leader, survivor = (a, b) if a.process and a.process.pid == pid else (b, a)
    leader.kill() if end == "kill" else leader.stop()
    for i in range(5, 10):  # published while nobody relays
        sent.append(f"e{i}")
        channel.publish(sent[-1])
    stream = streams[survivor]
    await until(lambda: len(stream.events) >= 10, timeout=20, what="the take-over")
    channel.publish("last")
    sent.append("last")
    await until(lambda: "last" in stream.data, what="the new relay to go on")
    assert stream.data == sent
    await stream.close()


def run_hub(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run ``twistd -n --pidfile= sse-hub args`` to its end: its status and its output."""
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "sse-hub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("port", "cause"),
    [("8085", "Unknown endpoint type: '8085'"), ("tcp:abc", "invalid literal for int()")],
)
def test_bad_port_is_one_usage_line(tmp_path: Path, port: str, cause: str) -> None:
    """``--port 8085`` / ``--port tcp:abc``: a usage error naming the option, no traceback."""
    status, output = run_hub(tmp_path, "--port", port, "--publish-token", "x")
    assert status == 1
    last = output.splitlines()[-1]
    assert f"--port {port!r} is not a server endpoint ({cause}" in last
    assert "use for example tcp:8080:interface=127.0.0.1" in last
    assert "Traceback" not in output
    assert output.startswith("Usage: twistd [twistd options] sse-hub [options]\n")


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    """A port already in use ends the hub with one line naming the option and the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        status, output = run_hub(tmp_path, "--port", endpoint, "--publish-token", "x")
    assert status == 1
    assert f"--port {endpoint}: cannot listen on 127.0.0.1:{port}: Address already in use" in output
    assert "Traceback" not in output and "CannotListenError" not in output


def test_help_and_token_file_warnings(tmp_path: Path) -> None:
    """Help texts end with one period; a world-readable token file is logged as a warning."""
    status, output = run_hub(tmp_path, "--help")
    assert status == 0
    words = " ".join(output.split())
    assert ".." not in words and "hint sent to subscribers. Seconds, 0 or more." in words
    token = tmp_path / "token"
    token.write_text("\ufeffsecret\n")
    token.chmod(0o644)
    with socket.socket() as taken:  # the hub stops at once: its port is in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1"
        status, output = run_hub(tmp_path, "--port", port, "--publish-token-file", str(token))
    assert status == 1
    assert f"{token} is readable by every user (mode 0644): chmod 600 {token}" in output
