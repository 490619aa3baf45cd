"""Shared fixtures: fail any test that logged an error through twisted.logger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from zope.interface import provider


@pytest.fixture(autouse=True)
def _no_logged_errors(request: pytest.FixtureRequest) -> Iterator[list[LogEvent]]:
    """Fail the test if anything logged at level error or critical.

    A test that expects an error log takes the ``logged_errors`` fixture and
    clears what it checked.
    """
    errors: list[LogEvent] = []

    @provider(ILogObserver)
    def observer(event: LogEvent) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    request.node._txsse_logged_errors = errors
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(observer)
    if errors:
        text = "\n".join(formatEvent(e) or repr(e) for e in errors)
        pytest.fail(f"the test logged {len(errors)} error(s):\n{text}", pytrace=False)


@pytest.fixture(params=[True, False], ids=["direct", "transport"])
def direct_writes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test on both server write paths: ``direct_writes`` on (default) and off.

    Every EventStreamResource the test creates (directly, or through a router
    or the hub) gets that default. Server test modules use it for every test
    (``pytestmark = pytest.mark.usefixtures("direct_writes")``).
    """
    from txsse.server import EventStreamResource

    defaults = EventStreamResource.__init__.__kwdefaults__
    assert defaults is not None and "direct_writes" in defaults
    monkeypatch.setitem(defaults, "direct_writes", request.param)
    return bool(request.param)


@pytest.fixture
def logged_errors(request: pytest.FixtureRequest) -> list[LogEvent]:
    """The errors logged so far by this test; clear it after checking them."""
    return request.node._txsse_logged_errors  # type: ignore[no-any-return]


# Fixtures of the Redis and hub tests: a real redis-server per test, a loopback upstream.
from tests.helpers.hub import hubs, serve  # noqa: E402, F401
from tests.helpers.redis import redis_server  # noqa: E402, F401
from tests.helpers.serving import upstream  # noqa: E402, F401
