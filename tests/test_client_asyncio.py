"""EventSource under the asyncio reactor, in a subprocess (a process has one reactor)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from twisted.internet import reactor, task, defer
    from twisted.web import server
    from tests.helpers.sseserver import ScriptedResource, StreamServer
    from txsse import EventSource

    async def main():
        srv = StreamServer()
        source = EventSource(srv.url("/events/3"), reconnect_delay=0.01)
        source.startService()
        loop = asyncio.get_event_loop()
        # from a native asyncio coroutine, through Deferred.asFuture
        async def native():
            return await source.next().asFuture(loop)
        first = await defer.Deferred.fromFuture(asyncio.ensure_future(native()))
        seen = [first.data]
        async for event in source:
            seen.append(event.data)
            if len(seen) == 3:
                await source.close()
        await srv.stop()
        print(type(reactor).__name__, seen)

    task.react(lambda r: defer.ensureDeferred(main()))
    """
)


def run(script: str) -> str:
    """Run ``script`` in a fresh interpreter from the project root; its stripped stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_works_under_asyncio_reactor() -> None:
    """The source runs unchanged under the asyncio reactor, consumed from asyncio code too."""
    assert run(SCRIPT) == "AsyncioSelectorReactor ['event 1', 'event 2', 'event 3']"


LATE_REACTOR = textwrap.dedent(
    """
    import sys
    from txsse import EventSource
    source = EventSource("http://127.0.0.1:9/events")
    assert "twisted.internet.reactor" not in sys.modules
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    print("installed after construction")
    """
)


@pytest.mark.slow
def test_constructing_a_source_installs_no_reactor() -> None:
    """An application may build its sources first and pick its reactor afterwards."""
    assert run(LATE_REACTOR) == "installed after construction"
