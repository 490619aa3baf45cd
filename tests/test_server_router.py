"""ChannelRouter: several named channels on one site, and a default for unknown names."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer

from tests.helpers.memhttp import make_site, request
from txsse.errors import ChannelLimitReached
from txsse.server import ChannelRouter, IEventChannel, MemoryChannel

pytestmark = pytest.mark.usefixtures("direct_writes")


def test_named_channels_are_separate() -> None:
    """Each name streams its own channel."""
    clock = Clock()
    news, sport = MemoryChannel(first_id=1), MemoryChannel(first_id=1)
    router = ChannelRouter({"news": news, "sport": sport}, reactor=clock)
    site = make_site(router, clock, b"streams")
    a, b = request(site, b"/streams/news"), request(site, b"/streams/sport")
    news.publish("n")
    sport.publish("s")
    assert [e.data for e in a.events()] == ["n"]
    assert [e.data for e in b.events()] == ["s"]
    assert router.channel("news") is news
    router.close()
    assert clock.getDelayedCalls() == []


def test_unknown_name_without_default_is_404() -> None:
    """Without a default, unknown names answer 404."""
    clock = Clock()
    site = make_site(ChannelRouter({"a": MemoryChannel()}, reactor=clock), clock)
    assert request(site, b"/events/b").status == 404
    assert request(site, b"/events/%ff").status == 404
    with pytest.raises(KeyError):
        ChannelRouter().channel("x")


def test_shared_default_channel() -> None:
    """A default channel serves every unknown name."""
    clock = Clock()
    shared = MemoryChannel(first_id=1)
    router = ChannelRouter(default=shared, reactor=clock)
    site = make_site(router, clock)
    a, b = request(site, b"/events/x"), request(site, b"/events/y")
    shared.publish("both")
    assert [e.data for e in a.events()] == [e.data for e in b.events()] == ["both"]
    assert router.channel("z") is shared
    router.close()


def test_default_factory_creates_one_channel_per_name() -> None:
    """A factory default creates a channel per name once, up to ``max_channels``."""
    clock = Clock()
    made: list[str] = []

    def factory(name: str) -> MemoryChannel:
        made.append(name)
        return MemoryChannel(first_id=1)

    router = ChannelRouter(default=factory, max_channels=2, reactor=clock)
    site = make_site(router, clock)
    a = request(site, b"/events/a")
    request(site, b"/events/a").disconnect()
    assert request(site, b"/events/b").status == 200
    refused = request(site, b"/events/c")
    assert refused.status == 503 and refused.header("retry-after") == ["60"]
    with pytest.raises(ChannelLimitReached, match="max_channels"):
        router.channel("c")
    assert made == ["a", "b"]
    router.channel("a").publish("hi")
    assert [e.data for e in a.events()] == ["hi"]
    router.close(retry=1, spread=False)
    a.pump()
    assert a.parser.retry == 1000


def test_bad_arguments() -> None:
    """Wrong defaults and duplicate names raise ValueError."""
    with pytest.raises(ValueError, match="default must be"):
        ChannelRouter(default=42)  # type: ignore[arg-type]
    router = ChannelRouter({"a": MemoryChannel()})
    with pytest.raises(ValueError, match="already routed"):
        router.add_channel("a", MemoryChannel())


def test_bad_max_channels() -> None:
    """``max_channels`` must be a non-negative int."""
    with pytest.raises(ValueError, match="max_channels must be a non-negative int"):
        ChannelRouter(default=MemoryChannel(), max_channels=-1)


@implementer(IEventChannel)
class ClosableChannel(MemoryChannel):
    """A memory channel that records ``close()`` calls and can hold publishes in flight."""

    def __init__(self) -> None:
        super().__init__(first_id=1)
        self.closed = 0
        self.in_flight: list[Deferred[str]] = []

    def close(self) -> None:
        self.closed += 1

    def publish_later(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.in_flight.append(d)
        return d


def idle_router(clock: Clock, **options: object) -> tuple[ChannelRouter, list[ClosableChannel]]:
    made: list[ClosableChannel] = []

    def factory(name: str) -> ClosableChannel:
        made.append(ClosableChannel())
        return made[-1]

    router = ChannelRouter(default=factory, reactor=clock, **options)  # type: ignore[arg-type]
    return router, made


def test_head_creates_no_channel() -> None:
    """HEAD of new names answers the stream headers and creates nothing, even past the limit."""
    clock = Clock()
    router, made = idle_router(clock, max_channels=2)
    site = make_site(router, clock)
    for i in range(10):
        head = request(site, b"/events/junk%d" % i, method=b"HEAD")
        assert head.status == 200
        assert head.header("content-type") == ["text/event-stream; charset=utf-8"]
    assert made == [] and router.channel_count == 0
    assert request(site, b"/events/real").status == 200
    assert router.channel_count == 1


def test_idle_channel_is_dropped_after_the_grace_period() -> None:
    """A made channel without streams is dropped idle_timeout s after its last stream ended."""
    clock = Clock()
    router, made = idle_router(clock, idle_timeout=10.0)
    site = make_site(router, clock)
    first = request(site, b"/events/a")
    clock.advance(60)
    assert router.channel_count == 1  # a stream keeps it
    second = request(site, b"/events/a")
    first.disconnect()
    clock.advance(60)
    assert router.channel_count == 1
    second.disconnect()
    clock.advance(9.5)
    assert router.channel_count == 1 and made[0].closed == 0
    clock.advance(0.5)
    assert router.channel_count == 0 and made[0].closed == 1
    assert clock.getDelayedCalls() == []
    assert request(site, b"/events/a").status == 200  # made again on next use
    assert len(made) == 2
    router.close()
    assert clock.getDelayedCalls() == []


def test_a_limit_makes_room_once_channels_are_idle() -> None:
    """Past max_channels a new name gets 503; once a channel is dropped the name is served."""
    clock = Clock()
    router, _ = idle_router(clock, max_channels=1, idle_timeout=5.0)
    site = make_site(router, clock)
    request(site, b"/events/a").disconnect()
    refused = request(site, b"/events/b")
    assert refused.status == 503 and refused.header("retry-after") == ["5"]
    clock.advance(5)
    assert request(site, b"/events/b").status == 200
    router.close()


def test_history_ttl_keeps_a_published_channel() -> None:
    """A channel published to stays history_ttl s after its last publish; unused ones go."""
    clock = Clock()
    router, made = idle_router(clock, idle_timeout=10.0, history_ttl=100.0)
    router.publish("kept", "x")
    router.channel("empty")
    clock.advance(10)
    assert router.channel_count == 1 and router.channel("kept") is made[0]
    clock.advance(50)
    router.publish("kept", "y")
    clock.advance(99)
    assert router.channel("kept") is made[0]
    assert [e for e in made[0]._ids] == ["1", "2"]
    clock.advance(1)
    assert router.channel_count == 0 and made[0].closed == 1
    assert clock.getDelayedCalls() == []


def test_a_publish_in_flight_keeps_its_channel() -> None:
    """A channel is not dropped while a publish through the router is in flight."""
    clock = Clock()
    router, made = idle_router(clock, idle_timeout=1.0)
    channel = router.channel("t")
    assert isinstance(channel, ClosableChannel)
    channel.publish = lambda *args, **kwargs: channel.publish_later()  # type: ignore[method-assign]
    result = router.publish("t", "x")
    clock.advance(30)
    assert router.channel_count == 1
    assert isinstance(result, Deferred)
    channel.in_flight[0].callback("1")
    assert router.channel_count == 1
    clock.advance(1)
    assert router.channel_count == 0 and made[0].closed == 1


def test_a_closed_router_refuses_new_names_until_reopened() -> None:
    """After close(), new names get 503 too and nothing is dropped; reopen() serves again."""
    clock = Clock()
    router, _ = idle_router(clock, idle_timeout=1.0)
    site = make_site(router, clock)
    router.close()
    assert request(site, b"/events/new").status == 503
    clock.advance(5)
    assert router.channel_count == 1 and clock.getDelayedCalls() == []
    router.reopen()
    assert request(site, b"/events/new").status == 200
    router.close()
