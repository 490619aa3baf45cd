"""A reactor in a background thread, and blocking calls into it from other threads.

This is the machinery behind :mod:`txsse.blocking`. One :class:`ReactorThread`
runs a reactor; any other thread hands it work with :meth:`ReactorThread.submit`
and waits for the outcome with :meth:`Call.result`, which re-raises the same
exception the work failed with, gives up after a timeout, and can be interrupted
(Ctrl-C) without losing a result that arrives afterwards.

By default txsse runs its *own* reactor instance in its own daemon thread: it
never installs, starts or stops the application's global reactor, and it does not
register itself as Twisted's I/O thread, so it can live beside any other use of
Twisted in the process (a test runner's reactor, a web server's). When the global
reactor is already running in a background thread (as ``crochet`` does), txsse
borrows it instead of starting a second one.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Generic, Literal, ParamSpec, Protocol, TypeVar, cast, overload

from twisted.internet.base import ReactorBase
from twisted.internet.defer import Deferred, NotACoroutineError, maybeDeferred
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure

from txsse._reactor import default_reactor

_T = TypeVar("_T")
_P = ParamSpec("_P")

_log = Logger(namespace="txsse.blocking")

#: How long to wait for a new reactor thread to start, or for a borrowed
#: reactor that was set up but not yet running, seconds.
START_TIMEOUT = 30.0


class ReactorStopped(RuntimeError):
    """The reactor thread stopped before the call finished."""


class _Pending(Enum):
    """The outcome of a call that has none yet."""

    PENDING = "pending"


_PENDING = _Pending.PENDING


class Call(Generic[_T]):
    """One piece of work handed to the reactor thread, and its outcome.

    The reactor thread settles it once, with a result or a
    :class:`~twisted.python.failure.Failure`. The calling thread takes the
    outcome with :meth:`result`; if it stops waiting first (timeout, Ctrl-C), a
    result that still arrives goes to the ``orphan`` callback given to
    :meth:`result`, so nothing is lost.

    :param thread: the reactor thread that runs the work.
    """

    def __init__(self, thread: ReactorThread) -> None:
        self._thread = thread
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: _T | Failure | Literal[_Pending.PENDING] = _PENDING
        self._orphan: Callable[[_T], object] | None = None
        self._abandoned = False
        self._cancelled = False
        self._deferred: Deferred[_T] | None = None

    # Reactor thread side

    def _run(self, work: Callable[[], object]) -> None:
        """Start the work (in the reactor thread)."""
        # What is left once a Deferred or a coroutine is waited for is the _T that
        # ReactorThread.submit's overloads promised for this function.
        result = cast("Deferred[_T]", maybeDeferred(work).addCallback(_await_coroutine))
        self._deferred = result
        result.addBoth(self._settle)
        if self._cancelled:
            result.cancel()

    def _settle(self, outcome: _T | Failure) -> None:
        """Record the outcome (in the reactor thread), or hand it to the orphan callback."""
        self._thread._forget(self)
        with self._lock:
            if self._outcome is not _PENDING:
                return
            self._outcome = outcome
            orphan = self._orphan if self._abandoned else None
            self._done.set()
        if orphan is not None and not isinstance(outcome, Failure):
            try:
                orphan(outcome)
            except Exception:
                _log.failure("the orphan callback {orphan!r} raised", orphan=orphan)

    def _cancel_in_reactor(self) -> None:
        """Cancel the work's Deferred (in the reactor thread)."""
        self._cancelled = True
        if self._deferred is not None:
            self._deferred.cancel()

    # Calling thread side

    @property
    def done(self) -> bool:
        """Whether the outcome is known."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Cancel the work's Deferred from any thread; a no-op once it has an outcome."""
        if not self._done.is_set():
            self._thread.reactor.callFromThread(self._cancel_in_reactor)

    def result(
        self, timeout: float | None = None, orphan: Callable[[_T], object] | None = None
    ) -> _T:
        """Wait for the outcome in the calling thread.

        :param timeout: seconds to wait; ``None`` waits as long as it takes.
        :param orphan: called (in the reactor thread) with a successful result
            that arrives after this wait was given up, by timeout or by an
            exception such as ``KeyboardInterrupt``.
        :returns: the work's result.
        :raises TimeoutError: when ``timeout`` passed first; the work is
            cancelled.
        :raises RuntimeError: when called from the reactor thread itself (it
            would wait forever).
        :raises ReactorStopped: when the reactor thread stopped first.
        :raises Exception: whatever the work failed with, same type.
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0, not {timeout!r}")
        if self._thread.in_reactor_thread():
            self._give_up(orphan)
            raise RuntimeError(
                "a blocking txsse call was made from the reactor thread, where it "
                "would wait forever; use the asynchronous txsse API there"
            )
        try:
            finished = self._done.wait(timeout)
        except BaseException:
            self._give_up(orphan)
            raise
        if not finished and self._give_up(orphan):
            raise TimeoutError(f"no result within {timeout} seconds")
        outcome = self._outcome
        assert outcome is not _PENDING  # the wait finished, or the outcome came meanwhile
        if isinstance(outcome, Failure):
            outcome.raiseException()
        return outcome

    def _give_up(self, orphan: Callable[[_T], object] | None) -> bool:
        """Stop waiting: cancel the work; returns False if the outcome arrived meanwhile."""
        with self._lock:
            if self._outcome is not _PENDING:
                return False
            self._abandoned = True
            self._orphan = orphan
        self.cancel()
        return True


def _await_coroutine(result: object) -> object:
    """Let work functions be ``async def`` too: a coroutine's outcome is the work's."""
    if isinstance(result, Coroutine):
        return Deferred.fromCoroutine(result)
    if isinstance(result, Awaitable) and not isinstance(result, Deferred):
        raise NotACoroutineError(f"{result!r} is not a coroutine or a Deferred")
    return result


def _new_reactor() -> ReactorBase:
    """A new, uninstalled reactor instance of the platform's usual kind."""
    reactor: ReactorBase
    if sys.platform.startswith("linux"):
        from twisted.internet.epollreactor import EPollReactor

        reactor = EPollReactor()
    else:
        from twisted.internet.selectreactor import SelectReactor

        reactor = SelectReactor()
    # Leave Twisted's global notion of "the I/O thread" to the application.
    reactor._registerAsIOThread = False
    return reactor


class _Waiting(Protocol):
    """What the reactor thread keeps of a call until its outcome is known."""

    def _settle(self, outcome: Failure, /) -> None:
        """Fail the call."""


class ReactorThread:
    """A reactor running in a thread, and the calls other threads make into it.

    Build one with :meth:`start` (a new reactor in a new daemon thread, owned
    and stopped by us) or :meth:`borrow` (a reactor someone else runs in their
    own thread, which we never stop).

    :param reactor: the reactor (``IReactorFromThreads``, and ``IReactorCore``
        to tell whether it runs and to stop it).
    :param thread_id: the ``threading`` ident of the thread running it, or
        ``None`` until it is known.
    :param thread: the thread, when we own it.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        thread_id: int | None,
        thread: threading.Thread | None = None,
    ) -> None:
        self.reactor = reactor
        self._thread_id = thread_id
        self._thread = thread
        self._lock = threading.Lock()
        self._calls: set[_Waiting] = set()
        self._stopped = False
        self.pid = os.getpid()

    @classmethod
    def start(
        cls, reactor: ReactorBase | None = None, timeout: float = START_TIMEOUT
    ) -> ReactorThread:
        """Run a reactor in a new daemon thread.

        :param reactor: the reactor to run (it must not be running; it is run
            without signal handlers, which only the main thread may install); a
            new instance of the platform's usual reactor by default.
        :param timeout: seconds to wait for the reactor to start.
        :returns: the running reactor thread.
        :raises RuntimeError: if the reactor did not start in time.
        """
        if reactor is None:
            reactor = _new_reactor()
        running = threading.Event()
        reactor.callWhenRunning(running.set)
        made = cls(reactor, None)
        thread = threading.Thread(
            target=made._main, args=(reactor,), name="txsse-reactor", daemon=True
        )
        made._thread = thread
        thread.start()
        made._thread_id = thread.ident
        if not running.wait(timeout):
            raise RuntimeError(f"the txsse reactor thread did not start within {timeout} seconds")
        return made

    @classmethod
    def borrow(
        cls,
        reactor: IReactorFromThreads,
        thread_id: int | None = None,
        timeout: float = START_TIMEOUT,
    ) -> ReactorThread:
        """Use a reactor another thread runs (or is about to run).

        :param reactor: the reactor (``IReactorFromThreads`` and ``IReactorCore``).
        :param thread_id: the ident of its thread; found by asking the reactor
            when ``None``.
        :param timeout: seconds to wait for the reactor to answer.
        :returns: the reactor thread.
        :raises RuntimeError: if the reactor did not answer in time.
        """
        borrowed = cls(reactor, thread_id)
        if thread_id is None:
            borrowed._thread_id = borrowed.submit(threading.get_ident).result(timeout)
        return borrowed

    def _main(self, reactor: ReactorBase) -> None:
        """The thread's body: run the reactor until it stops."""
        try:
            reactor.run(installSignalHandlers=False)
        except BaseException:
            _log.failure("the txsse reactor thread crashed")
        finally:
            self._release_all()

    @property
    def owned(self) -> bool:
        """Whether we started this reactor (and so may stop it)."""
        return self._thread is not None

    @property
    def alive(self) -> bool:
        """Whether calls can still be made (not stopped, same process)."""
        if self._stopped or self.pid != os.getpid():
            return False
        if self._thread is not None:
            return self._thread.is_alive()
        return bool(IReactorCore(self.reactor).running)

    def in_reactor_thread(self) -> bool:
        """Whether the calling thread is the reactor's thread."""
        return threading.get_ident() == self._thread_id

    # A function returning an awaitable (a Deferred, a coroutine), one returning
    # a value or a Deferred of it, or (what no _T describes) anything else.
    @overload
    def submit(
        self, function: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> Call[_T]: ...
    @overload
    def submit(
        self, function: Callable[_P, Awaitable[_T] | _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> Call[_T]: ...
    @overload
    def submit(
        self, function: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs
    ) -> Call[object]: ...

    def submit(
        self, function: Callable[_P, Awaitable[_T] | _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> Call[_T]:
        """Run ``function(*args, **kwargs)`` in the reactor thread, from any thread.

        ``function`` may return a value, a Deferred or a coroutine; its outcome
        is the call's.

        :param function: the callable.
        :param args: its positional arguments.
        :param kwargs: its keyword arguments.
        :returns: the :class:`Call`, to wait on with :meth:`Call.result`.
        :raises ReactorStopped: if the reactor thread is stopped.
        """
        call: Call[_T] = Call(self)
        with self._lock:
            if self._stopped:
                raise ReactorStopped("the txsse reactor thread is stopped")
            self._calls.add(call)
        self.reactor.callFromThread(call._run, lambda: function(*args, **kwargs))
        return call

    # As submit (a keyword argument may not follow ``*args: _P.args``, hence ``...``).
    @overload
    def call(
        self,
        function: Callable[..., Awaitable[_T]],
        *args: object,
        timeout: float | None = None,
        **kwargs: object,
    ) -> _T: ...
    @overload
    def call(
        self,
        function: Callable[..., Awaitable[_T] | _T],
        *args: object,
        timeout: float | None = None,
        **kwargs: object,
    ) -> _T: ...

    def call(
        self,
        function: Callable[..., Awaitable[_T] | _T],
        *args: object,
        timeout: float | None = None,
        **kwargs: object,
    ) -> _T:
        """Run ``function`` in the reactor thread and wait for its outcome.

        :param function: the callable (may return a Deferred or a coroutine).
        :param args: its positional arguments.
        :param timeout: seconds to wait; ``None`` for no limit.
        :param kwargs: its keyword arguments.
        :returns: its result.
        :raises TimeoutError: when ``timeout`` passed first (the work is cancelled).
        :raises Exception: whatever ``function`` raised or failed with.
        """
        submitted: Call[_T] = self.submit(function, *args, **kwargs)
        return submitted.result(timeout)

    def _forget(self, call: _Waiting) -> None:
        """A call has its outcome."""
        with self._lock:
            self._calls.discard(call)

    def _release_all(self) -> None:
        """Fail every call still waiting: the reactor will not answer them."""
        with self._lock:
            self._stopped = True
            calls, self._calls = self._calls, set()
        for call in calls:
            call._settle(Failure(ReactorStopped("the txsse reactor thread stopped")))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the reactor (if we own it) and fail the calls still waiting.

        A borrowed reactor keeps running; we only stop using it.

        :param timeout: seconds to wait for the thread to end.
        """
        if self._thread is None:
            self._release_all()
            return
        if self._thread.is_alive():
            self.reactor.callFromThread(IReactorCore(self.reactor).stop)
            self._thread.join(timeout)
        self._release_all()


def _running_global_reactor() -> ReactorThread | None:
    """The global reactor, when it runs (or is set up to run) in a background thread."""
    if "twisted.internet.reactor" not in sys.modules:
        return None
    reactor: IReactorFromThreads = default_reactor()
    if IReactorCore(reactor).running:
        ident: int | None = getattr(threadable, "ioThread", None)
        if (
            ident is None
            or ident in (threading.main_thread().ident, threading.get_ident())
            or not any(t.ident == ident and t.is_alive() for t in threading.enumerate())
        ):
            return None
        return ReactorThread.borrow(reactor, ident)
    crochet = sys.modules.get("crochet")
    if crochet is not None and getattr(getattr(crochet, "_main", None), "_started", False):
        # crochet.setup() has started its reactor thread, which is not running yet.
        return ReactorThread.borrow(reactor)
    return None


_lock = threading.Lock()
_current: ReactorThread | None = None


def reactor_thread() -> ReactorThread:
    """The process's shared reactor thread, started (or borrowed) on first use.

    :returns: the reactor thread every blocking source shares.
    """
    global _current
    with _lock:
        if _current is None or not _current.alive:
            _current = _running_global_reactor() or ReactorThread.start()
        return _current


def shutdown(timeout: float = 10.0) -> None:
    """Stop the shared reactor thread, if txsse started one; a later use starts a new one.

    :param timeout: seconds to wait for the thread to end.
    """
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None and current.pid == os.getpid():
        current.stop(timeout)


def _forget_after_fork() -> None:
    """In a forked child the thread is gone: start afresh on next use."""
    global _current, _lock
    _current = None
    _lock = threading.Lock()


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


__all__ = ["Call", "ReactorStopped", "ReactorThread", "reactor_thread", "shutdown"]
