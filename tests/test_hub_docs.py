"""The two-process example in docs/hub.md starts a working pair of hubs on one Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from tests.helpers.hub import publish, wait_healthy
from tests.helpers.reading import Stream
from tests.helpers.system import free_port
from tests.helpers.waiting import until

DOC = Path(__file__).parent.parent / "docs" / "hub.md"


def example_commands() -> tuple[list[str], list[str], str]:
    """The example's set-up commands, its clean-up commands, and its shell text."""
    match = re.search(r"## Several processes on one Redis.*?```sh\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None, "docs/hub.md lost its two-process example"
    text = match.group(1).replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]
    setup = [line for line in lines if not line.startswith(("curl", "kill"))]
    cleanup = [line for line in lines if line.startswith("kill")]
    return setup, cleanup, text


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_two_process_example_runs(tmp_path: Path, redis_server: object) -> None:
    """The documented commands start two hubs; an event published on B reaches A."""
    setup, cleanup, text = example_commands()
    assert "curl -sN http://127.0.0.1:8081/topics/news" in text
    ports = {"8081": str(free_port()), "8082": str(free_port()), "6390": str(free_port())}

    def localize(line: str) -> str:
        for old, new in ports.items():
            line = line.replace(old, new)
        return line

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def run(lines: list[str]) -> None:
        script = "set -e\n" + "\n".join(localize(line) for line in lines)
        subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True, timeout=60,
                       capture_output=True)  # fmt: skip

    run(setup)
    try:
        a, b = (f"http://127.0.0.1:{ports[p]}" for p in ("8081", "8082"))
        for base in (a, b):
            await wait_healthy(base, log=lambda: "\n".join(
                p.read_text() for p in tmp_path.glob("*.log")))  # fmt: skip
        stream = await Stream(f"{a}/topics/news").open()
        assert stream.status == 200
        assert (await publish(b, "news", "via B", token="change-me")).code == 200
        await until(lambda: stream.data == ["via B"], what="A's subscriber to get B's event")
        await stream.close()
    finally:
        run(cleanup)
