"""EventSource with client= a treq client, against txsse's own EventStreamResource in memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.util import Redirect

from tests.helpers.harness import results
from txsse import Event, EventSource, ReadyState
from txsse.errors import ConnectTimeout
from txsse.server import EventStreamResource, MemoryChannel

URL = "http://example.test/events"


class Recording(Resource):
    """A root that records each request's headers, then serves its children."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []

    def getChildWithDefault(self, path: bytes, request: Any) -> Any:
        self.seen.append(
            {
                k.decode().lower(): v[0].decode()
                for k, v in request.requestHeaders.getAllRawHeaders()
            }
        )
        return super().getChildWithDefault(path, request)


@dataclass
class Served:
    """A channel served in memory, a treq stub over it, and a clock."""

    clock: Clock = field(default_factory=Clock)
    channel: MemoryChannel = field(default_factory=lambda: MemoryChannel(history=100))
    root: Recording = field(default_factory=Recording)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sources: list[EventSource] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.putChild(
            b"events", EventStreamResource(self.channel, keepalive=None, reactor=self.clock)
        )
        self.root.putChild(b"elsewhere", Redirect(b"http://other.test/events"))
        self.stub = StubTreq(self.root)
        request = self.stub.request

        def spy(method: str, url: str, **kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return request(method, url, **kwargs)

        self.stub.request = spy

    def source(self, url: str = URL, **kw: Any) -> EventSource:
        """A started source over the stub."""
        source = EventSource(url, client=self.stub, reactor=self.clock, jitter=0.0, **kw)
        self.sources.append(source)
        source.startService()
        self.flush()
        return source

    def publish(self, *data: str) -> None:
        """Publish events and let them through the in-memory connection."""
        for item in data:
            self.channel.publish(item)
        self.flush()

    def flush(self) -> None:
        """Pump the in-memory connections and run the reactor's next turn."""
        self.stub.flush()
        self.clock.advance(0)


@pytest.fixture
def served() -> Iterator[Served]:
    """A Served; its sources are closed after the test."""
    running = Served()
    yield running
    for source in running.sources:
        source.close()
    running.flush()


def taken(source: EventSource) -> list[str]:
    """The data of every queued event."""
    out = []
    while source.queue.pending:
        out += [event.data for event in results(source.next())]
    return out


def test_streams_through_treq(served: Served) -> None:
    """Events published after the open arrive through treq, in order."""
    source = served.source()
    assert source.ready_state == ReadyState.OPEN
    served.publish("one", "two")
    served.publish("three")
    assert taken(source) == ["one", "two", "three"]


def test_requests_are_unbuffered_and_redirects_left_to_the_source(served: Served) -> None:
    """Every treq request has unbuffered=True and allow_redirects=False."""
    served.source()
    assert served.calls
    for call in served.calls:
        assert call["unbuffered"] is True
        assert call["allow_redirects"] is False


def test_resumes_from_last_event_id(served: Served) -> None:
    """After a restart the request carries Last-Event-ID; the resource replays what followed."""
    source = served.source()
    served.publish("a", "b")
    [first, second] = [results(source.next())[0] for _ in range(2)]
    assert isinstance(first, Event) and second.data == "b"
    source.restart()
    served.channel.publish("c")
    served.flush()
    assert served.root.seen[-1]["last-event-id"] == second.id
    assert taken(source) == ["c"]


def test_cross_origin_redirect_drops_credentials(served: Served) -> None:
    """A redirect through treq is followed by the source, which drops Authorization."""
    source = served.source(
        "http://example.test/elsewhere", headers={"Authorization": "Bearer secret"}
    )
    assert served.root.seen[0]["authorization"] == "Bearer secret"
    assert "authorization" not in served.root.seen[1]
    assert source.ready_state == ReadyState.OPEN


def test_connect_timeout_cancels_the_treq_request() -> None:
    """A connect timeout cancels the request the treq client is still waiting for."""
    clock = Clock()
    cancelled: list[Deferred[object]] = []

    class Pending:
        def request(self, method: str, url: str, **kwargs: object) -> Deferred[object]:
            return Deferred(cancelled.append)

    source = EventSource(URL, client=Pending(), reactor=clock, connect_timeout=5.0, jitter=0.0)
    source.startService()
    clock.advance(5.0)
    assert len(cancelled) == 1
    assert isinstance(source.last_error, ConnectTimeout)
    source.close()
    assert clock.getDelayedCalls() == []


def test_agent_and_client_together_refused() -> None:
    """agent= and client= are two ways to send requests: giving both is a ValueError."""
    with pytest.raises(ValueError, match="not both"):
        EventSource(URL, agent=object(), client=object())  # type: ignore[arg-type]


def test_docs_treq_example_runs() -> None:
    """The StubTreq example in docs/client.md runs as written."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "client.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "StubTreq" in b]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    namespace["source"].close()
    assert namespace["clock"].getDelayedCalls() == []
