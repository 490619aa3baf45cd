"""The README's examples run as written: each Python block and the hub quick start.

Each example runs as its own process (as a reader would run it); only its port,
and a URL the test cannot reach, are replaced.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.docs import shell_lines
from tests.helpers.system import TWISTD, free_port, stop_process
from tests.helpers.waiting import block_until

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
TIMEOUT = 30.0


def python_block(first_line: str) -> str:
    """The README's Python block that starts with ``first_line``."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    found = [block for block in blocks if block.startswith(first_line)]
    assert len(found) == 1, f"README.md has no single Python block starting {first_line!r}"
    return found[0]  # type: ignore[no-any-return]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by the test; stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_process(process)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def start(code: str, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run ``code`` as a script, its output piped."""
    process = subprocess.Popen(  # -u: each print() arrives at once, as in a terminal
        [sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    processes.append(process)
    return process


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return False
    return True


@contextmanager
def get(port: int, path: str) -> Iterator[http.client.HTTPResponse]:
    """GET ``path`` on 127.0.0.1:``port``: the response, closed afterwards."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        yield connection.getresponse()
    finally:
        connection.close()


def serve(block: str, processes: list[subprocess.Popen[bytes]]) -> int:
    """Start an example that listens on port 8000, on a free port instead; the port."""
    port = free_port()
    assert "8000" in block
    start(block.replace("8000", str(port)), processes)
    block_until(lambda: listening(port), "the example to listen", TIMEOUT)
    return port


def test_parse_example_prints_what_it_says() -> None:
    """The parser example prints the line its comment shows."""
    code = python_block("from txsse import EventStreamParser")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=TIMEOUT)
    assert done.stdout == b"update 7 {'x': 1}\n"


def test_server_example_serves_events(processes: list[subprocess.Popen[bytes]]) -> None:
    """The server example listens and streams an update event every second."""
    port = serve(python_block("from twisted.internet import reactor, task"), processes)
    with get(port, "/events") as response:
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        lines = [response.readline() for _ in range(12)]  # retry:, resume point, events
    assert b"event: update\n" in lines and b'data: {"x":1}\n' in lines


def test_client_example_logs_and_prints_events(processes: list[subprocess.Popen[bytes]]) -> None:
    """The client example, pointed at the server example, logs to stderr and prints events."""
    port = serve(python_block("from twisted.internet import reactor, task"), processes)
    client = python_block("import sys\n\nfrom twisted.internet import defer, task")
    url = f"http://127.0.0.1:{port}/events"
    process = start(client.replace("https://example.com/events", url), processes)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"update ")
    stop_process(process)
    assert f"Opened the event stream {url}" in process.stderr.read().decode()


def test_client_example_fails_at_once_on_a_refused_connection() -> None:
    """Without a server, the client example ends with the cause instead of retrying quietly."""
    client = python_block("import sys\n\nfrom twisted.internet import defer, task")
    url = f"http://127.0.0.1:{free_port()}/events"
    code = client.replace("https://example.com/events", url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert b"NetworkError" in done.stderr and b"Connection refused" in done.stderr


def test_metrics_example_serves_metrics(processes: list[subprocess.Popen[bytes]]) -> None:
    """The metrics example listens and exposes the client's and the channel's metrics."""
    port = serve(python_block("from twisted.internet import reactor\n"), processes)

    def scraped() -> str:
        with get(port, "/metrics") as response:
            assert response.status == 200
            text = response.read().decode()
        return text if 'txsse_server_subscribers{channel="news"} 1.0' in text else ""

    text = block_until(scraped, "the client to be counted", TIMEOUT)
    assert "txsse_client_connections_total" in text


def test_twistd_commands_do_not_clash() -> None:
    """Every twistd command of the README can run beside another from the same folder."""
    commands = [line for line in shell_lines(README) if line.startswith("twistd")]
    assert len(commands) >= 3
    for command in commands:
        assert "--pidfile=" in command.split(" sse")[0], command


def test_hub_quick_start_runs_in_memory(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The hub quick start needs no Redis, listens on loopback, answers a publish with a line."""
    lines = shell_lines(README)
    token = next(line for line in lines if line.startswith('echo "change-me" > publish.token'))
    hub = next(line for line in lines if line.startswith("twistd") and "sse-hub" in line)
    assert "--redis" not in hub and "--port" not in hub
    subprocess.run(["bash", "-c", token], cwd=tmp_path, check=True, timeout=TIMEOUT)
    port = free_port()
    listen = f"tcp:{port}:interface=127.0.0.1"
    command = [*hub.replace("twistd", TWISTD, 1).split(), "--port", listen]
    processes.append(subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL))
    block_until(lambda: listening(port), "the hub to listen", TIMEOUT)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    headers = {"Authorization": "Bearer change-me"}
    connection.request("POST", "/topics/news?event=greeting", body=b"hello", headers=headers)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    assert response.status == 200
    assert answer.endswith(b"}\n") and b'"topic": "news"' in answer
