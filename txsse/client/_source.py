"""The reconnecting event-source client service.

:class:`EventSource` is the HTTP analogue of Twisted's ``ClientService``: a small
public class over a private state machine whose states (:class:`_Idle`,
:class:`_Connecting`, :class:`_Open`, :class:`_Waiting`, :class:`_Stopped`) each
hold exactly what must be cancelled when the source leaves them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn, cast

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredQueue,
    TimeoutError,
    ensureDeferred,
    fail,
    succeed,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsse._event import Comment, Event
from txsse._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, EventStreamParser
from txsse._reactor import GlobalClock, default_reactor
from txsse._validate import check_url
from txsse.client._backoff import DEFAULT_JITTER, ReconnectDelay
from txsse.client._policy import Decision, StatusPolicy, header, resolve_policy
from txsse.client._protocol import EventStreamProtocol
from txsse.client._queue import EventQueue, end_iteration
from txsse.client._request import (
    DEFAULT_MAX_REDIRECTS,
    REDIRECT_STATUSES,
    Body,
    RequestAttempt,
    build_attempt,
    check_headers,
    redirected,
    sensitive_names,
)
from txsse.client._signals import (
    SIGNALS,
    Observers,
    Opened,
    ReadyState,
    Received,
    Reconnect,
    Signal,
)
from txsse.client._types import Agent, Clock, DelayedCall, Response, TLSPolicy
from txsse.client._wire import BytesProducer, discard_body, make_agent
from txsse.errors import (
    ConnectionFailed,
    ConnectTimeout,
    IdleTimeout,
    NetworkError,
    RedirectError,
    SSEError,
    StreamClosed,
    StreamEnded,
)

#: A per-attempt hook: may change the request in place, and may return an awaitable.
Prepare = Callable[[RequestAttempt], "Awaitable[object] | object"]

_log = Logger(namespace="txsse.client")


@dataclass
class _Idle:
    """Never started: nothing to cancel."""


@dataclass
class _Connecting:
    """A request is in flight (hook, redirects, waiting for headers).

    :ivar attempt: the attempt number.
    :ivar deferred: the attempt; cancelling it aborts the request.
    :ivar in_hook: whether the ``prepare`` hook is running (its errors are its own).
    """

    attempt: int
    deferred: Deferred[tuple[Response, RequestAttempt]] | None = None
    in_hook: bool = False


@dataclass
class _Open:
    """The stream is open and the body is being read.

    :ivar source: the source (the protocol reports here, through this state).
    :ivar url: the URL that answered.
    :ivar protocol: the body's protocol; aborting it drops the connection.
    :ivar opened_at: when it opened, for the backoff reset.
    :ivar delivered: whether it delivered an event (then it was healthy).
    :ivar last_data: when bytes last arrived, for the idle timeout.
    :ivar idle: the idle-timeout check.
    """

    source: EventSource
    url: str
    protocol: EventStreamProtocol | None = None
    opened_at: float = 0.0
    delivered: bool = False
    last_data: float = 0.0
    idle: DelayedCall | None = None
    #: Relays a chunk's items to the source (a partial: this is the hot path).
    items_received: Callable[[Sequence[Event | Comment]], None] = field(init=False)

    def __post_init__(self) -> None:
        self.items_received = partial(self.source._deliver, self)

    def retry_changed(self, milliseconds: int) -> None:
        """Relay a new ``retry:`` to the source."""
        self.source._retry_changed(self, milliseconds)

    def stream_ended(self, reason: BaseException) -> None:
        """Relay the end of the body to the source."""
        self.source._stream_ended(self, reason)


@dataclass
class _Waiting:
    """Waiting before the next reconnection.

    :ivar call: the scheduled reconnection.
    """

    call: DelayedCall


@dataclass
class _Stopped:
    """Closed by the user, or failed for good.

    :ivar error: what ``next()`` fails with once the queue is empty.
    :ivar drain: the drain deadline, while queued events may still be read.
    :ivar drained: Deferreds fired when the queue is dropped.
    """

    error: SSEError
    drain: DelayedCall | None = None
    drained: list[Deferred[None]] = field(default_factory=list)


_State = _Idle | _Connecting | _Open | _Waiting | _Stopped


class EventSource(Service):
    """A reconnecting Server-Sent Events client: one logical stream, as a service.

    Start it with :meth:`startService` (or add it to a ``MultiService``), read
    events with :meth:`next`, ``async for``, :attr:`queue` or
    :meth:`add_listener`, watch everything else with :meth:`on`, and stop it with
    :meth:`close` or :meth:`stopService`.

    :param url: the absolute ``http`` or ``https`` URL of the stream.
    :param headers: extra request headers, added over ``Accept:
        text/event-stream`` and ``Cache-Control: no-cache``.
    :param method: the HTTP method.
    :param body: the request body: bytes, or a callable returning bytes, called
        on every attempt.
    :param last_event_id: the last event ID to resume from.
    :param reconnect_delay: the base reconnection time, seconds; the server's
        ``retry:`` replaces it.
    :param max_reconnect_delay: the longest wait between attempts, seconds.
    :param connect_timeout: seconds to wait for response headers, redirects
        included.
    :param idle_timeout: seconds without any byte (comments included) after
        which the connection is dropped and reestablished; ``None`` for never.
    :param policy: ``"resilient"`` (the default), ``"strict"`` or a callable
        (see :mod:`txsse` status policies).
    :param queue_size: ``None`` for an unbounded queue; ``N`` pauses reading
        from the network while N events wait, and resumes when the queue is down
        to half; ``0`` turns the queue off (listeners only).
    :param reactor: the reactor (``IReactorTime``, and for the default agent
        ``IReactorTCP``/``IReactorSSL``); the global reactor by default.
    :param agent: the ``IAgent`` requests go through; by default a
        ``twisted.web.client.Agent`` with a non-persistent pool and TLS
        verification.
    :param tls: the ``IPolicyForHTTPS`` of the default agent (see
        :func:`txsse.trust_certificate`); ignored when ``agent`` is given.
    :param prepare: called with a :class:`~txsse.RequestAttempt` before every
        attempt; may change its headers in place and may return an awaitable
        (for example to refresh a token).
    :param max_redirects: the most redirects followed per connection.
    :param reset_backoff_after: seconds a connection must stay open for the
        next reconnection to wait the base delay again (a connection that
        delivered an event resets it too).
    :param backoff_factor: growth of the delay per consecutive failure.
    :param jitter: fraction of the delay that is randomly added to it.
    :param random: returns a float in [0, 1) for the jitter;
        :func:`random.random` by default (tests pass a fixed one).
    :param sensitive_headers: names of request headers dropped when a redirect
        leaves the origin; ``Authorization``, ``Cookie`` and
        ``Proxy-Authorization`` always are.
    :param allow_insecure_redirect: follow a redirect from ``https`` to
        ``http``; refused with :class:`~txsse.errors.RedirectError` by default.
    :param max_line_length: passed to the parser.
    :param max_event_size: passed to the parser.
    :raises ValueError: for an invalid URL, header or option.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: Body = None,
        last_event_id: str = "",
        reconnect_delay: float = 3.0,
        max_reconnect_delay: float = 30.0,
        connect_timeout: float | None = 30.0,
        idle_timeout: float | None = 300.0,
        policy: str | StatusPolicy = "resilient",
        queue_size: int | None = None,
        reactor: Any = None,
        agent: Agent | None = None,
        tls: TLSPolicy | None = None,
        prepare: Prepare | None = None,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        reset_backoff_after: float = 60.0,
        backoff_factor: float = 2.0,
        jitter: float = DEFAULT_JITTER,
        random: Callable[[], float] | None = None,
        sensitive_headers: Iterable[str] = (),
        allow_insecure_redirect: bool = False,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self._url = check_url(url)
        self._headers = check_headers(headers or {})
        if not method or not method.isascii() or not method.isalpha():
            raise ValueError(f"invalid HTTP method {method!r}")
        self._method = method.upper()
        if body is not None and not isinstance(body, bytes) and not callable(body):
            raise TypeError("body must be bytes, a callable returning bytes, or None")
        self._body = body
        if "\0" in last_event_id or "\r" in last_event_id or "\n" in last_event_id:
            raise ValueError("last_event_id cannot contain NUL, CR or LF")
        self._last_event_id = last_event_id
        for name, value in (("connect_timeout", connect_timeout), ("idle_timeout", idle_timeout)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(
                    f"{name} must be a positive number of seconds or None, not {value!r}"
                )
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._delay = ReconnectDelay(
            reconnect_delay,
            max_reconnect_delay,
            factor=backoff_factor,
            jitter=jitter,
            random=random,
        )
        self._policy = resolve_policy(policy)
        if queue_size is not None and queue_size < 0:
            raise ValueError(f"queue_size must be None or >= 0, not {queue_size!r}")
        self._queue_size = queue_size
        self._resume_at = (queue_size or 0) // 2
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, not {max_redirects!r}")
        self._max_redirects = max_redirects
        self._sensitive = sensitive_names(sensitive_headers)
        self._allow_insecure_redirect = allow_insecure_redirect
        self._reset_backoff_after = reset_backoff_after
        self._max_line_length = max_line_length
        self._max_event_size = max_event_size
        # The global reactor is looked up when the source starts, not now: constructing a
        # source must not install the default reactor before the application picks one.
        self._reactor: Any = reactor
        self._clock: Clock = reactor if reactor is not None else GlobalClock()
        self._agent = agent
        self._tls = tls
        self._prepare = prepare
        self._queue = EventQueue(self._taken)
        # Waiting next() calls are woken on the reactor's next turn, once for
        # everything one network read delivered, never from inside the parser.
        self._wakeup: DelayedCall | None = None
        # Whether next() must call _taken (paused for back-pressure, or draining).
        self._watch_taken = False
        self._listeners = Observers(None, _log)
        self._signals = Observers(SIGNALS, _log)
        self._state: _State = _Idle()
        self._ready = ReadyState.CLOSED
        self._attempts = 0
        # Reconnections since the last healthy connection (Reconnect.attempt),
        # and consecutive failed connections (the backoff's growth).
        self._reconnects = 0
        self._failures = 0
        self._opened: Opened | None = None
        self._open_waiters: list[Deferred[Opened]] = []
        #: The last error reported (network, timeout, status...), or ``None``.
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<EventSource {self._url} {self._ready.name}>"

    # Public properties

    @property
    def url(self) -> str:
        """The stream's URL, as given (reconnections always start from it)."""
        return self._url

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING``, ``OPEN`` or ``CLOSED``."""
        return self._ready

    @property
    def last_event_id(self) -> str:
        """The last event ID: what the next connection sends as ``Last-Event-ID``."""
        state = self._state
        if isinstance(state, _Open) and state.protocol is not None:
            return state.protocol.parser.last_event_id
        return self._last_event_id

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        if "\0" in value or "\r" in value or "\n" in value:
            raise ValueError("last_event_id cannot contain NUL, CR or LF")
        self._last_event_id = value
        state = self._state
        if isinstance(state, _Open) and state.protocol is not None:
            state.protocol.parser.last_event_id = value

    @property
    def reconnect_delay(self) -> float:
        """The base reconnection time in seconds (the server's ``retry:`` if it sent one)."""
        return self._delay.base

    @property
    def queue(self) -> DeferredQueue[Event]:
        """The ``DeferredQueue`` behind :meth:`next`: every event, in order."""
        return self._queue

    # Delivery

    def next(self) -> Deferred[Event]:
        """The next event.

        :returns: a Deferred that fires with the next :class:`~txsse.Event`
            (at once if one is queued). It fails with
            :class:`~txsse.errors.StreamClosed` once the source is closed and
            the queue is empty, or with the
            :class:`~txsse.errors.ConnectionFailed` that stopped the source.
            Cancelling it gives up the wait without losing an event.
        """
        pending = self._queue.pending
        if pending:
            if self._queue.waiting:
                self._wake()  # earlier callers first
                return self.next()
            event = succeed(pending.popleft())
            if self._watch_taken:
                self._taken()
            return event
        if self._queue_size == 0:
            return fail(ValueError("the queue is off (queue_size=0): use add_listener"))
        state = self._state
        if isinstance(state, _Stopped):
            return fail(state.error)
        # The queue is empty: wait (no need to tell _taken, nothing was taken).
        return DeferredQueue.get(self._queue)

    def __aiter__(self) -> EventSource:
        """Iterate over the events with ``async for``; it ends when the source is closed."""
        return self

    def __anext__(self) -> Deferred[Event]:
        """The next event for ``async for`` (a Deferred: no coroutine per event).

        :returns: a Deferred that fires with the event, or fails with
            ``StopAsyncIteration`` once the source is closed, or with the
            :class:`~txsse.errors.ConnectionFailed` that stopped the source.
        """
        return self.next().addErrback(end_iteration)

    def add_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Call ``callback(event)`` for every event of type ``event_type``.

        Any type works, including ``"error"`` and ``"open"``: these are event
        types from the stream, unrelated to :meth:`on`. Exceptions from the
        callback are logged; delivery goes on.

        :param event_type: the ``event:`` field to listen to (``"message"`` for
            events without one).
        :param callback: the callable.
        """
        self._listeners.add(event_type, callback)

    def remove_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Undo :meth:`add_listener`.

        :param event_type: the event type.
        :param callback: the callable.
        """
        self._listeners.remove(event_type, callback)

    def on(self, signal: Signal, callback: Callable[[Any], object]) -> None:
        """Observe the source: the one mechanism for everything but events.

        Signals and the value each callback receives: ``"state"`` the new
        :class:`~txsse.ReadyState`; ``"open"`` an :class:`~txsse.Opened` (URL,
        status, response headers); ``"error"`` the exception (also in
        :attr:`last_error`); ``"comment"`` a :class:`~txsse.Comment`;
        ``"reconnect"`` a :class:`~txsse.Reconnect` (attempt, delay, reason);
        ``"retry"`` the server's new reconnection time in seconds;
        ``"data"`` a :class:`~txsse.Received` (bytes, events) for every chunk
        of the body. Exceptions from callbacks are logged.

        :param signal: the signal name.
        :param callback: the callable.
        :raises ValueError: for an unknown signal.
        """
        self._signals.add(signal, callback)

    def off(self, signal: Signal, callback: Callable[[Any], object]) -> None:
        """Undo :meth:`on`.

        :param signal: the signal name.
        :param callback: the callable.
        """
        self._signals.remove(signal, callback)

    def when_open(self, *, fail_on_error: bool = False) -> Deferred[Opened]:
        """Wait until the stream is open.

        :param fail_on_error: fail with the first error reported while waiting
            (a refused connection, a timeout, a retried status...) instead of
            waiting through the reconnections, so that a script notices a wrong
            URL at once. The source itself goes on reconnecting: close it if you
            give up.
        :returns: a Deferred that fires with an :class:`~txsse.Opened` (at once
            if the stream is open), or fails with the
            :class:`~txsse.errors.ConnectionFailed` that stopped the source, or
            :class:`~txsse.errors.StreamClosed` if it is closed first (and with
            ``fail_on_error``, with the first error reported).
        """
        state = self._state
        if isinstance(state, _Open) and self._opened is not None:
            return succeed(self._opened)
        if isinstance(state, _Stopped):
            return fail(state.error)

        def forget(waiter: Deferred[Opened]) -> None:
            if waiter in self._open_waiters:
                self._open_waiters.remove(waiter)

        waiter: Deferred[Opened] = Deferred(forget)
        self._open_waiters.append(waiter)
        if fail_on_error:

            def failed(error: BaseException) -> None:
                forget(waiter)
                waiter.errback(error)

            def stop_watching(result: object) -> object:
                self.off("error", failed)
                return result

            self.on("error", failed)
            waiter.addBoth(stop_watching)
        return waiter

    # Service and lifecycle

    def startService(self) -> None:
        """Start the stream (again, after :meth:`close`, keeping the last event ID)."""
        if self._reactor is None:
            self._reactor = self._clock = default_reactor()
        self.running = True
        state = self._state
        if isinstance(state, _Idle | _Stopped):
            self._drop_queue(state)
            self._reconnects = self._failures = 0
            self._connect()

    def stopService(self) -> Deferred[None]:
        """Stop the stream, as :meth:`close` without draining.

        :returns: a Deferred that fires when the source is closed.
        """
        return self.close()

    def close(self, drain: float | None = None) -> Deferred[None]:
        """Close the source: abort the connection, stop reconnecting. Idempotent.

        :param drain: ``None`` drops queued events at once and fails pending
            :meth:`next` calls with :class:`~txsse.errors.StreamClosed`; a
            number of seconds lets queued events still be read for up to that
            long (or until the queue is empty).
        :returns: a Deferred that fires with ``None`` when the queue is dropped.
        """
        self.running = False
        state = self._state
        if isinstance(state, _Stopped) and isinstance(state.error, StreamClosed):
            return self._when_drained(state) if state.drain is not None else succeed(None)
        stopped = _Stopped(StreamClosed(f"the event source for {self._url} was closed"))
        self._leave(stopped)
        _log.info("Closed the event stream {url}", url=self._url)
        self._set_ready(ReadyState.CLOSED)
        self._fail_waiters(stopped)
        if drain is not None and self._queue.pending:
            stopped.drain = self._clock.callLater(drain, self._drop_queue, stopped)
            self._watch_taken = True
            return self._when_drained(stopped)
        self._drop_queue(stopped)
        return succeed(None)

    def restart(self) -> None:
        """Drop the current connection (or wait) and reconnect now; no error is reported."""
        if not self.running or isinstance(self._state, _Idle | _Stopped):
            self.startService()
            return
        _log.info("Restarting the event stream {url}", url=self._url)
        self._connect()

    # The state machine

    def _leave(self, new: _State) -> None:
        """Cancel what the current state holds, then enter ``new``."""
        old, self._state = self._state, new
        if isinstance(old, _Connecting):
            if old.deferred is not None:
                old.deferred.cancel()
        elif isinstance(old, _Open):
            if old.idle is not None and old.idle.active():
                old.idle.cancel()
            if old.protocol is not None:
                self._last_event_id = old.protocol.parser.last_event_id
                old.protocol.abort()
        elif isinstance(old, _Waiting) and old.call.active():
            old.call.cancel()

    def _set_ready(self, ready: ReadyState) -> None:
        """Change the ready state, telling ``state`` observers."""
        self._wake()  # events that arrived before the change come first
        if ready != self._ready:
            self._ready = ready
            self._signals.emit("state", ready)

    def _connect(self) -> None:
        """Start a connection attempt now."""
        self._attempts += 1
        state = _Connecting(self._attempts)
        self._leave(state)
        self._set_ready(ReadyState.CONNECTING)
        if self._state is not state:
            return
        attempt = Deferred.fromCoroutine(self._request(state))
        state.deferred = attempt
        if self._connect_timeout is not None:
            attempt.addTimeout(
                self._connect_timeout, cast(Any, self._clock), onTimeoutCancel=self._timed_out
            )
        attempt.addCallbacks(
            self._responded, self._attempt_failed, callbackArgs=(state,), errbackArgs=(state,)
        )

    async def _request(self, state: _Connecting) -> tuple[Response, RequestAttempt]:
        """Send the request, following redirects, until a final response."""
        state.in_hook = True  # the body factory and the prepare hook are the caller's code
        request = build_attempt(
            self._url, self._method, self._headers, self._body, self.last_event_id, state.attempt
        )
        if self._prepare is not None:
            result = self._prepare(request)
            if isinstance(result, Deferred):
                await result
            elif inspect.isawaitable(result):
                await ensureDeferred(cast(Any, result))
        state.in_hook = False
        agent = self._agent
        if agent is None:
            agent = self._agent = make_agent(self._reactor, self._tls)
        hops = 0
        while True:
            _log.debug(
                "Requesting {method} {url} (attempt {attempt})",
                method=request.method,
                url=request.url,
                attempt=state.attempt,
            )
            producer = BytesProducer(request.body) if request.body is not None else None
            response: Response = await agent.request(
                request.method.encode("ascii"),
                request.url.encode("utf-8"),
                request.twisted_headers(),
                producer,
            )
            if response.code not in REDIRECT_STATUSES:
                return response, request
            location = header(response.headers, b"location")
            discard_body(response)
            hops += 1
            if hops > self._max_redirects:
                raise RedirectError(
                    f"{self._url}: more than {self._max_redirects} redirects; "
                    "the server is probably redirecting in a loop"
                )
            request = redirected(
                request,
                response.code,
                location,
                sensitive=self._sensitive,
                allow_insecure=self._allow_insecure_redirect,
            )

    def _timed_out(self, result: object, timeout: float) -> NoReturn:
        """Fail a timed-out attempt with ConnectTimeout, whatever the agent made of the cancel.

        :raises ConnectTimeout: always.
        """
        raise ConnectTimeout(f"{self._url}: no response headers within {timeout} seconds")

    def _attempt_failed(self, failure: Failure, state: _Connecting) -> None:
        """The attempt ended without a final response."""
        if self._state is not state:
            return
        error = cast(BaseException, failure.value)
        if isinstance(error, TimeoutError | CancelledError):
            error = ConnectTimeout(f"{self._url}: the attempt was cancelled ({error})")
        if isinstance(error, ConnectionFailed):
            self._fail(error)
            return
        elif not isinstance(error, SSEError) and not state.in_hook:
            error = NetworkError(self._url, error)
        self._reconnect_later(error)

    def _responded(self, result: tuple[Response, RequestAttempt], state: _Connecting) -> None:
        """A final response arrived: ask the policy what to do with it."""
        response, request = result
        if self._state is not state:
            discard_body(response)
            return
        try:
            decision = self._policy(
                response.code, response.headers, request.url, self._clock.seconds()
            )
        except Exception as bug:
            _log.failure("the status policy {policy!r} raised", policy=self._policy)
            decision = Decision(
                "fail", ConnectionFailed(f"{request.url}: the status policy raised {bug!r}")
            )
        if decision.action != "open":
            discard_body(response)
            error = decision.error or ConnectionFailed(
                f"{request.url}: the status policy refused HTTP {response.code}"
            )
            if decision.action == "retry":
                self._reconnect_later(error, decision.retry_after or 0.0)
            else:
                self._fail(error)
            return
        self._open(response, request)

    def _open(self, response: Response, request: RequestAttempt) -> None:
        """Open the stream on ``response``."""
        now = self._clock.seconds()
        state = _Open(self, request.url, opened_at=now, last_data=now)
        self._leave(state)
        parser = EventStreamParser(
            self._last_event_id,
            max_line_length=self._max_line_length,
            max_event_size=self._max_event_size,
            comments=True,
        )
        protocol = state.protocol = EventStreamProtocol(parser, state, self._clock)
        if self._idle_timeout is not None:
            state.idle = self._clock.callLater(self._idle_timeout, self._check_idle, state)
        opened = self._opened = Opened(request.url, response.code, response.headers)
        _log.info("Opened the event stream {url}", url=request.url)
        self._set_ready(ReadyState.OPEN)
        if self._state is state:
            waiters, self._open_waiters = self._open_waiters, []
            for waiter in waiters:
                waiter.callback(opened)
        if self._state is state:
            self._signals.emit("open", opened)
        if self._state is state:
            response.deliverBody(protocol)
        else:
            discard_body(response)

    def _deliver(self, state: _Open, items: Sequence[Event | Comment]) -> None:
        """Deliver a chunk's events and comments, in order."""
        state.last_data = self._clock.seconds()
        if "data" in self._signals.by_name and state.protocol is not None:
            events = sum(1 for item in items if item.__class__ is Event)
            self._signals.emit("data", Received(state.protocol.chunk_size, events))
        if not items:
            return
        if not state.delivered:
            state.delivered = any(item.__class__ is Event for item in items)
        if self._listeners.by_name or "comment" in self._signals.by_name:
            self._deliver_each(state, items)
        elif self._queue_size != 0:
            # Nobody but the queue: hand the whole chunk over at once.
            pending = self._queue.pending
            if len(items) == 1:
                if items[0].__class__ is Event:
                    pending.append(items[0])
            else:
                pending.extend([item for item in items if item.__class__ is Event])
        queue = self._queue
        if queue.waiting and queue.pending and self._wakeup is None:
            self._wakeup = self._clock.callLater(0, self._wake)
        size = self._queue_size
        if size and len(self._queue.pending) >= size and self._state is state:
            assert state.protocol is not None
            state.protocol.pause()
            self._watch_taken = True

    def _deliver_each(self, state: _Open, items: Sequence[Event | Comment]) -> None:
        """Deliver item by item: comments, then for each event its listeners, then the queue."""
        by_type = self._listeners.by_name
        put = self._queue.pending.append if self._queue_size != 0 else None
        delivered: Event | None = None
        for item in items:
            if self._state is not state:
                if delivered is not None:
                    self._last_event_id = delivered.id
                return
            if item.__class__ is Comment:
                self._signals.emit("comment", item)
                continue
            event = cast(Event, item)
            listeners = by_type.get(event.event)
            if listeners:
                self._listeners.call(listeners, event.event, event)
            if put is not None:
                put(event)
            delivered = event

    def _wake(self) -> None:
        """Hand queued events to the ``next()`` calls waiting for them, in order."""
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and wakeup.active():
            wakeup.cancel()
        queue = self._queue
        waiting, pending = queue.waiting, queue.pending
        while waiting and pending:
            waiting.pop(0).callback(pending.popleft())
            if self._watch_taken:
                self._taken()

    def _taken(self) -> None:
        """An event left the queue: resume reading, or finish draining."""
        state = self._state
        if isinstance(state, _Open):
            protocol = state.protocol
            if (
                protocol is not None
                and protocol.paused
                and len(self._queue.pending) <= self._resume_at
            ):
                self._watch_taken = False
                state.last_data = self._clock.seconds()
                protocol.resume()
        elif isinstance(state, _Stopped) and state.drain is not None and not self._queue.pending:
            self._drop_queue(state)

    def _retry_changed(self, state: _Open, milliseconds: int) -> None:
        """The server sent a new ``retry:``."""
        if self._state is not state:
            return
        self._delay.server_retry(milliseconds)
        _log.debug(
            "{url} set the reconnection time to {delay} s", url=self._url, delay=self._delay.base
        )
        self._signals.emit("retry", self._delay.base)

    def _check_idle(self, state: _Open) -> None:
        """The idle timer fired: drop the connection if nothing arrived for too long."""
        assert self._idle_timeout is not None
        if state.protocol is not None and state.protocol.paused:
            state.last_data = self._clock.seconds()
        idle_for = self._clock.seconds() - state.last_data
        if idle_for < self._idle_timeout:
            state.idle = self._clock.callLater(
                self._idle_timeout - idle_for, self._check_idle, state
            )
            return
        state.idle = None
        self._reconnect_later(
            IdleTimeout(f"{self._url}: nothing received for {self._idle_timeout} seconds")
        )

    def _stream_ended(self, state: _Open, reason: BaseException) -> None:
        """The body ended (cleanly, broken, or unparsable): reconnect."""
        if self._state is not state:
            return
        error = reason
        if not isinstance(error, SSEError):
            error = NetworkError(state.url, error)
        self._reconnect_later(error)

    def _reconnect_later(self, error: BaseException, at_least: float = 0.0) -> None:
        """Report ``error`` and schedule the next attempt."""
        state = self._state
        if isinstance(state, _Open) and (
            state.delivered or self._clock.seconds() - state.opened_at >= self._reset_backoff_after
        ):
            self._reconnects = self._failures = 0
        else:
            self._failures += 1
        delay = self._delay.delay(self._failures, at_least=at_least)
        self._reconnects += 1
        waiting = _Waiting(self._clock.callLater(delay, self._connect))
        self._leave(waiting)
        # As a browser: readyState is CONNECTING by the time the error is announced.
        self._set_ready(ReadyState.CONNECTING)
        self._report(error)
        reconnect = Reconnect(self._reconnects, delay, error)
        _log.info(
            "Reconnecting to {url} in {delay} s (attempt {attempt}): {reason}",
            url=self._url,
            delay=round(delay, 3),
            attempt=reconnect.attempt,
            reason=error,
        )
        if self._state is waiting:
            self._signals.emit("reconnect", reconnect)

    def _fail(self, error: SSEError) -> None:
        """Fail the connection for good: CLOSED, no reconnection."""
        stopped = _Stopped(error)
        self._leave(stopped)
        self.running = False
        self._set_ready(ReadyState.CLOSED)
        self._report(error)
        self._fail_waiters(stopped)

    def _fail_waiters(self, state: _Stopped) -> None:
        """Fail ``when_open()`` and pending ``next()`` calls with the state's error."""
        self._wake()  # what arrived before the end is delivered first
        waiting, self._open_waiters = self._open_waiters, []
        for waiter in waiting:
            waiter.errback(state.error)
        if self._state is state:
            pending, self._queue.waiting = self._queue.waiting, []
            for taker in pending:
                taker.errback(state.error)

    def _report(self, error: BaseException) -> None:
        """Record, log and signal an error."""
        self._wake()  # events that arrived before the error come first
        self.last_error = error
        # Most errors name the URL already: say it once.
        text = "{error}" if self._url in str(error) else "Event stream {url}: {error}"
        if isinstance(error, StreamEnded):
            _log.info(text, url=self._url, error=error)
        else:
            _log.warn(text, url=self._url, error=error)
        self._signals.emit("error", error)

    def _when_drained(self, state: _Stopped) -> Deferred[None]:
        """A Deferred that fires when the draining queue is dropped."""
        waiter: Deferred[None] = Deferred()
        state.drained.append(waiter)
        return waiter

    def _drop_queue(self, state: _Idle | _Stopped) -> None:
        """Forget queued events and fail pending ``next()`` calls."""
        if isinstance(state, _Idle):
            return
        if state.drain is not None and state.drain.active():
            state.drain.cancel()
        state.drain = None
        self._wake()
        self._queue.pending.clear()
        self._watch_taken = False
        waiters, self._queue.waiting = self._queue.waiting, []
        for waiter in waiters:
            waiter.errback(state.error)
        drained, state.drained = state.drained, []
        for done in drained:
            done.callback(None)


__all__ = ["EventSource", "Prepare"]
