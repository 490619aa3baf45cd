"""Helpers for hub tests: a raw SSE stream reader, hub subprocesses, waiting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from _redisserver import free_port, stop_process
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Site

from txsse import Event, EventStreamParser
from txsse.server import EventStreamResource, MemoryChannel


class Upstream:
    """A loopback upstream event stream: a memory channel served with retry: 50 ms."""

    def __init__(self) -> None:
        self.channel = MemoryChannel(100)
        self.resource = EventStreamResource(self.channel, keepalive=None, retry=0.05)
        self.port: Any = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Site(self.resource), interface="127.0.0.1"
        )
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/"


@pytest_twisted.async_yield_fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An :class:`Upstream`, closed after the test."""
    server = Upstream()
    yield server
    server.resource.close()
    await server.port.stopListening()


async def until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    """Let the reactor run until ``condition()`` is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        await deferLater(reactor, 0.01, lambda: None)


async def wait_healthy(
    base: str,
    timeout: float = 20.0,
    check: Callable[[], None] = lambda: None,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``base/health`` until it answers 200; ``check()`` may fail the test early."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        try:
            response = await treq.get(f"{base}/health", persistent=False)
            await response.content()
            if response.code == 200:
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the hub at {base} did not start within {timeout} s:\n{log()}")
        await deferLater(reactor, 0.05, lambda: None)


class _Body(Protocol):
    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def dataReceived(self, data: bytes) -> None:
        self.stream.events.extend(e for e in self.stream.parser.feed(data) if isinstance(e, Event))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.stream.ended.callback(None)


class Stream:
    """One subscription over one connection (no reconnection): for exact checks."""

    def __init__(self, url: str, last_event_id: str | None = None, **headers: str) -> None:
        self.url = url
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.parser = EventStreamParser()
        self.events: list[Event] = []
        self.ended: Deferred[None] = Deferred()
        self.status = 0
        self._body: _Body | None = None

    async def open(self) -> Stream:
        """Send the request; once the headers are in, read events in the background."""
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(self.url, headers=self.headers, unbuffered=True, pool=pool)
        self.status = response.code
        self.response = response
        self._body = _Body(self)
        response.deliverBody(self._body)
        return self

    @property
    def data(self) -> list[str]:
        return [e.data for e in self.events]

    @property
    def is_ended(self) -> bool:
        return self.ended.called

    async def close(self) -> None:
        """Drop the connection and wait until it is gone."""
        if self._body is not None and not self.ended.called:
            transport: Any = self._body.transport
            transport.stopProducing()
        if self._body is not None:
            await self.ended


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
        twistd = Path(sys.executable).with_name("twistd")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(twistd), "-n", "--pidfile=", "sse-hub",
                 "--port", f"tcp:{self.port}:interface=127.0.0.1",
                 "--publish-token-file", str(self.token_file), *self.args],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        process = self.process

        def exited() -> None:
            if process.poll() is not None:
                pytest.fail(f"sse-hub exited with {process.returncode}:\n{self.log_text()}")

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
