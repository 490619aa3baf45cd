"""The exit status: twistd runs its whole shutdown, then exits with the recorded status."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.application.app import AppLogger
from twisted.internet import reactor
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger, globalLogPublisher
from twisted.web.pages import notFound
from twisted.web.server import Site

from tests.helpers.system import TWISTD
from tests.helpers.waiting import until
from txsse.daemon import _exit


class FakeReactor:
    """Runs callWhenRunning at once, records triggers, counts stop(); stops only once."""

    def __init__(self) -> None:
        self.stops = 0
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []

    def callWhenRunning(self, f: Callable[[], Any]) -> None:
        f()

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], None]) -> None:
        self.triggers.append((phase, event, f))

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise ReactorNotRunning("already stopping")


@pytest.fixture
def status(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A fresh recorded status; the exit observer removed afterwards."""
    fresh: list[int] = []
    monkeypatch.setattr(_exit, "_status", fresh)
    yield fresh
    globalLogPublisher.removeObserver(_exit._exit_when_twistd_is_done)


def test_first_status_wins_and_exit_waits_for_twistd(status: list[int]) -> None:
    """The first status wins; after shutdown, twistd's last log line raises SystemExit."""
    fake = FakeReactor()
    _exit.stop_with_status(fake, _exit.EXIT_STREAM_FAILED)
    _exit.stop_with_status(fake, _exit.EXIT_IO_ERROR)  # stopping already: no error
    assert fake.stops == 2
    [(phase, event, shut_down)] = fake.triggers
    assert (phase, event) == ("after", "shutdown")
    Logger().info("not twistd: no exit")
    shut_down()
    Logger().info("still not twistd: no exit")
    with pytest.raises(SystemExit) as exiting:
        Logger(source=AppLogger({})).info("Server Shut Down.")
    assert exiting.value.code == _exit.EXIT_STREAM_FAILED


TAC = textwrap.dedent(
    """
    import atexit, os
    from pathlib import Path
    from twisted.application.service import Application
    from txsse.daemon import SSEDaemon

    # Registered before the daemon records its status: it must still run.
    atexit.register(lambda: Path(os.environ["TXSSE_MARK"]).write_text("ran"))
    application = Application("exit-status")
    SSEDaemon(os.environ["TXSSE_URL"], output=os.devnull).setServiceParent(application)
    """
)


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_twistd_exits_with_status_after_every_atexit_handler(tmp_path: Path) -> None:
    """Real twistd, 404: status 1, PID file removed, an earlier atexit handler still ran."""
    port = reactor.listenTCP(0, Site(notFound()), interface="127.0.0.1")  # type: ignore[attr-defined]
    (tmp_path / "app.tac").write_text(TAC)
    mark, pidfile, log = tmp_path / "atexit-ran", tmp_path / "twistd.pid", tmp_path / "log"
    env = {
        **os.environ,
        "TXSSE_URL": f"http://127.0.0.1:{port.getHost().port}/events",
        "TXSSE_MARK": str(mark),
    }
    command = [TWISTD, "-n", f"--pidfile={pidfile}", f"--logfile={log}", "-y", "app.tac"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env)
    try:
        await until(lambda: proc.poll() is not None, "twistd to exit", 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await port.stopListening()
    text = log.read_text()
    assert proc.returncode == _exit.EXIT_STREAM_FAILED, text
    assert mark.read_text() == "ran"
    assert not pidfile.exists()
    assert "Server Shut Down." in text
