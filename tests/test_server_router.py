"""ChannelRouter: several named channels on one site, and a default for unknown names."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.helpers.memhttp import make_site, request
from txsse.server import ChannelRouter, MemoryChannel


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
    assert request(site, b"/events/c").status == 404
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
