"""UpstreamRelay with a Clock, an in-memory agent and a scripted lease: who relays, from where."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from tests.helpers.memagent import MemoryAgent
from txsse.errors import ChannelUnavailable
from txsse.hub._relay import UpstreamRelay


class ScriptedLease:
    """A lease whose answers the test sets; records releases."""

    ttl = 3.0

    def __init__(self) -> None:
        self.held: bool | None = True  # None: Redis unreachable
        self.released = 0

    def acquire(self) -> Deferred[bool]:
        if self.held is None:
            return fail(ChannelUnavailable("down"))
        return succeed(self.held)

    def release(self) -> Deferred[bool]:
        self.released += 1
        return succeed(True)


def make(lease: ScriptedLease, positions: list[str | None]) -> tuple[Any, ...]:
    clock = Clock()
    agent = MemoryAgent(clock)
    published: list[tuple[str, str | None, str]] = []

    def publish(data: str, event: str | None, upstream_id: str) -> str:
        published.append((data, event, upstream_id))
        return "id"

    relay = UpstreamRelay(
        "t", "http://up.example/s", publish, reactor=clock, agent=agent, lease=lease,
        resume=lambda: succeed(positions.pop(0)),
    )  # fmt: skip
    return clock, agent, relay, published


def test_relays_only_while_holding_the_lease_and_resumes_from_the_stored_id() -> None:
    """Held: connect after the stored upstream id; lost: disconnect; held again: resume."""
    lease = ScriptedLease()
    clock, agent, relay, published = make(lease, ["u3", "u4"])
    relay.startService()
    assert relay.relaying and agent.last.header("Last-Event-ID") == "u3"
    response = agent.last.respond()
    response.write(b"id: u4\nevent: kind\ndata: hello\n\n")
    assert published == [("hello", "kind", "u4")]

    lease.held = False
    clock.advance(1.0)  # renewals run every min(ttl / 3, 1) s
    assert not relay.relaying and response.stopped

    lease.held = None  # Redis unreachable: no change either way
    clock.advance(1.0)
    assert not relay.relaying and len(agent.requests) == 1

    lease.held = True
    clock.advance(1.0)
    assert relay.relaying and agent.last.header("Last-Event-ID") == "u4"
    assert len(agent.requests) == 2

    relay.stopService()
    assert lease.released == 1 and not relay.relaying
    assert clock.getDelayedCalls() == []


def test_without_the_lease_nothing_connects_and_stopping_releases_nothing() -> None:
    """A process that never gets the lease never connects upstream."""
    lease = ScriptedLease()
    lease.held = False
    clock, agent, relay, _ = make(lease, [])
    relay.startService()
    clock.advance(5.0)
    assert agent.requests == [] and not relay.relaying
    relay.stopService()
    assert lease.released == 0
    assert clock.getDelayedCalls() == []
