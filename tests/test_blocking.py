"""txsse.blocking.EventSource from plain threads against a real loopback server."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.helpers.blocking_server import LoopbackServer
from tests.helpers.system import free_port
from tests.helpers.waiting import block_until
from txsse import Event, ReadyState
from txsse._blocking import reactor_thread
from txsse.blocking import EventSource, shutdown
from txsse.errors import (
    ContentTypeError,
    HTTPStatusError,
    NetworkError,
    NoContent,
    StreamClosed,
)
from txsse.metrics import instrument_source

WAIT = 10.0


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A loopback event-stream server in the shared reactor thread."""
    started = LoopbackServer(reactor_thread())
    try:
        yield started
    finally:
        started.stop()


def test_iterates_over_events(server: LoopbackServer) -> None:
    """Events sent by the server come out of a for loop, in order, with their fields."""
    got: list[Event] = []
    with EventSource(server.url) as source:
        source.when_open(timeout=WAIT)
        server.send(b"data: one\n\nevent: update\nid: 2\ndata: two\n\n")
        for event in source:
            got.append(event)
            if len(got) == 2:
                break
        assert source.last_event_id == "2"
        assert source.ready_state == ReadyState.OPEN
    assert got == [Event("one"), Event("two", event="update", id="2")]
    assert source.ready_state == ReadyState.CLOSED


def test_two_sources_at_once_from_two_threads(server: LoopbackServer) -> None:
    """Two sources read by two threads each get every event, on one shared reactor thread."""
    results: dict[str, list[str]] = {}
    ready = threading.Barrier(3, timeout=WAIT)

    def reader(name: str) -> None:
        with EventSource(server.url) as source:
            source.when_open(timeout=WAIT)
            ready.wait()
            results[name] = [source.next(timeout=WAIT).data for _ in range(3)]

    threads = [threading.Thread(target=reader, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    ready.wait()
    server.send(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")
    for thread in threads:
        thread.join(WAIT)
    assert results == {"a": ["1", "2", "3"], "b": ["1", "2", "3"]}
    names = [t.name for t in threading.enumerate()]
    assert names.count("txsse-reactor") == 1


def test_close_from_another_thread_wakes_next(server: LoopbackServer) -> None:
    """close() from another thread makes a waiting next() raise StreamClosed."""
    source = EventSource(server.url)
    source.when_open(timeout=WAIT)
    outcome: list[BaseException] = []
    waiting = threading.Event()

    def wait_for_event() -> None:
        waiting.set()
        try:
            source.next(timeout=WAIT)
        except BaseException as e:
            outcome.append(e)

    reader = threading.Thread(target=wait_for_event)
    reader.start()
    assert waiting.wait(WAIT)
    # The reader is (or is about to be) blocked in next(): either way it must wake.
    source.close()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StreamClosed)
    with pytest.raises(StreamClosed):
        source.next(timeout=WAIT)
    assert list(source) == []
    block_until(lambda: server.clients() == 0)


def test_timeout_raises_and_loses_nothing(server: LoopbackServer) -> None:
    """next(timeout) raises TimeoutError when nothing comes; a later event still arrives."""
    with EventSource(server.url) as source:
        source.when_open(timeout=WAIT)
        with pytest.raises(TimeoutError, match=r"within 0\.05 seconds"):
            source.next(timeout=0.05)
        server.send(b"data: after\n\n")
        assert source.next(timeout=WAIT).data == "after"


def test_reconnects_with_last_event_id(server: LoopbackServer) -> None:
    """When the server ends the stream, the source reconnects sending Last-Event-ID."""
    with EventSource(server.url, reconnect_delay=0.01, jitter=0.0) as source:
        source.when_open(timeout=WAIT)
        server.send(b"id: 7\ndata: x\n\n")
        assert source.next(timeout=WAIT).id == "7"
        server.end_streams()
        block_until(lambda: len(server.resource.requests) == 2 and server.clients() == 1)
        assert server.resource.requests[1]["last-event-id"] == "7"
        server.send(b"data: y\n\n")
        assert source.next(timeout=WAIT).data == "y"


@pytest.mark.parametrize(
    ("path", "error"),
    [("/status/204", NoContent), ("/status/404", HTTPStatusError), ("/text", ContentTypeError)],
)
def test_errors_surface_with_their_types(
    server: LoopbackServer, path: str, error: type[Exception]
) -> None:
    """A failed stream raises the asynchronous API's exception type in the caller's thread."""
    with EventSource(server.url_for(path), policy="strict") as source:
        with pytest.raises(error):
            source.next(timeout=WAIT)
        with pytest.raises(error):
            list(source)
        assert isinstance(source.last_error, error)
        assert source.ready_state == ReadyState.CLOSED


def test_bad_options_raise_in_the_caller() -> None:
    """Invalid options raise the same exceptions as txsse.EventSource; reactor= is refused."""
    with pytest.raises(ValueError, match="queue_size"):
        EventSource("http://127.0.0.1:1/events", queue_size=-1)
    with pytest.raises(TypeError, match="reactor"):
        EventSource("http://127.0.0.1:1/events", reactor=object())


def test_callbacks_run_in_the_reactor_thread(server: LoopbackServer) -> None:
    """Listeners and signals are called in the reactor thread; close() works from them."""
    seen: list[tuple[str, bool]] = []
    done = threading.Event()
    with EventSource(server.url) as source:
        thread = reactor_thread()

        def on_update(event: Event) -> None:
            seen.append((event.data, thread.in_reactor_thread()))
            source.close()
            done.set()

        source.add_listener("update", on_update)
        states: list[ReadyState] = []
        source.on("state", states.append)
        source.when_open(timeout=WAIT)
        server.send(b"event: update\ndata: u\n\n")
        assert done.wait(WAIT)
    assert seen == [("u", True)]
    assert states[-1] == ReadyState.CLOSED


def test_blocking_call_from_a_callback_is_refused(server: LoopbackServer) -> None:
    """Calling next() inside a reactor-thread callback raises instead of deadlocking."""
    errors: list[BaseException] = []
    done = threading.Event()
    with EventSource(server.url) as source:

        def on_message(event: Event) -> None:
            try:
                source.next()
            except RuntimeError as e:
                errors.append(e)
            done.set()

        source.add_listener("message", on_message)
        source.when_open(timeout=WAIT)
        server.send(b"data: m\n\n")
        assert done.wait(WAIT)
        assert source.next(timeout=WAIT).data == "m"
    assert len(errors) == 1 and "reactor thread" in str(errors[0])


@pytest.mark.slow
def test_ctrl_c_interrupts_a_waiting_next() -> None:
    """SIGINT while the main thread waits in next() raises KeyboardInterrupt promptly."""
    script = textwrap.dedent(
        """
        import sys
        from tests.helpers.blocking_server import LoopbackServer
        from txsse._blocking import reactor_thread
        from txsse.blocking import EventSource
        server = LoopbackServer(reactor_thread())
        source = EventSource(server.url)
        source.when_open(timeout=10)
        try:
            print("waiting", flush=True)
            source.next(timeout=60)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        source.close()
        server.send(b"data: late\\n\\n")
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "waiting\n"
        child.send_signal(subprocess.signal.SIGINT)  # type: ignore[attr-defined]
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out == "interrupted\n"


def test_metrics_observe_a_blocking_source(server: LoopbackServer) -> None:
    """txsse.metrics counts a blocking source's events, like an asynchronous one's."""
    registry = CollectorRegistry()
    with EventSource(server.url) as source:
        instrument_source(source, name="b", registry=registry)
        source.when_open(timeout=WAIT)
        server.send(b"data: 1\n\ndata: 2\n\n")
        assert [source.next(timeout=WAIT).data for _ in range(2)] == ["1", "2"]
        assert registry.get_sample_value("txsse_client_events_total", {"stream": "b"}) == 2
        assert registry.get_sample_value("txsse_client_ready_state", {"stream": "b"}) == 1


def test_forgotten_source_is_closed(server: LoopbackServer) -> None:
    """A blocking source dropped without close() is closed, not left reconnecting forever."""
    source = EventSource(server.url)
    source.when_open(timeout=WAIT)
    assert server.clients() == 1
    del source
    gc.collect()
    block_until(lambda: server.clients() == 0)


def test_shutdown_wakes_waiters_and_a_new_thread_starts() -> None:
    """shutdown() makes a waiting next() raise StreamClosed; the next source gets a new thread."""
    first = reactor_thread()
    server = LoopbackServer(first)
    source = EventSource(server.url)
    source.when_open(timeout=WAIT)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(outcome, source.next))
    reader.start()
    server.stop()  # the source keeps waiting, reconnecting
    shutdown()
    reader.join(WAIT)
    assert len(outcome) == 1 and isinstance(outcome[0], StreamClosed)
    source.close()  # idempotent, even with the reactor gone
    with pytest.raises(StreamClosed):
        source.when_open(timeout=WAIT)
    with pytest.raises(StreamClosed):
        source.ready_state  # noqa: B018
    again = LoopbackServer(reactor_thread())
    try:
        assert reactor_thread() is not first
        with EventSource(again.url) as other:
            other.when_open(timeout=WAIT)
            again.send(b"data: fresh\n\n")
            assert other.next(timeout=WAIT).data == "fresh"
    finally:
        again.stop()


def _catch(outcome: list[BaseException], call: Any) -> None:
    try:
        call()
    except BaseException as error:
        outcome.append(error)


def test_many_events_arrive_in_order(server: LoopbackServer) -> None:
    """A burst larger than one batch comes out complete and in order."""
    with EventSource(server.url) as source:
        source.when_open(timeout=WAIT)
        server.send(b"".join(b"data: %d\n\n" % i for i in range(1000)))
        assert [int(source.next(timeout=WAIT).data) for _ in range(1000)] == list(range(1000))


def test_close_forgets_events_already_fetched(server: LoopbackServer) -> None:
    """After close() (no drain), next() raises StreamClosed even if events were fetched."""
    with EventSource(server.url) as source:
        source.when_open(timeout=WAIT)
        server.send(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")
        block_until(lambda: len(source._source.queue.pending) == 3)
        assert source.next(timeout=WAIT).data == "1"
        source.close()
        with pytest.raises(StreamClosed):
            source.next(timeout=WAIT)


def test_restart_reconnects_at_once(server: LoopbackServer) -> None:
    """restart() drops the connection and opens a new one, sending the last event ID."""
    with EventSource(server.url, reconnect_delay=30.0) as source:
        source.when_open(timeout=WAIT)
        server.send(b"id: a\nretry: 20000\ndata: x\n\n")
        assert source.next(timeout=WAIT).id == "a"
        assert source.reconnect_delay == 20.0
        source.restart()
        block_until(lambda: len(server.resource.requests) == 2 and server.clients() == 1)
        assert server.resource.requests[1]["last-event-id"] == "a"
        assert source.last_error is None


def test_when_open_timeout_carries_the_last_connection_error() -> None:
    """when_open(timeout) on a refused port: the TimeoutError names and chains the refusal."""
    url = f"http://127.0.0.1:{free_port()}/events"
    with EventSource(url, reconnect_delay=60.0, max_reconnect_delay=60.0) as source:
        block_until(lambda: source.last_error is not None, "the first attempt to fail", WAIT)
        with pytest.raises(TimeoutError) as caught:
            source.when_open(timeout=0.05)
    assert isinstance(caught.value.__cause__, NetworkError)
    assert "did not open within 0.05 seconds; the last attempt failed: " in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_when_open_fail_on_error_raises_the_refusal() -> None:
    """when_open(fail_on_error=True) on a refused port raises the NetworkError at once."""
    url = f"http://127.0.0.1:{free_port()}/events"
    with EventSource(url) as source, pytest.raises(NetworkError, match="Connection refused"):
        source.when_open(timeout=WAIT, fail_on_error=True)
