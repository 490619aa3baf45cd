"""EventStreamResource over a real HTTPChannel in memory, time on a Clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.server import Site
from zope.interface import implementer

from tests.helpers.memhttp import Client, make_site, request
from txsse import Comment, Event, format_event
from txsse.server import (
    ChannelRouter,
    EventStreamResource,
    EventStreamService,
    IEventChannel,
    ISubscriber,
    MemoryChannel,
    Replay,
)

pytestmark = pytest.mark.usefixtures("direct_writes")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel(history=5, first_id=1)


def serve(channel: Any, clock: Clock, **options: Any) -> tuple[EventStreamResource, Site]:
    resource = EventStreamResource(channel, reactor=clock, **options)
    return resource, make_site(resource, clock)


def test_headers(channel: MemoryChannel, clock: Clock) -> None:
    """A stream answers 200 with the event-stream headers, chunked, and no Connection header."""
    _, site = serve(channel, clock)
    client = request(site)
    assert client.status == 200
    assert client.header("content-type") == ["text/event-stream; charset=utf-8"]
    assert client.header("cache-control") == ["no-cache"]
    assert client.header("x-accel-buffering") == ["no"]
    assert client.header("connection") == []
    assert client.chunked
    client.disconnect()


def test_opening_comment_sends_headers_at_once(channel: MemoryChannel, clock: Clock) -> None:
    """Without retry, resume point or replay, a comment goes out so clients see the stream open."""
    _, site = serve(channel, clock)
    last = channel.publish("before")
    client = request(site, headers={b"Last-Event-ID": last.encode()})
    assert client.body == b":\n"
    client.disconnect()


def test_new_stream_starts_with_its_resume_point(channel: MemoryChannel, clock: Clock) -> None:
    """A new client's stream starts with an ``id:`` line and no data: its last event id, set."""
    last = [channel.publish(f"e{n}") for n in range(2)][-1]
    _, site = serve(channel, clock)
    client = request(site)
    assert client.body == f"id: {last}\n\n".encode()
    assert client.events() == []
    assert client.parser.last_event_id == last
    client.disconnect()


def test_resume_point_of_an_empty_channel_loses_nothing(
    channel: MemoryChannel, clock: Clock
) -> None:
    """Cut before its first event, a client resumes from its resume point and misses nothing."""
    _, site = serve(channel, clock)
    first = request(site)
    position = first.parser.last_event_id if first.events() == [] else ""
    assert position
    first.disconnect()
    ids = [channel.publish(f"e{n}") for n in range(3)]
    again = request(site, headers={b"Last-Event-ID": position.encode()})
    assert [e.id for e in again.events()] == ids
    assert all(e.event == "message" for e in again.events()), "no reset notice"
    again.disconnect()


def test_each_event_is_written_when_published(channel: MemoryChannel, clock: Clock) -> None:
    """Every published event reaches the transport immediately, without a reactor turn."""
    _, site = serve(channel, clock)
    client = request(site)
    client.pump()
    for n in range(3):
        event_id = channel.publish(f"message {n}", event="update")
        assert client.pump() == [Event(f"message {n}", "update", event_id)]
    client.disconnect()


def test_keepalive_comments_on_the_clock(channel: MemoryChannel, clock: Clock) -> None:
    """A comment is sent every ``keepalive`` seconds and the timer stops with the last stream."""
    _, site = serve(channel, clock, keepalive=10.0)
    client = request(site)
    client.pump()
    clock.advance(9.9)
    assert client.pump() == []
    clock.advance(0.1)
    assert client.pump() == [Comment("")]
    clock.advance(10)
    assert client.pump() == [Comment("")]
    client.disconnect()
    assert clock.getDelayedCalls() == []


def test_keepalive_off(channel: MemoryChannel, clock: Clock) -> None:
    """``keepalive=None`` schedules nothing."""
    _, site = serve(channel, clock, keepalive=None)
    client = request(site)
    assert clock.getDelayedCalls() == []
    client.disconnect()


def test_retry_hint_at_connect(channel: MemoryChannel, clock: Clock) -> None:
    """``retry`` (seconds) is sent as a ``retry:`` field in milliseconds first thing."""
    _, site = serve(channel, clock, retry=2.5)
    client = request(site)
    assert client.body.startswith(b"retry: 2500\n\n")
    assert client.parser.retry == 2500
    client.disconnect()


def test_replay_after_last_event_id_header(channel: MemoryChannel, clock: Clock) -> None:
    """Events after the Last-Event-ID header are replayed, then live ones follow."""
    ids = [channel.publish(f"e{n}") for n in range(4)]
    _, site = serve(channel, clock)
    client = request(site, headers={b"Last-Event-ID": ids[1].encode()})
    assert client.events() == [Event("e2", id=ids[2]), Event("e3", id=ids[3])]
    live = channel.publish("e4")
    assert client.events()[-1] == Event("e4", id=live)
    client.disconnect()


def test_replay_after_query_parameter(channel: MemoryChannel, clock: Clock) -> None:
    """Polyfills' ``lastEventId`` query parameter resumes like the header."""
    ids = [channel.publish(f"e{n}") for n in range(3)]
    _, site = serve(channel, clock)
    client = request(site, path=b"/events?lastEventId=" + ids[0].encode())
    assert [e.data for e in client.events()] == ["e1", "e2"]
    client.disconnect()


def test_header_wins_over_query(channel: MemoryChannel, clock: Clock) -> None:
    """When both are sent, the Last-Event-ID header decides."""
    ids = [channel.publish(f"e{n}") for n in range(3)]
    _, site = serve(channel, clock)
    client = request(
        site,
        path=b"/events?lastEventId=" + ids[0].encode(),
        headers={b"Last-Event-ID": ids[1].encode()},
    )
    assert [e.data for e in client.events()] == ["e2"]
    client.disconnect()


def test_up_to_date_id_replays_nothing(channel: MemoryChannel, clock: Clock) -> None:
    """Resuming after the newest event replays nothing and reports no gap."""
    last = [channel.publish(f"e{n}") for n in range(3)][-1]
    _, site = serve(channel, clock)
    client = request(site, headers={b"Last-Event-ID": last.encode()})
    assert client.events() == []
    assert client.body == b":\n"
    client.disconnect()


def test_stale_id_gets_reset_event_and_whole_history(channel: MemoryChannel, clock: Clock) -> None:
    """An id older than the history gets a ``reset`` event, then everything kept."""
    ids = [channel.publish(f"e{n}") for n in range(8)]  # history=5 keeps e3..e7
    _, site = serve(channel, clock)
    client = request(site, headers={b"Last-Event-ID": ids[0].encode()})
    events = client.events()
    assert events[0].event == "reset"
    assert events[0].json() == {"last_event_id": ids[0], "oldest_id": ids[3]}
    assert events[0].id == ids[0], "the notice must not move the client's last event id"
    assert [e.data for e in events[1:]] == ["e3", "e4", "e5", "e6", "e7"]
    client.disconnect()


def test_unknown_id_gets_reset_event(channel: MemoryChannel, clock: Clock) -> None:
    """An id the channel never issued is reported as a gap too, even with no history."""
    _, site = serve(channel, clock, reset_event="gap")
    client = request(site, headers={b"Last-Event-ID": "nope-\u00e9".encode()})
    (notice,) = client.events()
    assert notice.event == "gap"
    assert notice.json() == {"last_event_id": "nope-\u00e9", "oldest_id": None}
    client.disconnect()


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"])
def test_other_methods_get_405(channel: MemoryChannel, clock: Clock, method: bytes) -> None:
    """Methods other than GET and HEAD answer 405 with an Allow header and do not subscribe."""
    resource, site = serve(channel, clock)
    client = request(site, method=method)
    assert client.status == 405
    assert client.header("allow") == ["GET, HEAD"]
    assert channel.subscriber_count == 0
    assert resource.stream_count == 0


def test_head_answers_headers_without_subscribing(channel: MemoryChannel, clock: Clock) -> None:
    """HEAD gets the stream's headers and an empty, finished response."""
    _, site = serve(channel, clock)
    client = request(site, method=b"HEAD")
    assert client.status == 200
    assert client.header("content-type") == ["text/event-stream; charset=utf-8"]
    assert client.body == b""
    assert channel.subscriber_count == 0
    assert clock.getDelayedCalls() == []


def test_disconnect_releases_subscription_at_once(channel: MemoryChannel, clock: Clock) -> None:
    """A lost connection unsubscribes from the channel and stops timers immediately."""
    resource, site = serve(channel, clock)
    clients = [request(site) for _ in range(3)]
    assert channel.subscriber_count == 3
    clients[0].disconnect()
    assert channel.subscriber_count == 2
    assert resource.stream_count == 2
    channel.publish("after")
    assert [e.data for e in clients[1].events()] == ["after"]
    for client in clients[1:]:
        client.disconnect()
    assert channel.subscriber_count == 0
    assert clock.getDelayedCalls() == []


def test_slow_client_is_evicted_while_others_keep_receiving(
    channel: MemoryChannel, clock: Clock
) -> None:
    """A client over ``max_unsent`` for ``slow_client_timeout`` s is aborted; the rest go on."""
    resource, site = serve(channel, clock, max_unsent=1000, slow_client_timeout=5.0)
    slow, fast = request(site), request(site)
    slow.http.pauseProducing()  # what the TCP transport does when its buffer is full
    sent = [channel.publish("x" * 100 + str(n)) for n in range(20)]
    clock.advance(4.9)
    assert not slow.transport.disconnected, "over the bound, but not for long enough"
    sent += [channel.publish("x" * 100 + str(n)) for n in range(20, 25)]
    clock.advance(0.1)
    assert slow.transport.disconnected
    assert channel.subscriber_count == 1
    assert resource.stream_count == 1
    assert [e.id for e in fast.events()] == sent
    assert slow.events() == [], "nothing was written after the pause"
    slow.disconnect()  # the abort completes
    fast.disconnect()
    assert clock.getDelayedCalls() == []


def test_zero_timeout_evicts_at_once(channel: MemoryChannel, clock: Clock) -> None:
    """With ``slow_client_timeout=0`` a paused client is aborted as soon as it is over the bound."""
    _, site = serve(channel, clock, max_unsent=1000, slow_client_timeout=0)
    slow = request(site)
    slow.http.pauseProducing()
    for n in range(8):  # 8 events of 113 bytes
        channel.publish("x" * 100 + str(n))
    assert not slow.transport.disconnected
    channel.publish("x" * 100 + "8")
    assert slow.transport.disconnected
    assert channel.subscriber_count == 0
    slow.disconnect()


def test_burst_over_the_bound_is_not_an_eviction(channel: MemoryChannel, clock: Clock) -> None:
    """A client that catches up within the timeout keeps its stream and every event, in order."""
    resource, site = serve(channel, clock, max_unsent=1000, slow_client_timeout=5.0)
    client = request(site)
    client.http.pauseProducing()
    sent = [channel.publish("y" * 300) for _ in range(20)]  # 6 times the bound, one turn
    clock.advance(4.0)
    client.http.resumeProducing()
    assert [e.id for e in client.events()] == sent
    clock.advance(10.0)
    assert not client.transport.disconnected
    assert resource.stream_count == 1
    client.disconnect()
    assert clock.getDelayedCalls() == []


def test_client_that_catches_up_is_kept(channel: MemoryChannel, clock: Clock) -> None:
    """Pausing and resuming under the bound loses nothing and disconnects nobody."""
    _, site = serve(channel, clock, max_unsent=1000, slow_client_timeout=0)
    client = request(site)
    for _ in range(5):
        client.http.pauseProducing()
        channel.publish("y" * 300)
        channel.publish("y" * 300)
        client.http.resumeProducing()
    assert not client.transport.disconnected
    assert len(client.events()) == 10
    client.disconnect()


def test_replay_is_paced_and_counted(clock: Clock) -> None:
    """A replay larger than the bound goes out one piece per resume, and counts for eviction."""
    channel = MemoryChannel(history=100, first_id=1)
    ids = [channel.publish("z" * 10_000) for _ in range(50)]  # about 500 KB of history
    resource, site = serve(channel, clock, max_unsent=64 * 1024, slow_client_timeout=5.0)
    client = request(site, headers={b"Last-Event-ID": b"bogus"}, buffer=64 * 1024)
    (stream,) = resource._streams
    written = len(client.transport.value())
    assert written < 2 * 64 * 1024 + 1000, "a piece past the transport's buffer, no more"
    assert stream._queued > 300_000
    while stream._queued:
        client.read()
        assert len(client.transport.value()) - written < 2 * 64 * 1024 + 1000
        written = len(client.transport.value())
    assert [e.id for e in client.events()[1:]] == ids
    client.disconnect()
    stalled = request(site, headers={b"Last-Event-ID": b"bogus"}, buffer=64 * 1024)
    clock.advance(4.9)
    stalled.read()  # some progress, but still over the bound
    clock.advance(0.1)
    assert stalled.transport.disconnected, "a stalled replay counts against the bound"
    stalled.disconnect()
    assert clock.getDelayedCalls() == []


def test_memory_does_not_grow_with_events(channel: MemoryChannel, clock: Clock) -> None:
    """Publishing many events keeps only ``history`` of them and no per-event state."""
    _, site = serve(channel, clock)
    client = request(site)
    for n in range(1000):
        channel.publish(str(n))
    assert len(channel._chunks) == channel.history
    assert len(channel._index) == channel.history
    assert len(client.events()) == 1000
    client.disconnect()


def test_http10_client_gets_unchunked_stream(channel: MemoryChannel, clock: Clock) -> None:
    """An HTTP/1.0 client gets the raw stream through Request.write."""
    _, site = serve(channel, clock, retry=1)
    client = request(site, version=b"HTTP/1.0")
    channel.publish("one")
    assert not client.chunked
    assert [e.data for e in client.events()] == ["one"]
    client.disconnect()


def test_close_ends_streams_with_exact_retry(channel: MemoryChannel, clock: Clock) -> None:
    """close(retry, spread=False) sends ``retry:`` then ends each response and its connection."""
    resource, site = serve(channel, clock)
    clients = [request(site) for _ in range(3)]
    resource.close(retry=4, spread=False)
    for client in clients:
        assert client.body.endswith(b"retry: 4000\n\n")
        assert client.transport.value().endswith(b"0\r\n\r\n")
        assert client.transport.disconnecting
        assert client.parser.retry == 4000
    assert channel.subscriber_count == 0
    assert clock.getDelayedCalls() == []
    late = request(site)
    assert late.status == 503
    assert late.header("retry-after") == ["1"]
    resource.reopen()
    assert request(site).status == 200


def test_close_spreads_final_retry(channel: MemoryChannel, clock: Clock) -> None:
    """With spread, each client's final retry is ``retry`` times its own random draw."""
    draws = iter([0.0, 0.25, 0.5, 0.999])
    resource, site = serve(channel, clock, random=lambda: next(draws))
    clients = [request(site) for _ in range(4)]
    resource.close(retry=10)
    for client in clients:
        client.pump()
    assert [client.parser.retry for client in clients] == [0, 2500, 5000, 9990]


def test_service_stop_closes_streams(channel: MemoryChannel, clock: Clock) -> None:
    """EventStreamService closes the streams when it stops, if asked to."""
    resource, site = serve(channel, clock)
    client = request(site)
    parent = MultiService()
    EventStreamService(resource, final_retry=1.5, spread=False).setServiceParent(parent)
    parent.startService()
    parent.stopService()
    assert client.parser.retry is None
    client.pump()
    assert client.parser.retry == 1500
    assert client.transport.disconnecting
    assert channel.subscriber_count == 0


def test_service_can_be_stopped_and_started_again(channel: MemoryChannel, clock: Clock) -> None:
    """A restarted EventStreamService serves streams again instead of answering 503 forever."""
    resource, site = serve(channel, clock)
    service = EventStreamService(resource)
    service.startService()
    service.stopService()
    assert request(site).status == 503
    service.startService()
    client = request(site)
    assert client.status == 200
    event_id = channel.publish("after the restart")
    assert client.events() == [Event("after the restart", id=event_id)]
    client.disconnect()


def test_service_can_be_stopped_and_started_again_on_a_router(clock: Clock) -> None:
    """The same holds for a ChannelRouter's streams."""
    router = ChannelRouter({"news": MemoryChannel(first_id=1)}, reactor=clock)
    site = make_site(router, clock, path=b"channels")
    service = EventStreamService(router)
    service.startService()
    service.stopService()
    assert request(site, path=b"/channels/news").status == 503
    service.startService()
    assert request(site, path=b"/channels/news").status == 200


def test_service_stop_can_keep_clients(channel: MemoryChannel, clock: Clock) -> None:
    """With ``close_streams=False`` stopping the service leaves every stream open."""
    resource, site = serve(channel, clock)
    client = request(site)
    service = EventStreamService(resource, close_streams=False)
    service.startService()
    service.stopService()
    event_id = channel.publish("still here")
    assert client.events() == [Event("still here", id=event_id)]
    assert not client.transport.disconnecting
    client.disconnect()


@implementer(IEventChannel)
class AsyncChannel:
    """A channel whose subscribe answers later, like one backed by Redis."""

    history = 10

    def __init__(self) -> None:
        self.pending: list[tuple[ISubscriber, str | None, Deferred[Replay]]] = []
        self.subscribers: list[ISubscriber] = []
        self.unsubscribed: list[ISubscriber] = []

    def publish(self, data: str, event: str | None = None, id: str | None = None) -> object:
        raise NotImplementedError

    def publish_json(self, obj: object, event: str | None = None, id: str | None = None) -> object:
        raise NotImplementedError

    def subscribe(self, subscriber: ISubscriber, last_event_id: str | None = None) -> object:
        d: Deferred[Replay] = Deferred()
        self.pending.append((subscriber, last_event_id, d))
        self.subscribers.append(subscriber)
        return d

    def unsubscribe(self, subscriber: ISubscriber) -> None:
        self.unsubscribed.append(subscriber)


def test_async_channel_replay_then_live(clock: Clock) -> None:
    """The resource waits for an asynchronous subscribe, then writes replay and live bytes."""
    channel = AsyncChannel()
    _, site = serve(channel, clock, retry=1)
    client = request(site, headers={b"Last-Event-ID": b"1700000000000-0"})
    assert client.transport.value() == b""
    subscriber, last_id, d = channel.pending[0]
    assert last_id == "1700000000000-0"
    d.callback(Replay(b"id: 1700000000001-0\ndata: a\n\n", False, "1700000000000-0"))
    subscriber.send(b"id: 1700000000002-0\ndata: b\n\n")
    assert client.events() == [Event("a", id="1700000000001-0"), Event("b", id="1700000000002-0")]
    assert client.parser.retry == 1000
    client.disconnect()
    assert channel.unsubscribed == [subscriber]


def test_async_channel_disconnect_while_subscribing(clock: Clock) -> None:
    """A client leaving before subscribe answers cancels it and is unsubscribed."""
    channel = AsyncChannel()
    resource, site = serve(channel, clock)
    client = request(site)
    subscriber, _, d = channel.pending[0]
    client.disconnect()
    assert channel.unsubscribed == [subscriber]
    assert d.called  # cancelled
    assert resource.stream_count == 0
    assert clock.getDelayedCalls() == []


def test_async_channel_failure_answers_503(clock: Clock, logged_errors: list[Any]) -> None:
    """A channel that cannot subscribe gets a logged error and a 503 for the client."""
    channel = AsyncChannel()
    resource, site = serve(channel, clock)
    client = request(site)
    channel.pending[0][2].errback(ConnectionError("broker down"))
    assert client.status == 503
    assert resource.stream_count == 0
    assert len(logged_errors) == 1
    logged_errors.clear()


def test_channel_can_end_a_stream(clock: Clock) -> None:
    """ISubscriber.end() finishes the response so the client reconnects and resumes."""
    channel = AsyncChannel()
    resource, site = serve(channel, clock)
    client = request(site)
    subscriber, _, d = channel.pending[0]
    d.callback(Replay())
    subscriber.end()
    assert client.transport.value().endswith(b"0\r\n\r\n")
    assert resource.stream_count == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keepalive": 0}, "keepalive must be positive"),
        ({"keepalive": -1}, "keepalive must be positive"),
        ({"retry": -1}, "retry must be non-negative"),
        ({"retry": "3"}, "retry must be a number"),
        ({"max_unsent": -1}, "max_unsent must be"),
        ({"slow_client_timeout": -1}, "slow_client_timeout must be non-negative"),
        ({"slow_client_timeout": None}, "slow_client_timeout must be a number"),
        ({"reset_event": "a\nb"}, "contains CR or LF"),
        ({"reset_event": ""}, "non-empty event type"),
    ],
)
def test_bad_options_are_refused(
    channel: MemoryChannel, options: dict[str, Any], message: str
) -> None:
    """Out-of-range options raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        EventStreamResource(channel, **options)


def test_channel_must_provide_the_interface() -> None:
    """Passing something that is not a channel fails early and clearly."""
    with pytest.raises(ValueError, match="IEventChannel"):
        EventStreamResource(object())  # type: ignore[arg-type]


def test_reset_notice_is_json(channel: MemoryChannel, clock: Clock) -> None:
    """The reset notice's data is one JSON object a browser can parse."""
    channel.publish("kept")
    _, site = serve(channel, clock)
    client: Client = request(site, path=b"/events?lastEventId=gone")
    notice = client.events()[0]
    assert json.loads(notice.data)["oldest_id"] == channel.last_id
    client.disconnect()


def test_bad_final_retry_is_refused(channel: MemoryChannel) -> None:
    """EventStreamService refuses a negative or non-numeric final retry at construction."""
    resource = EventStreamResource(channel)
    for value in (-1, "5"):
        with pytest.raises(ValueError, match="final_retry must be"):
            EventStreamService(resource, final_retry=value)  # type: ignore[arg-type]


def test_broadcast_is_one_http_chunk_per_subscriber(channel: MemoryChannel, clock: Clock) -> None:
    """Each HTTP/1.1 subscriber gets a broadcast as exactly one well-framed chunk."""
    _, site = serve(channel, clock)
    clients = [request(site) for _ in range(3)]
    before = [len(client.transport.value()) for client in clients]
    channel.publish("once")
    payload = format_event("once", id=channel.last_id)
    chunk = b"%x\r\n%s\r\n" % (len(payload), payload)
    assert [c.transport.value()[n:] for c, n in zip(clients, before, strict=True)] == [chunk] * 3
    for client in clients:
        assert client.events() == [Event("once", id=channel.last_id or "")]
        client.disconnect()


def test_backlog_goes_out_as_one_chunk_per_piece(channel: MemoryChannel, clock: Clock) -> None:
    """Events that waited for a paused client go out joined: one write and chunk, not one each."""
    _, site = serve(channel, clock)
    client = request(site)
    client.http.pauseProducing()
    sent = [channel.publish(str(n)) for n in range(10)]
    before = len(client.transport.value())
    client.http.resumeProducing()
    payload = b"".join(format_event(str(n), id=id) for n, id in enumerate(sent))
    assert client.transport.value()[before:] == b"%x\r\n%s\r\n" % (len(payload), payload)
    assert [e.id for e in client.events()] == sent
    client.disconnect()


def test_access_log_counts_fast_path_bytes(channel: MemoryChannel, clock: Clock) -> None:
    """Bytes written on the fast path still count in the request's sentLength."""
    resource, site = serve(channel, clock)
    client = request(site)
    (stream,) = resource._streams
    channel.publish("counted")
    assert stream.request.sentLength == len(client.body)
    client.disconnect()


def test_keepalive_skips_pending_subscriptions(clock: Clock) -> None:
    """A stream still waiting for its channel gets no keep-alive before its headers."""
    channel = AsyncChannel()
    _, site = serve(channel, clock, keepalive=1.0)
    ready, waiting = request(site), request(site)
    channel.pending[0][2].callback(Replay())
    clock.advance(1.0)
    assert ready.comments() == [Comment(""), Comment("")]
    assert waiting.transport.value() == b""
    ready.disconnect()
    waiting.disconnect()
    assert clock.getDelayedCalls() == []
