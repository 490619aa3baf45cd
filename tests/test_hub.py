"""The hub's HTTP handling, options and relay, in-process on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.application.service import MultiService
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.server import Site
from zope.interface import implementer

from tests.helpers.hub import publish
from tests.helpers.memhttp import request as memory_request
from tests.helpers.reading import Stream
from tests.helpers.redis import RedisServer
from tests.helpers.serving import Upstream
from tests.helpers.waiting import until
from txsse.errors import ChannelUnavailable
from txsse.hub._options import Options, makeService, with_backlog
from txsse.hub._redis import RedisStreamChannel
from txsse.hub._relay import UpstreamRelay
from txsse.hub._resource import Hub
from txsse.hub._servers import RedisServers
from txsse.server import IEventChannel, MemoryChannel


async def get(url: str, **headers: str) -> Any:
    return await treq.get(url, headers=headers, persistent=False)


def post(url: str, body: Any) -> Any:
    """POST raw bytes (or a body producer) with the publish token."""
    return treq.post(url, data=body, headers={"Authorization": "Bearer secret"}, persistent=False)


async def text(response: Any) -> str:
    return (await response.content()).decode()


@pytest_twisted.ensureDeferred
async def test_publish_answers_the_id_and_subscribers_get_the_event(serve: Any) -> None:
    """POST with the token answers JSON {id, topic}; the event reaches a subscriber."""
    hub = serve()
    stream = await Stream(f"{hub.base}/topics/news").open()
    assert stream.status == 200
    assert stream.response.headers.getRawHeaders("content-type") == [
        "text/event-stream; charset=utf-8"
    ]
    response = await publish(hub.base, "news", "line 1\nline 2", event="update")
    assert response.code == 200
    body = await response.json()
    assert body["topic"] == "news" and body["id"]
    await until(lambda: len(stream.events) == 1)
    event = stream.events[0]
    assert (event.data, event.event, event.id) == ("line 1\nline 2", "update", body["id"])
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_publishing_needs_the_token(serve: Any) -> None:
    """No token or a wrong one: 401 with WWW-Authenticate; nothing is published."""
    hub = serve()
    missing = await publish(hub.base, "t", "x", token="")
    assert missing.code == 401
    assert missing.headers.getRawHeaders("www-authenticate") == ['Bearer realm="txsse-hub"']
    assert "Authorization: Bearer" in await text(missing)
    wrong = await publish(hub.base, "t", "x", token="guess")
    assert wrong.code == 401
    assert "invalid_token" in wrong.headers.getRawHeaders("www-authenticate")[0]
    assert hub.hub.router.channel("t").last_id is None


@pytest_twisted.ensureDeferred
async def test_subscribing_can_need_a_token(serve: Any) -> None:
    """With a subscribe token, GET needs it as a bearer header or access_token parameter."""
    hub = serve(subscribe_token="sub")
    assert (await get(f"{hub.base}/topics/t")).code == 401
    assert (await get(f"{hub.base}/topics/t?access_token=bad")).code == 401
    by_header = await Stream(f"{hub.base}/topics/t", Authorization="Bearer sub").open()
    by_query = await Stream(f"{hub.base}/topics/t?access_token=sub").open()
    assert (by_header.status, by_query.status) == (200, 200)
    await by_header.close()
    await by_query.close()


@implementer(IBodyProducer)
class Chunked:
    """A request body of unknown length: sent with chunked encoding."""

    length = UNKNOWN_LENGTH

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def startProducing(self, consumer: Any) -> Any:
        for part in self.parts:
            consumer.write(part)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@pytest_twisted.ensureDeferred
async def test_too_large_bodies_get_413(serve: Any) -> None:
    """Bodies over max_event_size get 413, with a Content-Length or chunked."""
    hub = serve(max_event_size=10)
    assert (await publish(hub.base, "t", "x" * 10)).code == 200
    response = await publish(hub.base, "t", "x" * 11)
    assert response.code == 413
    assert "--max-event-size" in await text(response)

    chunked = await post(f"{hub.base}/topics/t", Chunked([b"x" * 8, b"x" * 8]))
    assert chunked.code == 413


@pytest_twisted.ensureDeferred
async def test_bad_requests_get_clear_4xx(serve: Any) -> None:
    """Bad names, bodies, event types and methods are refused with a reason."""
    hub = serve()
    cases: list[tuple[Any, int, str]] = [
        (publish(hub.base, "bad%20name", "x"), 400, "topic name"),
        (publish(hub.base, ".hidden", "x"), 400, "topic name"),
        (publish(hub.base, "t", "x", event="a\nb"), 400, "Bad Request"),
        (publish(hub.base, "t", "x", event=""), 400, "must not be empty"),
        (post(f"{hub.base}/topics/t", b"\xff"), 400, "UTF-8"),
        (post(f"{hub.base}/topics/t?event=a&event=b", b"x"), 400, "once"),
        (treq.put(f"{hub.base}/topics/t", data=b"x", persistent=False), 405, "POST publishes"),
        (get(f"{hub.base}/topics/t/extra"), 404, "/topics/<name>"),
        (get(f"{hub.base}/topics"), 404, "/topics/<name>"),
    ]
    for request, status, message in cases:
        response = await request
        assert response.code == status, message
        assert message in await text(response)
    put = await treq.put(f"{hub.base}/topics/t", data=b"x", persistent=False)
    assert put.headers.getRawHeaders("allow") == ["GET, HEAD, POST, OPTIONS"]


@pytest_twisted.ensureDeferred
async def test_cors_allows_listed_origins_only(serve: Any) -> None:
    """Listed origins get Access-Control-Allow-Origin; others 403; preflights answered."""
    hub = serve(cors_origins=["https://app.example"])
    allowed = await Stream(f"{hub.base}/topics/t", Origin="https://app.example").open()
    assert allowed.status == 200
    assert allowed.response.headers.getRawHeaders("access-control-allow-origin") == [
        "https://app.example"
    ]
    await allowed.close()
    other = await get(f"{hub.base}/topics/t", Origin="https://evil.example")
    assert other.code == 403 and "--cors-origin" in await text(other)
    same = await get(f"{hub.base}/health", Origin=hub.base)
    assert same.code == 200
    preflight = await treq.request(
        "OPTIONS", f"{hub.base}/topics/t", persistent=False,
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )  # fmt: skip
    assert preflight.code == 204
    assert "Authorization" in preflight.headers.getRawHeaders("access-control-allow-headers")[0]
    assert "POST" in preflight.headers.getRawHeaders("access-control-allow-methods")[0]


@pytest_twisted.ensureDeferred
async def test_subscriber_limit(serve: Any) -> None:
    """Past max_subscribers new streams get 503; a closed stream frees its place."""
    hub = serve(max_subscribers=2)
    first = await Stream(f"{hub.base}/topics/a").open()
    second = await Stream(f"{hub.base}/topics/b").open()
    refused = await get(f"{hub.base}/topics/a")
    assert refused.code == 503 and "--max-subscribers" in await text(refused)
    await first.close()
    await until(lambda: hub.hub.subscribers == 1, what="the closed stream to be released")
    third = await Stream(f"{hub.base}/topics/a").open()
    assert third.status == 200
    await second.close()
    await third.close()


@pytest_twisted.ensureDeferred
async def test_topic_limit(serve: Any) -> None:
    """Past max_topics, a new topic is refused with 503, Retry-After and a reason."""
    hub = serve(max_topics=1, topic_grace=7)
    assert (await publish(hub.base, "one", "x")).code == 200
    response = await publish(hub.base, "two", "x")
    assert response.code == 503 and "--max-topics" in await text(response)
    assert response.headers.getRawHeaders("retry-after") == ["7"]
    subscriber = await get(f"{hub.base}/topics/three")
    assert subscriber.code == 503 and "--max-topics" in await text(subscriber)
    assert subscriber.headers.getRawHeaders("retry-after") == ["7"]


def clocked_hub(clock: Clock, channels: Any = None, **options: Any) -> tuple[Hub, Site]:
    """A hub on ``clock`` (memory topics unless ``channels`` is given), in an in-memory Site."""
    factory = channels or (lambda name: MemoryChannel(100, first_id=1))
    hub = Hub(factory, publish_token="secret", keepalive=None, reactor=clock, **options)
    return hub, hub.site(timeout=None)


def test_head_of_junk_topics_does_not_exhaust_the_topic_limit() -> None:
    """HEAD /topics/junk0..999 creates nothing: new topics are still served afterwards."""
    clock = Clock()
    hub, site = clocked_hub(clock, max_topics=10)
    for i in range(1000):
        assert memory_request(site, b"/topics/junk%d" % i, method=b"HEAD").status == 200
    assert hub.router.channel_count == 0
    subscriber = memory_request(site, b"/topics/fresh")
    assert subscriber.status == 200
    hub.publish("fresh", "hello")
    assert [e.data for e in subscriber.events()] == ["hello"]
    hub.close()


def test_subscribing_to_junk_topics_frees_them_after_the_grace_period() -> None:
    """GETs of unknown topics make them; once their subscribers left they are dropped."""
    clock = Clock()
    hub, site = clocked_hub(clock, max_topics=10, topic_grace=10)
    for i in range(10):
        memory_request(site, b"/topics/junk%d" % i).disconnect()
    refused = memory_request(site, b"/topics/fresh")
    assert refused.status == 503 and refused.header("retry-after") == ["10"]
    assert b"--max-topics" in refused.body
    clock.advance(10)
    assert hub.router.channel_count == 0
    assert memory_request(site, b"/topics/fresh").status == 200
    hub.close()
    assert clock.getDelayedCalls() == []


def test_memory_history_outlives_the_grace_period_for_topic_ttl() -> None:
    """A memory topic nobody subscribes to keeps its history topic_ttl s after its last publish."""
    clock = Clock()
    hub, site = clocked_hub(clock, topic_grace=10, topic_ttl=100)
    first = hub.publish("t", "one")
    hub.publish("t", "two")
    clock.advance(99)
    resumed = memory_request(site, b"/topics/t", headers={b"Last-Event-ID": first.encode()})
    assert [e.data for e in resumed.events()] == ["two"]
    resumed.disconnect()
    clock.advance(9)
    assert hub.router.channel_count == 1  # past the TTL, but within the grace of the visit
    clock.advance(1)
    assert hub.router.channel_count == 0
    gap = memory_request(site, b"/topics/t", headers={b"Last-Event-ID": first.encode()})
    assert [e.event for e in gap.events()] == ["reset"]
    hub.close()


@implementer(IEventChannel)
class DownChannel(MemoryChannel):
    """A channel whose broker is down."""

    def publish(self, data: str, event: str | None = None, id: str | None = None) -> Any:
        return fail(ChannelUnavailable("Redis is down"))


@pytest_twisted.ensureDeferred
async def test_backend_down_answers_503(serve: Any) -> None:
    """Backend unreachable: publishers and new subscribers get 503 with Retry-After."""
    hub = serve(channels=lambda name: DownChannel(10), available=lambda: False)
    response = await publish(hub.base, "t", "x")
    assert response.code == 503
    assert response.headers.getRawHeaders("retry-after") == ["1"]
    assert "nothing was published" in await text(response)
    subscriber = await get(f"{hub.base}/topics/t")
    assert subscriber.code == 503 and "Redis" in await text(subscriber)
    assert (await get(f"{hub.base}/health")).code == 503


def test_hub_refuses_bad_limits() -> None:
    """Empty tokens and non-positive limits raise ValueError."""
    with pytest.raises(ValueError):
        Hub(MemoryChannel, publish_token="")
    with pytest.raises(ValueError):
        Hub(MemoryChannel, publish_token="x", max_subscribers=0)


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_options_defaults_and_token_file(tmp_path: Path) -> None:
    """Token files are read (trailing newline dropped); defaults are sensible."""
    token = tmp_path / "t"
    token.write_text("s3cret\n")
    options = parse("--publish-token-file", str(token), "--cors-origin", "https://a.example/",
                    "--upstream", "x=http://127.0.0.1:1/", "--keepalive", "0")  # fmt: skip
    assert options["publish-token"] == "s3cret"
    assert options["subscribe-token"] is None
    assert options["cors-origin"] == ["https://a.example"]
    assert options["upstream"] == [("x", "http://127.0.0.1:1/")]
    assert options["keepalive"] is None
    assert options["history"] == 1000 and options["redis"] == []
    assert options["max-topics"] is None and options["topic-ttl"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "publishing needs a token"),
        (("--publish-token", "x", "--publish-token-file", "f"), "not both"),
        (("--publish-token-file", "/nonexistent/t"), "cannot read"),
        (("--publish-token", "x", "--redis", "http://nope"), "unsupported Redis URL"),
        (("--publish-token", "x", "--redis", "redis://h:1", "--redis", "redis://h:1"), "twice"),
        (("--publish-token", "x", "--upstream", "t"), "TOPIC=URL"),
        (("--publish-token", "x", "--upstream", "t=ftp://x"), "http://"),
        (("--publish-token", "x", "--upstream", "t=http://a", "--upstream", "t=http://b"), "two"),
        (("--publish-token", "x", "--cors-origin", "example.com"), "give an origin"),
        (("--publish-token", "x", "--history", "0"), "positive"),
        (("--publish-token", "x", "--keepalive", "-1"), "seconds"),
        (("--publish-token", "x", "--relay-lease", "0"), "relay-lease"),
        (("--publish-token", "x", "--max-topics", "0"), "positive"),
        (("--publish-token", "x", "--max-connections-per-ip", "0"), "positive"),
        (("--publish-token", "x", "--allowed-host", "http://hub.example"), "give a host name"),
        (("--publish-token", "x", "--topic-ttl", "-1"), "seconds"),
        (("--publish-token", "x", "--redis", "redis://h", "--topic-ttl", "5"), "--topic-ttl is"),
    ],
)
def test_options_refuse_bad_command_lines(args: tuple[str, ...], message: str) -> None:
    """Each bad command line is refused with a message naming the problem."""
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


@pytest.mark.parametrize(
    ("given", "listened"),
    [
        ("tcp:8080:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1:backlog=4096"),
        ("tcp:8080:backlog=100", "tcp:8080:backlog=100"),
        ("ssl:8443:privateKey=k.pem", "ssl:8443:privateKey=k.pem:backlog=4096"),
        ("unix:/run/hub.sock", "unix:/run/hub.sock:backlog=4096"),
        ("tcp6:8080:interface=\\:\\:1", "tcp6:8080:interface=\\:\\:1:backlog=4096"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_the_listen_backlog_defaults_to_4096(given: str, listened: str) -> None:
    """--port without backlog= listens with backlog=4096 (Twisted's default is 50)."""
    assert with_backlog(given) == listened


def test_make_service_memory_and_redis() -> None:
    """The service has the web server, shutdown service, relays and (with --redis) Redis."""
    memory = makeService(parse("--publish-token", "x", "--upstream", "t=http://127.0.0.1:1/"))
    assert isinstance(memory, MultiService)
    names = [type(s).__name__ for s in memory]
    assert names == ["ListeningService", "EventStreamService", "UpstreamRelay"]
    redis = makeService(parse("--publish-token", "x", "--redis", "redis://127.0.0.1:1/2"))
    assert type(next(iter(redis))).__name__ == "RedisServers"


def test_redis_servers_refuse_a_server_given_twice() -> None:
    """RedisServers refuses the same server twice (as --redis does), naming it."""
    with pytest.raises(ValueError, match=r"redis://h:1/0 is given twice"):
        RedisServers(["redis://h:1/0", "redis://h:2/0", "redis://h:1/0"])


@pytest_twisted.ensureDeferred
async def test_relay_retries_publishing_while_the_channel_is_down(
    upstream: Upstream,
) -> None:
    """Publish failures (Redis down) are retried; every upstream event arrives once, in order."""
    channel, url = upstream.channel, upstream.url
    published: list[tuple[str, str | None, str]] = []
    failures = [2]

    def flaky(data: str, event: str | None, upstream_id: str) -> Any:
        if failures[0]:
            failures[0] -= 1
            return fail(ChannelUnavailable("down"))
        published.append((data, event, upstream_id))
        return "id"

    relay = UpstreamRelay("t", url, flaky, reconnect_delay=0.05)
    relay.startService()
    try:
        await relay.source.when_open()
        ids = [channel.publish(f"e{i}", event=None if i % 2 else "kind") for i in range(5)]
        await until(lambda: len(published) == 5, what="every event to be relayed")
        assert [(d, e) for d, e, _ in published] == [
            (f"e{i}", None if i % 2 else "kind") for i in range(5)
        ]
        assert [u for _, _, u in published] == ids  # the upstream ids, for resuming
        assert relay.relayed == 5
    finally:
        await relay.stopService()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
    ],
)
@pytest_twisted.ensureDeferred
async def test_the_event_type_comes_from_the_query_and_the_body_is_the_data(
    serve: Any, content_type: str
) -> None:
    """A form-like body never overrides ?event=: the body is published as is."""
    hub = serve()
    stream = await Stream(f"{hub.base}/topics/t").open()
    body = (
        b"event=signup"
        if "urlencoded" in content_type
        else b'--xyz\r\nContent-Disposition: form-data; name="event"\r\n\r\nsignup\r\n--xyz--'
    )
    response = await treq.post(
        f"{hub.base}/topics/t?event=audit",
        data=body,
        headers={"Authorization": "Bearer secret", "Content-Type": content_type},
        persistent=False,
    )
    assert response.code == 200, await text(response)
    await until(lambda: len(stream.events) == 1)
    expected = body.decode().replace("\r\n", "\n")  # SSE data lines end with LF
    assert (stream.events[0].event, stream.events[0].data) == ("audit", expected)
    untyped = await treq.post(
        f"{hub.base}/topics/t",
        data=b"event=signup",
        headers={"Authorization": "Bearer secret", "Content-Type": content_type},
        persistent=False,
    )
    assert untyped.code == 200
    await until(lambda: len(stream.events) == 2)
    assert (stream.events[1].event, stream.events[1].data) == ("message", "event=signup")
    await stream.close()


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_an_idle_redis_topic_leaves_the_process_and_its_subscription(
    redis_server: RedisServer,
) -> None:
    """An idle Redis topic is closed and dropped after the grace; Redis holds no SUBSCRIBE."""
    servers = RedisServers([redis_server.url])
    servers.startService()
    closed: list[str] = []

    def factory(topic: str) -> IEventChannel:
        channel = RedisStreamChannel(servers.for_topic(topic), "test:" + topic, history=10)
        close = channel.close
        channel.close = lambda: closed.append(topic) or close()  # type: ignore[method-assign]
        return channel

    clock = Clock()
    hub, site = clocked_hub(clock, channels=factory, topic_grace=10)
    try:
        await until(lambda: servers.connected, what="Redis to answer")
        subscriber = memory_request(site, b"/topics/news")
        await until(lambda: subscriber.transport.value() != b"", what="the stream to open")
        assert subscriber.status == 200
        assert redis_server.command("PUBSUB", "CHANNELS").startswith(b"*1\r\n")
        subscriber.disconnect()
        clock.advance(9)
        assert hub.router.channel_count == 1 and closed == []
        clock.advance(1)
        assert hub.router.channel_count == 0 and closed == ["news"]
        await until(
            lambda: redis_server.command("PUBSUB", "CHANNELS") == b"*0\r\n",
            what="Redis to hold no subscription",
        )
    finally:
        hub.close()
        await servers.stopService()
