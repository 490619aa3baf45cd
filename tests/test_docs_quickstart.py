"""The five-minute start (docs/quickstart.md) works as written, on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.docs import PROGRAM_TIMEOUT, Program, programs, shell_line
from tests.helpers.system import free_port
from tests.helpers.waiting import block_until


def lines_of(path: Path) -> list[str]:
    """The lines of a file that may not exist yet."""
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_quickstart_serve_consume_and_daemon(tmp_path: Path) -> None:
    """serve.py streams ticks; consume.py prints three; the documented twistd line keeps them."""
    files = programs("quickstart.md")
    assert set(files) == {"serve.py", "consume.py"}
    port = str(free_port())
    url = f"http://127.0.0.1:{port}/events"
    server = Program(tmp_path, "serve.py", files["serve.py"]).start(port)
    daemon_line = shell_line("quickstart.md", "twistd ").replace("http://127.0.0.1:8080", url[:-7])
    daemon = Program(tmp_path, daemon_line)
    try:
        server.wait_for_output(url)
        lines = Program(tmp_path, "consume.py", files["consume.py"]).run(url).splitlines()
        assert len(lines) == 3, lines
        numbers = [int(line.removeprefix("tick ")) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + 3)), lines
        daemon.start()
        jsonl = tmp_path / "ticks.jsonl"
        block_until(lambda: len(lines_of(jsonl)) >= 2, "two events in ticks.jsonl", PROGRAM_TIMEOUT)
    finally:
        daemon.stop()
        server.stop()
    events = [json.loads(line) for line in lines_of(jsonl)]
    assert {event["event"] for event in events} == {"tick"}
    written = [json.loads(event["data"])["n"] for event in events]
    assert written == list(range(written[0], written[0] + len(written)))
    assert written[0] > numbers[-1]
    state = json.loads((tmp_path / "ticks.state").read_text())
    assert state["last_event_id"] == events[-1]["id"]
