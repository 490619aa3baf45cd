"""``twistd -n sse`` as a real subprocess against a loopback twisted.web server in the test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.helpers.system import TWISTD
from tests.helpers.waiting import until
from txsse import Event, EventStreamParser, format_event
from txsse.daemon._output import encode_json

pytestmark = pytest.mark.slow

TIMEOUT = 30.0


class Stream(Resource):
    """An event stream with a history: replays after Last-Event-ID, then publishes live."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.history: list[bytes] = []
        self.open: list[Any] = []
        self.last_event_ids: list[str | None] = []

    def render_GET(self, request: Any) -> int:
        last = request.getHeader(b"last-event-id")
        self.last_event_ids.append(last.decode() if last is not None else None)
        request.setHeader(b"content-type", b"text/event-stream")
        start = int(last) if last else 0
        for chunk in self.history[start:]:
            request.write(chunk)
        self.open.append(request)
        request.notifyFinish().addBoth(lambda _: self.open.remove(request))
        return NOT_DONE_YET

    def publish(self, data: str, event: str | None = None) -> str:
        event_id = str(len(self.history) + 1)
        chunk = format_event(data, event=event, id=event_id)
        self.history.append(chunk)
        for request in self.open:
            request.write(chunk)
        return event_id

    def drop_all(self) -> None:
        for request in list(self.open):
            request.channel.transport.abortConnection()


class Root(Resource):
    """The server's root: ``/events`` is the stream, anything else is a 404."""

    def getChild(self, path: bytes, request: Any) -> Resource:
        return notFound()


class Server:
    """A twisted.web server on 127.0.0.1 that can be restarted on the same port."""

    def __init__(self) -> None:
        root = Root()
        self.stream = Stream()
        root.putChild(b"events", self.stream)
        self.site = Site(root)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.number = self.port.getHost().port
        self.url = f"http://127.0.0.1:{self.number}/events"

    async def stop(self) -> None:
        await self.port.stopListening()
        self.stream.drop_all()
        await until(lambda: not self.stream.open, "connections to close", TIMEOUT)

    def start(self) -> None:
        self.port = reactor.listenTCP(self.number, self.site, interface="127.0.0.1")


class Daemon:
    """One ``twistd -n sse`` process writing to files in a directory."""

    def __init__(self, directory: Path, procs: list[subprocess.Popen[bytes]]) -> None:
        self.out = directory / "out.jsonl"
        self.state = directory / "state"
        self.log = directory / "twistd.log"
        self.stdout = directory / "stdout"
        self._procs = procs
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, twistd: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        """``twistd -n`` logging to a file, with ``twistd`` options, then ``sse args``."""
        return self.run(TWISTD, "-n", "--pidfile=", f"--logfile={self.log}", *twistd, "sse", *args)

    def run(self, *command: str) -> subprocess.Popen[bytes]:
        """Start ``command`` with its standard output and error going to ``self.stdout``."""
        with open(self.stdout, "ab") as stdout:
            self.proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT)
        self._procs.append(self.proc)
        return self.proc

    def consume(
        self, url: str, *args: str, twistd: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        return self.start(
            "--url",
            url,
            "--output",
            str(self.out),
            "--state-file",
            str(self.state),
            "--reconnect-delay",
            "0.1",
            "--max-reconnect-delay",
            "0.5",
            *args,
            twistd=twistd,
        )

    def lines(self) -> list[dict[str, str]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_bytes().splitlines()]

    def ids(self) -> list[str]:
        return [line["id"] for line in self.lines()]

    async def until_ids(self, *ids: str) -> None:
        await until(
            lambda: self.ids()[-len(ids) :] == list(ids), f"ids {ids} in the output", TIMEOUT
        )

    def saved(self) -> str:
        return json.loads(self.state.read_text())["last_event_id"]  # type: ignore[no-any-return]

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return await self.exited()

    async def exited(self) -> int:
        assert self.proc is not None
        proc = self.proc
        return await until(lambda: proc.poll() is not None, "the daemon to exit", TIMEOUT) and (
            proc.returncode
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by the test; any still running afterwards is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def server() -> Iterator[Server]:
    """The loopback event stream server."""
    s = Server()
    yield s
    s.stream.drop_all()
    s.port.stopListening()


@pytest.fixture
def daemon(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> Daemon:
    """A daemon writing into the test's temporary directory."""
    return Daemon(tmp_path, procs)


@pytest_twisted.ensureDeferred
async def test_writes_events_as_json_lines(server: Server, daemon: Daemon) -> None:
    """Each event arrives as one flushed JSON line; SIGTERM stops the daemon cleanly."""
    server.stream.publish("hello")
    daemon.consume(server.url)
    await daemon.until_ids("1")
    server.stream.publish("two\nlines é", event="update")
    await daemon.until_ids("1", "2")
    assert daemon.lines() == [
        {"event": "message", "data": "hello", "id": "1"},
        {"event": "update", "data": "two\nlines é", "id": "2"},
    ]
    assert await daemon.stop() in (0, -signal.SIGTERM)
    assert daemon.saved() == "2"
    assert "Server Shut Down" in daemon.log_text()


@pytest_twisted.ensureDeferred
async def test_server_restart_resumes_with_last_event_id(server: Server, daemon: Daemon) -> None:
    """After a server restart the daemon reconnects with Last-Event-ID and misses nothing."""
    daemon.consume(server.url)
    await until(lambda: server.stream.open, "the daemon to connect", TIMEOUT)
    server.stream.publish("a")
    server.stream.publish("b")
    await daemon.until_ids("1", "2")
    await server.stop()
    server.stream.publish("c")  # published while the server is down
    await until(lambda: "Reconnecting to" in daemon.log_text(), "a reconnection log", TIMEOUT)
    server.start()
    server.stream.publish("d")
    await daemon.until_ids("1", "2", "3", "4")
    assert server.stream.last_event_ids == [None, "2"]
    assert daemon.ids() == ["1", "2", "3", "4"]
    log = daemon.log_text()
    assert "Reconnecting to" in log and " s (attempt " in log  # when the retry comes


@pytest_twisted.ensureDeferred
async def test_sigterm_and_restart_resume_from_state_file(server: Server, daemon: Daemon) -> None:
    """A daemon stopped with SIGTERM and started again loses and repeats nothing."""
    for data in "abc":
        server.stream.publish(data)
    daemon.consume(server.url)
    await daemon.until_ids("1", "2", "3")
    await daemon.stop(signal.SIGTERM)
    assert daemon.saved() == "3"
    server.stream.publish("d")
    server.stream.publish("e")
    daemon.consume(server.url)
    await daemon.until_ids("4", "5")
    assert server.stream.last_event_ids == [None, "3"]
    assert daemon.ids() == ["1", "2", "3", "4", "5"]


@pytest_twisted.ensureDeferred
async def test_sigkill_repeats_at_most_the_last_event(server: Server, daemon: Daemon) -> None:
    """After kill -9 the restarted daemon loses nothing and repeats at most one event."""
    daemon.consume(server.url)
    await until(lambda: server.stream.open, "the daemon to connect", TIMEOUT)
    for i in range(50):
        server.stream.publish(f"event {i}")
    await until(lambda: len(daemon.ids()) >= 20, "some events", TIMEOUT)
    await daemon.stop(signal.SIGKILL)
    written = daemon.ids()
    server.stream.publish("after the kill")
    daemon.consume(server.url)
    await daemon.until_ids("51")
    ids = [int(i) for i in daemon.ids()]
    resumed = len(written)
    assert ids[:resumed] == list(range(1, resumed + 1))
    assert ids[resumed:] in (list(range(resumed, 52)), list(range(resumed + 1, 52)))


@pytest_twisted.ensureDeferred
async def test_404_exits_non_zero_with_reason(server: Server, daemon: Daemon) -> None:
    """A 404 is permanent: the reason is logged and twistd exits with status 1."""
    daemon.consume(server.url.replace("/events", "/missing"), twistd=("--reactor=poll",))
    assert await daemon.exited() == 1
    log = daemon.log_text()
    assert "answered HTTP 404" in log and "stopping" in log
    for line in log.splitlines():  # the URL once, not "URL: URL answered..."
        assert line.count("/missing") <= 1, line
    assert "PollReactor" in log
    assert len(server.stream.last_event_ids) == 0


def test_invalid_option_is_a_usage_error(daemon: Daemon) -> None:
    """An invalid option exits with status 1 and a message, before anything starts."""
    proc = daemon.start("--url", "http://127.0.0.1:1/", "--idle-timeout", "-5")
    assert proc.wait(TIMEOUT) == 1
    output = daemon.stdout.read_text()
    assert "--idle-timeout" in output and "0 or more" in output
    assert not daemon.log.exists()


@pytest_twisted.ensureDeferred
async def test_demo_prints_events(daemon: Daemon) -> None:
    """``twistd -n --pidfile= sse --demo`` (the README's command) prints events within seconds."""
    daemon.run(TWISTD, "--nodaemon", "--pidfile=", "sse", "--demo")

    def events() -> list[dict[str, str]]:
        lines = daemon.stdout.read_bytes().splitlines()
        return [json.loads(line) for line in lines if line.startswith(b"{")]

    got = await until(lambda: len(events()) >= 2 and events(), "two demo events", 15.0)
    first, second = int(got[0]["id"]), int(got[1]["id"])
    assert second == first + 1
    tick = next(e for e in got if e["event"] == "tick")
    assert json.loads(tick["data"])["n"] == int(tick["id"])
    assert await daemon.stop() in (0, -signal.SIGTERM)


@pytest_twisted.ensureDeferred
async def test_daemonized_with_pidfile(server: Server, tmp_path: Path, daemon: Daemon) -> None:
    """Without -n, twistd forks, writes its PID file, and the daemon still writes events."""
    pidfile = tmp_path / "twistd.pid"
    server.stream.publish("x")
    command = [
        TWISTD,
        f"--pidfile={pidfile}",
        f"--logfile={daemon.log}",
        f"--rundir={tmp_path}",
        "sse",
        "--url",
        server.url,
        "--output",
        str(daemon.out),
    ]
    assert subprocess.run(command, timeout=TIMEOUT, check=False).returncode == 0
    pid = int(await until(lambda: pidfile.exists() and pidfile.read_text().strip(), "pid", TIMEOUT))
    try:
        await daemon.until_ids("1")
    finally:
        os.kill(pid, signal.SIGTERM)
    await until(lambda: not pidfile.exists(), "the PID file to be removed", TIMEOUT)


@pytest_twisted.ensureDeferred
async def test_with_syslog(server: Server, daemon: Daemon) -> None:
    """With twistd's --syslog (and --prefix) instead of a log file the daemon works the same."""
    server.stream.publish("via syslog")
    daemon.run(
        *(TWISTD, "-n", "--pidfile=", "--syslog", "--prefix=txsse-test", "sse"),
        *("--url", server.url, "--output", str(daemon.out)),
    )
    await daemon.until_ids("1")
    assert await daemon.stop() in (0, -signal.SIGTERM)
    assert b"Traceback" not in daemon.stdout.read_bytes()


def test_twistd_option_after_sse_says_where_it_goes(daemon: Daemon) -> None:
    """``twistd sse -n`` shows the plugin's usage line and says twistd's options go first."""
    proc = daemon.run(TWISTD, "sse", "-n")
    assert proc.wait(TIMEOUT) == 1
    output = daemon.stdout.read_text()
    assert output.startswith("Usage: twistd [twistd options] sse (--url URL | --demo) [options]\n")
    assert "option -n not recognized: -n is an option of twistd itself" in output
    assert "twistd's options go before 'sse'" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--state-file: cannot write {state}: Not a directory"),
        ('{"version": 9, "last_event_id": "1"}', "is a version 9 state file"),
    ],
)
def test_state_file_errors_name_the_cause(
    tmp_path: Path, daemon: Daemon, content: str | None, message: str
) -> None:
    """A state file under a plain file, or of an unknown version: one usage line saying so."""
    state = tmp_path / "plain" / "state"
    if content is None:
        (tmp_path / "plain").write_text("")
    else:
        state.parent.mkdir()
        state.write_text(content)
    proc = daemon.start("--url", "http://127.0.0.1:1/", "--state-file", str(state))
    assert proc.wait(TIMEOUT) == 1
    output = daemon.stdout.read_text()
    assert message.format(state=state) in output
    assert "Traceback" not in output


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_metrics_port_in_use_is_one_line(daemon: Daemon) -> None:
    """``--metrics`` on a port in use ends twistd with one line naming the option and port."""
    pytest.importorskip("prometheus_client")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = f"tcp:{port}:interface=127.0.0.1"
        proc = daemon.start("--demo", "--metrics", metrics)
        assert proc.wait(TIMEOUT) == 1
    log = daemon.log_text()
    assert f"--metrics {metrics}: cannot listen on 127.0.0.1:{port}: Address already in use" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("output_format", ["json", "sse"])
@pytest_twisted.ensureDeferred
async def test_restart_cuts_a_torn_last_event(
    server: Server, daemon: Daemon, output_format: str
) -> None:
    """An output ending with part of an event (disk was full) is cut before the replay."""
    server.stream.publish("one")
    server.stream.publish("two")
    torn = b'{"event": "message", "data": "two", "i' if output_format == "json" else b"id: 2\nda"
    daemon.out.write_bytes(
        encode_json(Event("one", id="1")) if output_format == "json" else b"id: 1\ndata: one\n\n"
    )
    with open(daemon.out, "ab") as out:
        out.write(torn)
    daemon.state.write_text('{"version": 1, "last_event_id": "1"}\n')
    daemon.consume(server.url, "--format", output_format)

    def events() -> list[Event]:
        data = daemon.out.read_bytes()
        if output_format == "sse":
            return EventStreamParser().feed(data)
        return [Event(e["data"], id=e["id"]) for e in map(json.loads, data.splitlines())]

    await until(lambda: "cut them" in daemon.log_text(), "the torn event to be cut", TIMEOUT)
    await until(lambda: len(events()) == 2, "the replayed event", TIMEOUT)
    assert events() == [Event("one", id="1"), Event("two", id="2")]
    assert await daemon.stop() in (0, -signal.SIGTERM)
    assert "bytes of an incomplete event; cut them" in daemon.log_text()


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def demo_script(*args: str) -> subprocess.Popen[bytes]:
    """``./scripts/demo args`` in this test's virtualenv, standard output and error piped."""
    env = dict(os.environ, TXSSE_VENV=sys.prefix)
    return subprocess.Popen(
        [str(SCRIPTS / "demo"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def test_demo_script_stdout_is_json_lines_only(procs: list[subprocess.Popen[bytes]]) -> None:
    """``./scripts/demo | head -3``: every line of standard output is JSON; the log is on stderr."""
    proc = demo_script()
    procs.append(proc)
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.terminate()
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert [json.loads(line)["id"] for line in lines] == ["1", "2", "3"]
    assert b"demo event stream at" in stderr and b"Server Shut Down" in stderr


def test_demo_script_ends_when_its_reader_goes(procs: list[subprocess.Popen[bytes]]) -> None:
    """``./scripts/demo | head -1``: once the reader is gone the demo exits (74, EX_IOERR)."""
    proc = demo_script()
    procs.append(proc)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["id"] == "1"
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 74
    assert b"Broken pipe" in stderr


def test_demo_script_passes_twistd_options_to_twistd(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """``./scripts/demo --logfile FILE -e tick``: --logfile reaches twistd, -e reaches sse."""
    log = tmp_path / "demo.log"
    proc = demo_script("--logfile", str(log), "-e", "tick")
    procs.append(proc)
    assert proc.stdout is not None
    lines = [json.loads(proc.stdout.readline()) for _ in range(5)]
    proc.terminate()
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert {line["event"] for line in lines} == {"tick"}
    assert "demo event stream at" in log.read_text()
    assert b"demo event stream at" not in stderr
