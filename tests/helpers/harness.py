"""Shared set-up for the deterministic client tests: a Clock, a MemoryAgent, sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.task import Clock

from tests.helpers.memagent import MemoryAgent
from txsse import EventSource


@dataclass
class Harness:
    """A clock, an agent, and every source built through :meth:`source`."""

    clock: Clock = field(default_factory=Clock)
    agent: MemoryAgent = field(init=False)
    sources: list[EventSource] = field(default_factory=list)
    #: Answer through txsse's own HTTP/1.1 client protocol (the default path)
    #: instead of a response object as an ``agent=`` gives.
    http11: bool = False

    def __post_init__(self) -> None:
        self.agent = MemoryAgent(self.clock, http11=self.http11)

    def source(self, url: str = "http://example.test/events", **kw: Any) -> EventSource:
        """An EventSource on the clock and agent, no jitter unless asked."""
        kw.setdefault("reactor", self.clock)
        kw.setdefault("agent", self.agent)
        kw.setdefault("jitter", 0.0)
        source = EventSource(url, **kw)
        self.sources.append(source)
        return source

    def started(self, url: str = "http://example.test/events", **kw: Any) -> EventSource:
        """A started source."""
        source = self.source(url, **kw)
        source.startService()
        return source

    def record(self, source: EventSource, *signals: str) -> list[tuple[str, Any]]:
        """Record the given signals of ``source`` as (name, value) pairs."""
        seen: list[tuple[str, Any]] = []
        for name in signals:
            source.on(name, _recorder(seen, name))  # type: ignore[arg-type]
        return seen


def _recorder(seen: list[tuple[str, Any]], name: str) -> Callable[[Any], None]:
    return lambda value: seen.append((name, value))


def results(d: Any) -> list[Any]:
    """Collect the result (or Failure) of a Deferred."""
    out: list[Any] = []
    d.addBoth(out.append)
    return out


@pytest.fixture(params=["agent", "http11"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A Harness, once per delivery path; after the test, checks no timer leaked."""
    h = Harness(http11=request.param == "http11")
    yield h
    for source in h.sources:
        source.close()
    assert h.clock.getDelayedCalls() == [], "a timer leaked"
