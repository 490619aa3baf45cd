"""The exit status hook: twistd stops as usual, then the process exits with the recorded status."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.error import ReactorNotRunning

from txsse.daemon import _exit


class FakeReactor:
    """Runs callWhenRunning at once and counts stop() calls; stops only once."""

    def __init__(self) -> None:
        self.stops = 0

    def callWhenRunning(self, f: Callable[[], Any]) -> None:
        f()

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise ReactorNotRunning("already stopping")


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """The atexit hooks registered (not run at the real exit), with a fresh status."""
    registered: list[Callable[[], None]] = []
    monkeypatch.setattr(_exit, "_status", [])
    monkeypatch.setattr(atexit, "register", registered.append)
    return registered


def test_records_first_status_and_stops(
    hooks: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first status wins, the reactor is stopped, and the hook exits with that status."""
    reactor = FakeReactor()
    _exit.stop_with_status(reactor, _exit.EXIT_STREAM_FAILED)
    _exit.stop_with_status(reactor, _exit.EXIT_IO_ERROR)  # stopping already: no error
    assert reactor.stops == 2
    assert len(hooks) == 1
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    hooks[0]()
    assert exits == [1]


def test_no_status_no_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a recorded status the hook does nothing (twistd's own status stands)."""
    monkeypatch.setattr(_exit, "_status", [])
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    _exit._exit_with_recorded_status()
    assert exits == []
