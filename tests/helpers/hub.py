"""Hub tests' helpers: hub subprocesses, publishing, an in-process hub, a raw TCP client.

``twistd -n sse-hub`` subprocesses and waiting for their health; the ``serve`` fixture
(an in-process hub on loopback) and :class:`RawClient` for byte-exact HTTP.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tests.helpers.system import TWISTD, free_port, stop_process
from tests.helpers.waiting import until
from txsse.hub import Hub
from txsse.server import MemoryChannel


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


class RawClient(Protocol):
    """A raw TCP client: sends what it is told, keeps every byte it receives."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(None)

    @property
    def head(self) -> bytes:
        """The final response's status line and headers (after any ``100 Continue``)."""
        text = self.received.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"")
        return text.partition(b"\r\n\r\n")[0]

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def close(self) -> None:
        """Close the connection and wait until it is gone."""
        if not self.closed.called:
            assert self.transport is not None
            self.transport.loseConnection()
        await self.closed


class ServedHub:
    """A :class:`~txsse.hub.Hub` in this process, listening on a loopback port."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.site = hub.site()
        self.port: Any = reactor.listenTCP(0, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self.clients: list[RawClient] = []

    async def connect(self, request: bytes = b"") -> RawClient:
        """Open a raw connection and send ``request`` (the head of a request, say)."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = await connectProtocol(endpoint, RawClient())
        self.clients.append(client)
        if request:
            client.send(request)
        return client

    def stop(self) -> None:
        """Close the hub's streams, every raw connection and the port."""
        self.hub.close()
        for client in self.clients:
            if client.transport is not None:
                client.transport.abortConnection()  # type: ignore[attr-defined]
        self.port.stopListening()


@pytest.fixture
def serve() -> Iterator[Callable[..., ServedHub]]:
    """``serve(**hub_options)`` starts a memory hub (``channels=`` a factory, optional)."""
    served: list[ServedHub] = []

    def start(**options: Any) -> ServedHub:
        options.setdefault("publish_token", "secret")
        options.setdefault("keepalive", None)
        channels = options.pop("channels", None)
        served.append(ServedHub(Hub(channels or (lambda name: MemoryChannel(100)), **options)))
        return served[-1]

    yield start
    for s in served:
        s.stop()


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
