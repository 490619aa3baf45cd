"""The reactor-thread machinery behind txsse.blocking, driven from plain threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred, NotACoroutineError, succeed
from twisted.python import threadable

from txsse._blocking import Call, ReactorStopped, ReactorThread

WAIT = 10.0


@pytest.fixture
def thread() -> Iterator[ReactorThread]:
    """A reactor thread of its own for one test, stopped afterwards."""
    started = ReactorThread.start()
    try:
        yield started
    finally:
        started.stop()
    assert not started.alive


class Boom(Exception):
    """A test-only exception type."""


def test_call_runs_in_the_reactor_thread(thread: ReactorThread) -> None:
    """A call runs in the reactor thread and its value comes back to the caller."""
    ident = thread.call(threading.get_ident, timeout=WAIT)
    assert ident != threading.get_ident()
    assert thread.call(lambda: thread.in_reactor_thread(), timeout=WAIT) is True
    assert thread.in_reactor_thread() is False


def test_call_waits_for_deferreds_and_coroutines(thread: ReactorThread) -> None:
    """A Deferred or a coroutine is waited for; its result is the call's."""

    def later() -> Deferred[str]:
        d: Deferred[str] = Deferred()
        thread.reactor.callLater(0, d.callback, "later")
        return d

    async def coroutine() -> str:
        return await later() + "!"

    assert thread.call(later, timeout=WAIT) == "later"
    assert thread.call(coroutine, timeout=WAIT) == "later!"
    assert thread.call(succeed, 3, timeout=WAIT) == 3


def test_exceptions_surface_with_their_type(thread: ReactorThread) -> None:
    """An exception raised, or a Deferred failed, in the reactor reaches the caller as is."""

    def raises() -> None:
        raise Boom("raised")

    async def fails() -> None:
        raise Boom("failed")

    with pytest.raises(Boom, match="raised"):
        thread.call(raises, timeout=WAIT)
    with pytest.raises(Boom, match="failed"):
        thread.call(fails, timeout=WAIT)


def test_an_awaitable_that_is_not_a_coroutine_fails_the_call(thread: ReactorThread) -> None:
    """Work returning an awaitable that is neither a coroutine nor a Deferred fails clearly."""

    class Awaitable:
        def __await__(self) -> Iterator[None]:
            yield None

    with pytest.raises(NotACoroutineError, match="is not a coroutine or a Deferred"):
        thread.call(Awaitable, timeout=WAIT)


def test_timeout_cancels_the_work(thread: ReactorThread) -> None:
    """Waiting too long raises TimeoutError and cancels the Deferred in the reactor."""
    cancelled = threading.Event()
    call = thread.submit(lambda: Deferred(lambda d: cancelled.set()))
    with pytest.raises(TimeoutError):
        call.result(timeout=0.05)
    assert cancelled.wait(WAIT)


def test_negative_timeout_is_refused(thread: ReactorThread) -> None:
    """A negative timeout is a clear ValueError."""
    with pytest.raises(ValueError, match="timeout"):
        thread.submit(int).result(timeout=-1)


def test_result_after_giving_up_goes_to_the_orphan_callback(thread: ReactorThread) -> None:
    """A result that arrives after the caller gave up is handed over, not lost."""
    work: Deferred[str] = Deferred()
    call = thread.submit(lambda: work)
    assert thread.call(lambda: call._deferred is work, timeout=WAIT)
    gate = threading.Event()

    def hold_then_fire() -> None:
        gate.wait(WAIT)
        work.callback("late")

    thread.submit(hold_then_fire)  # the reactor is stuck until the gate opens
    orphans: list[str] = []
    handed = threading.Event()
    with pytest.raises(TimeoutError):
        call.result(timeout=0.01, orphan=lambda value: (orphans.append(value), handed.set()))
    gate.set()
    assert handed.wait(WAIT)
    assert orphans == ["late"]


def test_blocking_from_the_reactor_thread_is_refused(thread: ReactorThread) -> None:
    """A blocking wait inside the reactor thread raises instead of hanging forever."""
    with pytest.raises(RuntimeError, match="reactor thread"):
        thread.call(lambda: thread.submit(int).result(), timeout=WAIT)


def test_stop_releases_waiting_calls(thread: ReactorThread) -> None:
    """Stopping the reactor fails calls still waiting, and refuses new ones."""
    call: Call[Any] = thread.submit(Deferred)
    assert thread.call(lambda: call._deferred is not None, timeout=WAIT)
    stopper = threading.Thread(target=thread.stop)
    stopper.start()
    with pytest.raises(ReactorStopped):
        call.result(timeout=WAIT)
    stopper.join(WAIT)
    with pytest.raises(ReactorStopped):
        thread.submit(int)


def test_many_threads_share_one_reactor_thread(thread: ReactorThread) -> None:
    """Calls from many threads at once all run, correctly, in the one reactor thread."""
    reactor_ident = thread.call(threading.get_ident, timeout=WAIT)
    errors: list[str] = []
    seen: set[int] = set()

    def worker(n: int) -> None:
        for i in range(50):
            value, ident = thread.call(lambda i=i: (n * 1000 + i, threading.get_ident()))
            seen.add(ident)
            if value != n * 1000 + i:
                errors.append(f"{n}/{i}: {value}")

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert not any(w.is_alive() for w in workers)
    assert errors == []
    assert seen == {reactor_ident}


def test_own_reactor_leaves_twisted_globals_alone(thread: ReactorThread) -> None:
    """The private reactor does not claim to be Twisted's I/O thread."""
    before = threadable.ioThread
    other = ReactorThread.start()
    try:
        assert other.reactor is not thread.reactor
        assert threadable.ioThread == before
    finally:
        other.stop()


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_keyboard_interrupt_while_waiting_cancels(thread: ReactorThread) -> None:
    """Ctrl-C while the main thread waits raises KeyboardInterrupt and cancels the work."""
    cancelled = threading.Event()
    main = threading.main_thread().ident
    assert main is not None
    tries = [0]

    def interrupt_when_waiting() -> None:
        # Send SIGINT once the main thread is blocked inside the wait.
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code.co_name == "wait":
            os.kill(os.getpid(), signal.SIGINT)
        elif tries[0] < 1000:
            tries[0] += 1
            thread.reactor.callLater(0.005, interrupt_when_waiting)

    def work() -> Deferred[None]:
        thread.reactor.callLater(0, interrupt_when_waiting)
        return Deferred(lambda d: cancelled.set())

    call = thread.submit(work)
    with pytest.raises(KeyboardInterrupt):
        call.result(timeout=WAIT)
    assert cancelled.wait(WAIT)


def run_script(source: str) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a fresh interpreter; fail the test if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_borrows_a_global_reactor_running_in_a_thread() -> None:
    """A global reactor already running in a background thread is reused, not doubled."""
    run_script(
        """
        import threading
        from twisted.internet import reactor
        from txsse._blocking import reactor_thread, shutdown
        app = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, name="app-reactor"
        )
        ready = threading.Event()
        reactor.callWhenRunning(ready.set)
        app.start()
        assert ready.wait(10)
        shared = reactor_thread()
        assert shared.reactor is reactor and not shared.owned
        assert shared.call(threading.current_thread, timeout=10) is app
        names = [t.name for t in threading.enumerate()]
        assert "txsse-reactor" not in names, names
        shutdown()
        assert reactor.running
        reactor.callFromThread(reactor.stop)
        app.join(10)
        """
    )


@pytest.mark.slow
def test_borrows_crochet_reactor_set_up_but_not_yet_running() -> None:
    """After crochet.setup() the global reactor is borrowed even before it runs."""
    run_script(
        """
        import sys, threading, types
        from twisted.internet import reactor
        from txsse._blocking import reactor_thread
        # What crochet.setup() leaves behind, before its thread runs the reactor.
        sys.modules["crochet"] = types.SimpleNamespace(_main=types.SimpleNamespace(_started=True))
        got = []
        asker = threading.Thread(target=lambda: got.append(reactor_thread()))
        asker.start()
        app = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False})
        app.start()
        asker.join(10)
        assert got and got[0].reactor is reactor, got
        assert got[0].call(threading.get_ident, timeout=10) == app.ident
        reactor.callFromThread(reactor.stop)
        app.join(10)
        """
    )


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_new_reactor_thread() -> None:
    """After fork the child starts its own reactor thread instead of hanging on the parent's."""
    run_script(
        """
        import os
        from txsse._blocking import reactor_thread
        parent = reactor_thread()
        assert parent.call(lambda: 1, timeout=10) == 1
        pid = os.fork()
        if pid == 0:
            child = reactor_thread()
            ok = child is not parent and child.call(lambda: 2, timeout=10) == 2
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent.call(lambda: 3, timeout=10) == 3
        """
    )
