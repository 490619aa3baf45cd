"""Hub tests' helpers: ``twistd -n sse-hub`` subprocesses, publishing, waiting for health."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_twisted
import treq

from tests.helpers.system import TWISTD, free_port, stop_process
from tests.helpers.waiting import until


async def wait_healthy(
    base: str,
    timeout: float = 20.0,
    check: Callable[[], None] = lambda: None,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``base/health`` until it answers 200; ``check()`` may fail the test early."""

    async def healthy() -> bool:
        check()
        try:
            response = await treq.get(f"{base}/health", persistent=False)
            await response.content()
        except Exception:
            return False
        return bool(response.code == 200)

    try:
        await until(healthy, f"the hub at {base} to answer /health", timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; its log:\n{log()}") from None


async def publish(base: str, topic: str, data: str, token: str = "secret", **params: str) -> Any:
    """POST one event; returns the treq response (its ``.code`` and ``.json()``)."""
    return await treq.post(
        f"{base}/topics/{topic}",
        data=data.encode(),
        params=params,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        persistent=False,
    )


class HubProcess:
    """``twistd -n sse-hub`` as a real subprocess of the worktree's Python."""

    def __init__(self, port: int, *args: str, token_file: Path) -> None:
        self.port = port
        self.args = args
        self.token_file = token_file
        self.process: subprocess.Popen[bytes] | None = None
        self.log = token_file.parent / f"hub-{port}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HubProcess:
        """Start it and wait until ``/health`` answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", "sse-hub",
                 "--port", f"tcp:{self.port}:interface=127.0.0.1",
                 "--publish-token-file", str(self.token_file), *self.args],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        process = self.process

        def exited() -> None:
            if process.poll() is not None:
                raise AssertionError(
                    f"sse-hub exited with {process.returncode}:\n{self.log_text()}"
                )

        await wait_healthy(self.base, check=exited, log=self.log_text)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        stop_process(self.process)


@pytest_twisted.async_yield_fixture
async def hubs(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start hub processes with ``await start(*args)``; all are stopped after the test."""
    token = tmp_path / "token"
    token.write_text("secret\n")
    started: list[HubProcess] = []

    async def start(*args: str) -> HubProcess:
        hub = HubProcess(free_port(), *args, token_file=token)
        started.append(hub)
        return await hub.start()

    yield start
    for hub in started:
        hub.stop()
