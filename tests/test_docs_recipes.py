"""The recipes (docs/recipes/) run as written, against local servers that speak like real ones."""

from __future__ import annotations

import json
import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.helpers.devtools import CHROMIUM, Page
from tests.helpers.docs import PROGRAM_TIMEOUT, Program, programs, shell_line
from tests.helpers.hub import wait_healthy
from tests.helpers.reading import Stream
from tests.helpers.system import TWISTD, free_port, require_program
from tests.helpers.waiting import TIMEOUT, block_until, until
from txsse import format_event
from txsse.server import EventStreamResource, MemoryChannel


async def serve(resource: Resource) -> tuple[str, Any]:
    """Listen on a free loopback port; the base URL and the port (to stop listening)."""
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{port.getHost().port}", port


# (a) An LLM-style streaming POST API.


class Completions(Resource):
    """``POST /v1/chat/completions`` as chat APIs stream it: JSON deltas, then ``[DONE]``."""

    isLeaf = True

    def __init__(self, pieces: list[str], complete: bool = True) -> None:
        super().__init__()
        self.pieces = pieces
        self.complete = complete
        self.requests: list[tuple[bytes, str | None, Any]] = []

    def render(self, request: Any) -> Any:
        auth = request.getHeader("authorization")
        self.requests.append((request.method, auth, json.loads(request.content.read() or b"null")))
        if auth != "Bearer sk-test":
            request.setResponseCode(401)
            return b'{"error": "invalid API key"}'
        request.setHeader("content-type", "text/event-stream")
        for piece in self.pieces:
            delta = {"choices": [{"delta": {"content": piece}}]}
            request.write(format_event(json.dumps(delta)))
        if self.complete:
            request.write(format_event("[DONE]"))  # and keep the connection open
        else:
            request.finish()  # cut off: the body ends without [DONE]
        return NOT_DONE_YET


@pytest.fixture
def chat(tmp_path: Path) -> Program:
    """chat.py from docs/recipes/llm.md, written to a directory."""
    return Program(tmp_path, "chat.py", programs("recipes/llm.md")["chat.py"])


async def ask(chat: Program, api: Completions, key: str = "sk-test") -> tuple[int, str]:
    """Run chat.py against ``api``; its exit status and output."""
    base, port = await serve(api)
    try:
        return await chat.finish(
            "Say", "hello.", LLM_API_URL=f"{base}/v1/chat/completions", LLM_API_KEY=key
        )
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_llm_recipe_prints_the_answer_and_stops_at_done(chat: Program) -> None:
    """chat.py POSTs the prompt with the bearer key, prints the pieces and ends at [DONE]."""
    api = Completions(["Hello", ", world", "!"])
    status, output = await ask(chat, api)
    assert (status, output) == (0, "Hello, world!\n")
    ((method, _, body),) = api.requests
    assert method == b"POST"
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]


@pytest_twisted.ensureDeferred
async def test_llm_recipe_never_sends_a_prompt_twice(chat: Program) -> None:
    """A stream that ends before [DONE] is reported as cut off, not asked again."""
    api = Completions(["Hello"], complete=False)
    status, output = await ask(chat, api)
    assert status != 0
    assert "the answer was cut off after 1 pieces" in output
    assert len(api.requests) == 1


@pytest_twisted.ensureDeferred
async def test_llm_recipe_fails_on_a_wrong_key(chat: Program) -> None:
    """A 401 fails at once with the status, and is not retried."""
    api = Completions(["never sent"])
    status, output = await ask(chat, api, key="sk-wrong")
    assert status != 0
    assert "401" in output
    assert len(api.requests) == 1


# (b) A Wikimedia EventStreams-shaped firehose, kept in a file by the daemon.

FIRST_OFFSET = 5104418347


def kafka_id(offset: int) -> str:
    """An EventStreams id: the JSON list of Kafka positions to resume from."""
    return json.dumps([{"topic": "eqiad.mediawiki.recentchange", "partition": 0, "offset": offset}])


class RecentChanges(Resource):
    """``/v2/stream/recentchange``: new events only, or from after ``Last-Event-ID``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.history: list[bytes] = []
        self.streams: list[Any] = []
        self.requests: list[tuple[str | None, str | None]] = []

    def render_GET(self, request: Any) -> Any:
        last_event_id = request.getHeader("last-event-id")
        self.requests.append((last_event_id, request.getHeader("user-agent")))
        request.setHeader("content-type", "text/event-stream")
        if last_event_id:
            after = json.loads(last_event_id)[0]["offset"] - FIRST_OFFSET + 1
            for event in self.history[after:]:
                request.write(event)
        self.streams.append(request)
        request.notifyFinish().addBoth(lambda _: self.streams.remove(request))
        return NOT_DONE_YET

    def change(self, wiki: str, title: str, kind: str = "edit") -> None:
        """Record a change and send it to every open stream."""
        data = {"$schema": "/mediawiki/recentchange/1.0.0", "wiki": wiki, "title": title}
        data["type"] = kind
        offset = FIRST_OFFSET + len(self.history)
        event = format_event(json.dumps(data), event="message", id=kafka_id(offset))
        self.history.append(event)
        for stream in self.streams:
            stream.write(event)


def exec_start(unit: str, twistd: str, url: str) -> str:
    """The unit's ExecStart command, with this machine's twistd and the local stream's URL."""
    command = unit.replace("\\\n", " ").split("\nExecStart=", 1)[1].split("\n", 1)[0]
    assert command.startswith("/opt/txsse/bin/twistd ")
    command = command.replace("/opt/txsse/bin/twistd", twistd)
    return command.replace("https://stream.wikimedia.org/v2/stream/recentchange", url)


def kept(path: Path) -> list[dict[str, Any]]:
    """The complete lines of the daemon's output file."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_wikimedia_recipe_keeps_every_event_across_a_restart(tmp_path: Path) -> None:
    """The unit's twistd command writes each change once, resuming with the JSON Last-Event-ID."""
    files = programs("recipes/wikimedia.md")
    stream = RecentChanges()
    base, port = await serve(stream)
    url = f"{base}/v2/stream/recentchange"
    daemon = Program(tmp_path, exec_start(files["txsse-recentchange.service"], TWISTD, url))
    output = tmp_path / "recentchange.jsonl"
    try:
        daemon.start()
        await until(lambda: len(stream.streams) == 1, "the daemon's connection")
        stream.change("enwiki", "Twisted (software)")
        stream.change("dewiki", "Python (Programmiersprache)")
        stream.change("enwiki", "Server-sent events", kind="log")
        await until(lambda: len(kept(output)) == 3, "three events in the file", PROGRAM_TIMEOUT)
        daemon.stop()
        await until(lambda: not stream.streams, "the daemon to hang up")
        stream.change("enwiki", "Event stream")
        stream.change("frwiki", "Twisted")
        daemon.start()
        await until(lambda: len(kept(output)) == 5, "five events in the file", PROGRAM_TIMEOUT)
    finally:
        daemon.stop()
        await port.stopListening()
    assert [last_id for last_id, _ in stream.requests] == [None, kafka_id(FIRST_OFFSET + 2)]
    assert all(agent and agent.startswith("recentchange-archiver/") for _, agent in stream.requests)
    lines = kept(output)
    assert [line["id"] for line in lines] == [kafka_id(FIRST_OFFSET + n) for n in range(5)]
    assert {line["event"] for line in lines} == {"message"}
    with output.open("a") as partial:
        partial.write('{"event": "message", "data": "{\\"wiki\\": ')  # a line being written
    top = Program(tmp_path, "top_wikis.py", files["top_wikis.py"])
    status, text = await top.finish(str(output))
    assert (status, text.split()) == (0, ["2", "enwiki", "1", "dewiki", "1", "frwiki"])


# (c) Live updates to browsers from a twisted.web application.


async def request(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection; the status and the body."""
    response = await treq.request(method, url, data=body, persistent=False, timeout=TIMEOUT)
    return response.code, await response.content()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Program, str]]:
    """The recipe's live.py and index.html, running in ``tmp_path``; the program and its URL."""
    files = programs("recipes/browser.md")
    (tmp_path / "index.html").write_text(files["index.html"])
    app = Program(tmp_path, "live.py", files["live.py"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        app.start(str(port))
        app.wait_for_output(f"open {base}/")
        yield app, base
    finally:
        app.stop()


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_browser_recipe_serves_the_page_and_pushes_notes(
    live: tuple[Program, str],
) -> None:
    """live.py serves index.html; a note POSTed to /notes reaches an open stream at once."""
    app, base = live
    status, page = await request("GET", f"{base}/")
    assert status == 200
    assert b'new EventSource("/events")' in page
    assert b'addEventListener("note"' in page
    stream = await Stream(f"{base}/events").open()
    assert stream.status == 200
    status, answer = await request("POST", f"{base}/notes", b"deploy finished")
    assert status == 200
    await until(lambda: stream.events, "the note on the stream")
    (note,) = stream.events
    assert (note.event, note.json(), note.id) == ("note", {"text": "deploy finished"},
                                                  json.loads(answer)["id"])  # fmt: skip
    assert (await request("POST", f"{base}/notes", b"  "))[0] == 400
    app.stop()  # the stream ends with a last retry: (the fixture would stop it too late)
    await stream.ended.addTimeout(TIMEOUT, reactor)  # type: ignore[arg-type]
    assert stream.parser.retry is not None and stream.parser.retry <= 5000


# (d) One upstream fanned out by the hub (behind nginx).

SUBSCRIBERS = 100


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_fanout_recipe_relays_one_upstream_to_every_subscriber(tmp_path: Path) -> None:
    """The documented hub command relays one upstream connection to many subscribers."""
    channel = MemoryChannel(history=100)
    upstream, upstream_port = await serve(EventStreamResource(channel, keepalive=None))
    hub_port = free_port()
    setup = shell_line("recipes/fanout.md", "echo ")
    command = shell_line("recipes/fanout.md", "twistd ")
    command = command.replace("twistd", TWISTD, 1).replace("8081", str(hub_port))
    command = command.replace("https://upstream.example.com", upstream)
    base = f"http://127.0.0.1:{hub_port}"
    assert (await Program(tmp_path, f"bash -c {shlex.quote(setup)}").finish())[0] == 0
    hub = Program(tmp_path, command)
    streams: list[Stream] = []
    try:
        hub.start()
        await wait_healthy(base, log=hub.text)
        await until(lambda: channel.subscriber_count == 1, "the hub's relay to connect")
        for _ in range(SUBSCRIBERS):
            streams.append(await Stream(f"{base}/topics/prices").open())
        assert {stream.status for stream in streams} == {200}
        prices = [{"symbol": "TWST", "price": 100 + n} for n in range(3)]
        for price in prices:
            channel.publish_json(price)
        await until(
            lambda: all(len(stream.events) == 3 for stream in streams),
            f"three events on each of {SUBSCRIBERS} streams",
        )
        assert channel.subscriber_count == 1
        assert {tuple(e.json()["price"] for e in s.events) for s in streams} == {(100, 101, 102)}
    finally:
        for stream in streams:
            await stream.close()
        hub.stop()
        await upstream_port.stopListening()


def test_fanout_recipe_nginx_has_what_event_streams_need() -> None:
    """The nginx configuration turns buffering off, speaks HTTP/1.1 upstream and waits long."""
    conf = programs("recipes/fanout.md")["nginx.conf"]
    settings = {line.split("#")[0].strip() for line in conf.splitlines()}
    for needed in [
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_read_timeout 1h;",
        "server 127.0.0.1:8081;",
    ]:
        assert needed in settings, needed
    assert conf.count("{") == conf.count("}")


# (e) A blocking consumer in a web worker.


class JobEvents(Resource):
    """``/jobs/<id>/events``: the job's progress, then its outcome; the stream stays open."""

    isLeaf = True

    def __init__(self, outcome: bytes) -> None:
        super().__init__()
        self.outcome = outcome
        self.requests: list[tuple[bytes, str | None]] = []

    def render_GET(self, request: Any) -> Any:
        self.requests.append((request.path, request.getHeader("authorization")))
        if request.getHeader("authorization") != "Bearer t0ken":
            request.setResponseCode(401)
            return b"unauthorized"
        request.setHeader("content-type", "text/event-stream")
        for percent in (10, 50, 90):
            request.write(format_event(json.dumps({"percent": percent}), event="progress"))
        request.write(self.outcome)
        return NOT_DONE_YET


async def wait_for_job(tmp_path: Path, jobs: JobEvents) -> tuple[int, str]:
    """Run ``python jobs.py 42`` against ``jobs``; its exit status and output."""
    program = Program(tmp_path, "jobs.py", programs("recipes/worker.md")["jobs.py"])
    base, port = await serve(jobs)
    try:
        return await program.finish("42", JOBS_URL=base, JOBS_TOKEN="t0ken")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_worker_recipe_returns_the_result(tmp_path: Path) -> None:
    """wait_for_job() logs the progress and returns the ``done`` event's JSON."""
    done = format_event(json.dumps({"url": "https://files.example/42.csv"}), event="done")
    jobs = JobEvents(done)
    status, output = await wait_for_job(tmp_path, jobs)
    assert status == 0, output
    lines = output.splitlines()  # standard output, then the log (standard error)
    assert lines == ['{"url": "https://files.example/42.csv"}', "job 42: 10%", "job 42: 50%",
                     "job 42: 90%"]  # fmt: skip
    assert jobs.requests == [(b"/jobs/42/events", "Bearer t0ken")]


@pytest_twisted.ensureDeferred
async def test_worker_recipe_reports_a_failed_job(tmp_path: Path) -> None:
    """A ``failed`` event raises JobFailed, which the program reports and exits with."""
    failed = format_event(json.dumps({"reason": "disk full"}), event="failed")
    status, output = await wait_for_job(tmp_path, JobEvents(failed))
    assert status == 1
    assert output.splitlines()[-1] == "job 42: JobFailed: disk full"


@pytest.mark.slow
def test_browser_recipe_page_shows_notes_in_chromium(
    tmp_path: Path, live: tuple[Program, str]
) -> None:
    """In headless Chromium the recipe's page goes live and shows a note POSTed to /notes."""
    binary = require_program(CHROMIUM, "chromium")
    _, base = live
    notes = "[...document.querySelectorAll('#notes li')].map((li) => li.textContent).join('|')"
    with Page(binary, tmp_path / "profile", f"{base}/") as page:
        status = "document.getElementById('status').textContent"
        block_until(lambda: page.evaluate(status) == "live", "the page to go live", 60)
        post = urllib.request.Request(f"{base}/notes", data=b"deploy finished", method="POST")
        with urllib.request.urlopen(post, timeout=TIMEOUT) as answer:
            assert answer.status == 200
        block_until(lambda: page.evaluate(notes) == "deploy finished", "the note", 60)
