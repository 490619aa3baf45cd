"""SSEDaemon with a Clock and an in-memory agent: output, state file, filter, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogEvent

from tests.helpers.memagent import MemoryAgent
from tests.helpers.system import Full
from txsse import EventStreamParser
from txsse.daemon._exit import EXIT_IO_ERROR, EXIT_SOFTWARE, EXIT_STREAM_FAILED
from txsse.daemon._service import SSEDaemon
from txsse.daemon._state import StateFile
from txsse.errors import StateFileError

URL = "http://example.test/events"


class Run:
    """A daemon on a Clock and a MemoryAgent, writing into a temporary directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.agent = MemoryAgent(self.clock)
        self.out = tmp_path / "out.jsonl"
        self.state = tmp_path / "state"
        self.exits: list[int] = []
        self.daemons: list[SSEDaemon] = []

    def daemon(self, **kw: Any) -> SSEDaemon:
        kw.setdefault("output", str(self.out))
        kw.setdefault("state_file", str(self.state))
        kw.setdefault("reconnect_delay", 1.0)
        kw.setdefault("max_reconnect_delay", 2.0)
        daemon = SSEDaemon(
            URL, reactor=self.clock, agent=self.agent, on_exit=self.exits.append, **kw
        )
        self.daemons.append(daemon)
        return daemon

    def started(self, **kw: Any) -> SSEDaemon:
        daemon = self.daemon(**kw)
        daemon.startService()
        return daemon

    def lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.out.read_bytes().splitlines()]

    def saved(self) -> str | None:
        return StateFile(str(self.state)).load()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """A Run; afterwards every daemon is stopped and no timer may be left."""
    r = Run(tmp_path)
    yield r
    for daemon in r.daemons:
        if daemon.running:
            stopped: list[object] = []
            daemon.stopService().addBoth(stopped.append)
            assert stopped == [None]
    assert r.clock.getDelayedCalls() == [], "a timer leaked"


def test_writes_json_lines_and_saves_ids(run: Run) -> None:
    """Each event becomes one JSON line; the state file follows the last written ID."""
    daemon = run.started()
    body = run.agent.last.respond()
    body.write(b"id: 1\nevent: update\ndata: a\ndata: b\n\n")
    assert run.lines() == [{"event": "update", "data": "a\nb", "id": "1"}]
    assert run.saved() == "1"
    body.write(b"data: no id\n\nid: 2\ndata: c\n\n")
    assert [line["id"] for line in run.lines()] == ["1", "1", "2"]
    assert run.saved() == "2"
    daemon.stopService()
    assert body.stopped


def test_state_saved_after_output_flushed(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """When an ID is saved, its event is already in the output file."""
    seen: list[tuple[str, int]] = []
    real_save = StateFile.save

    def save(self: StateFile, last_event_id: str) -> None:
        seen.append((last_event_id, len(run.lines())))
        real_save(self, last_event_id)

    monkeypatch.setattr(StateFile, "save", save)
    run.started()
    run.agent.last.respond().write(b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
    assert seen == [("1", 1), ("2", 2)]


def test_resumes_from_state_file(run: Run) -> None:
    """At start the saved ID is sent as Last-Event-ID, winning over last_event_id."""
    StateFile(str(run.state)).save("41")
    run.started(last_event_id="7")
    assert run.agent.last.header("Last-Event-ID") == "41"


def test_last_event_id_without_state_file(run: Run) -> None:
    """Without a saved ID, last_event_id is sent; the state file is created on the first ID."""
    run.started(last_event_id="7")
    assert run.agent.last.header("Last-Event-ID") == "7"
    assert run.saved() is None
    run.agent.last.respond().write(b"data: x\n\n")
    assert run.lines() == [{"event": "message", "data": "x", "id": "7"}]
    assert run.saved() == "7"


def test_reconnects_with_last_written_id(run: Run) -> None:
    """After the server drops the stream the daemon reconnects from the last event."""
    run.started()
    body = run.agent.last.respond()
    body.write(b"id: 5\ndata: five\n\n")
    body.drop()
    run.clock.advance(10)
    assert len(run.agent.requests) == 2
    assert run.agent.last.header("Last-Event-ID") == "5"
    run.agent.last.respond().write(b"id: 6\ndata: six\n\n")
    assert [line["id"] for line in run.lines()] == ["5", "6"]


def test_request_options(run: Run) -> None:
    """Headers (repeated names joined), method and body reach the request."""
    run.started(
        headers=[("X-A", "1"), ("x-a", "2"), ("Authorization", "Bearer t")],
        method="POST",
        body=b"{}",
    )
    request = run.agent.last
    assert request.method == b"POST"
    assert request.body == b"{}"
    assert request.header("X-A") == "1, 2"
    assert request.header("Authorization") == "Bearer t"
    assert request.header("Accept") == "text/event-stream"


def test_filter_writes_some_types_but_saves_every_id(run: Run) -> None:
    """--event keeps only the given types; the state file still advances past the others."""
    run.started(event_types={"keep", "message"})
    run.agent.last.respond().write(
        b"id: 1\nevent: keep\ndata: a\n\nid: 2\nevent: drop\ndata: b\n\nid: 3\ndata: c\n\n"
        b"id: 4\nevent: drop\ndata: d\n\n"
    )
    assert [(line["event"], line["id"]) for line in run.lines()] == [
        ("keep", "1"),
        ("message", "3"),
    ]
    assert run.saved() == "4"


def test_sse_format(run: Run) -> None:
    """--format sse writes an event stream that parses back to the same events."""
    run.started(output_format="sse", last_event_id="0")
    sent = b"id: 1\nevent: u\ndata: a\ndata: b\n\ndata: same id\n\nid\nretry: 20\ndata: reset\n\n"
    run.agent.last.respond().write(sent)
    assert EventStreamParser("0").feed(run.out.read_bytes()) == EventStreamParser("0").feed(sent)


def test_no_state_file(run: Run) -> None:
    """Without a state file nothing is saved and the output is not fsynced."""
    run.started(state_file=None)
    run.agent.last.respond().write(b"id: 1\ndata: a\n\n")
    assert run.lines() == [{"event": "message", "data": "a", "id": "1"}]
    assert not run.state.exists()


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (404, {}, "answered HTTP 404"),
        (204, {}, "answered HTTP 204"),
        (200, {"Content-Type": "text/html"}, "not 'text/event-stream'"),
    ],
)
def test_permanent_failure_exits(
    run: Run, logged_errors: list[LogEvent], status: int, headers: dict[str, str], reason: str
) -> None:
    """A refusal is logged as critical with its reason and ends the process with status 1."""
    run.started()
    run.agent.last.respond(status, headers)
    assert run.exits == [EXIT_STREAM_FAILED]
    assert len(logged_errors) == 1
    assert reason in logged_errors[0]["reason"]
    assert logged_errors[0]["url"] == URL
    logged_errors.clear()
    assert len(run.agent.requests) == 1  # no retry


def test_transient_failure_retries(run: Run) -> None:
    """A 503 is retried (resilient policy) and logs no error; the daemon keeps running."""
    run.started()
    run.agent.last.respond(503, {})
    run.clock.advance(10)
    assert len(run.agent.requests) == 2
    assert run.exits == []


def test_strict_policy_fails_on_503(run: Run, logged_errors: list[LogEvent]) -> None:
    """With policy="strict" a 503 is permanent, as in browsers: status 1."""
    run.started(policy="strict")
    run.agent.last.respond(503, {})
    assert run.exits == [EXIT_STREAM_FAILED]
    assert "503" in logged_errors[0]["reason"]
    logged_errors.clear()


def test_idle_timeout_reconnects(run: Run) -> None:
    """No byte for idle_timeout seconds drops the stream and reconnects from the last ID."""
    run.started(idle_timeout=5.0, reconnect_delay=0.5, max_reconnect_delay=0.5)
    run.agent.last.respond().write(b"id: 1\ndata: a\n\n")
    run.clock.advance(4.9)
    assert len(run.agent.requests) == 1
    run.clock.advance(0.2)
    run.clock.advance(1.0)
    assert len(run.agent.requests) == 2
    assert run.agent.last.header("Last-Event-ID") == "1"


def test_no_idle_timeout_never_drops_a_quiet_stream(run: Run) -> None:
    """With idle_timeout=None a stream that stays silent for days is kept open."""
    run.started(idle_timeout=None)
    body = run.agent.last.respond()
    body.write(b"id: 1\ndata: a\n\n")
    run.clock.advance(7 * 24 * 3600.0)
    assert len(run.agent.requests) == 1
    body.write(b"id: 2\ndata: b\n\n")
    assert [line["id"] for line in run.lines()] == ["1", "2"]


def test_output_write_error_exits(run: Run, logged_errors: list[LogEvent]) -> None:
    """An event that cannot be written ends the process with status 74, ID not saved."""
    daemon = run.started()
    body = run.agent.last.respond()
    body.write(b"id: 1\ndata: a\n\n")
    assert daemon._writer is not None
    daemon._writer._file = Full(daemon._writer._file)  # type: ignore[assignment]
    body.write(b"id: 2\ndata: b\n\n")
    assert run.exits == [EXIT_IO_ERROR]
    assert run.saved() == "1"
    assert "No space left" in logged_errors[0]["reason"]
    logged_errors.clear()


def test_unexpected_error_exits(run: Run, logged_errors: list[LogEvent]) -> None:
    """A bug while recording an event is logged with its traceback; status 70."""
    daemon = run.started(state_file=None)
    body = run.agent.last.respond()
    assert daemon._writer is not None
    daemon._writer._file.close()  # writing to a closed file raises ValueError
    body.write(b"id: 2\ndata: b\n\n")
    assert run.exits == [EXIT_SOFTWARE]
    assert logged_errors[0]["log_failure"].check(ValueError)
    logged_errors.clear()


def test_unexpected_source_error_exits(run: Run, logged_errors: list[LogEvent]) -> None:
    """An unexpected failure of next() is logged with its traceback; status 70, no hang."""
    daemon = run.started()
    assert daemon._source is not None
    waiter = daemon._source.queue.waiting.pop()
    waiter.errback(RuntimeError("bug"))
    assert run.exits == [EXIT_SOFTWARE]
    assert logged_errors[0]["log_failure"].check(RuntimeError)
    logged_errors.clear()


def test_state_write_error_exits(
    run: Run, logged_errors: list[LogEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state file that cannot be saved ends the process with status 74."""

    def save(self: StateFile, last_event_id: str) -> None:
        raise StateFileError("cannot write state.tmp: No space left on device")

    monkeypatch.setattr(StateFile, "save", save)
    run.started()
    run.agent.last.respond().write(b"id: 1\ndata: a\n\n")
    assert run.exits == [EXIT_IO_ERROR]
    assert "No space left" in logged_errors[0]["reason"]
    logged_errors.clear()


def test_stop_closes_everything(run: Run) -> None:
    """Stopping the service aborts the stream, closes the output and fires."""
    daemon = run.started()
    body = run.agent.last.respond()
    writer = daemon._writer
    done: list[object] = []
    daemon.stopService().addBoth(done.append)
    assert done == [None]
    assert body.stopped
    assert writer is not None and writer._file.closed
    assert run.exits == []


def test_stop_before_response(run: Run) -> None:
    """Stopping while the request is pending cancels it."""
    daemon = run.started()
    daemon.stopService()
    assert run.agent.last.cancelled


def test_restart_resumes(run: Run) -> None:
    """A second daemon on the same files continues: nothing lost, nothing repeated."""
    first = run.started()
    run.agent.last.respond().write(b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
    first.stopService()
    run.started()
    assert run.agent.last.header("Last-Event-ID") == "2"
    run.agent.last.respond().write(b"id: 3\ndata: c\n\n")
    assert [line["id"] for line in run.lines()] == ["1", "2", "3"]
