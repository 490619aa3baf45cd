"""The event source's lifecycle: inputs and transitions between the states of ``_states``.

Inputs return nothing, as Automat requires of inputs a callback may call: an
input sent while another runs waits for it, a report from a state that was left
meanwhile is dropped, and user code is only run by the
:class:`~txsse.client._delivery.Delivery`, once the input is over.

Automat's ``TypeMachineBuilder`` is not used: it builds the new state's data
before the transition's output sees the old state's data, whereas here the old
state must be left first (the next request's ``Last-Event-ID`` is what the old
connection's parser saw, and the old connection must be gone before a new
attempt starts), and events are delivered outside the machine, on the hot path,
without an input per network read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import NoReturn

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent, IPolicyForHTTPS, IResponse

from txsse._event import Comment, Event
from txsse._parser import EventStreamParser
from txsse._reactor import default_reactor
from txsse.client._attempt import request_stream
from txsse.client._backoff import ReconnectDelay
from txsse.client._decoding import check_encoding, deliver_body
from txsse.client._delivery import Delivery
from txsse.client._policy import Decision
from txsse.client._protocol import EventStreamProtocol
from txsse.client._request import RequestAttempt
from txsse.client._signals import Opened, ReadyState, Received, Reconnect
from txsse.client._states import (
    Closed,
    Connecting,
    Failed,
    Idle,
    Open,
    Settings,
    State,
    Waiting,
)
from txsse.client._wire import discard_body, make_agent
from txsse.errors import (
    ConnectionFailed,
    ConnectTimeout,
    IdleTimeout,
    NetworkError,
    SSEError,
    StreamClosed,
    StreamEnded,
)

_log = Logger(namespace="txsse.client")


class Machine:
    """The states and transitions of one event source.

    :param settings: the source's settings.
    :param delay: the reconnection delay policy.
    :param clock: the reactor's clock.
    :param reactor: the reactor for the default agent, or ``None`` for the
        global one.
    :param agent: the agent, or ``None`` for the default one.
    :param tls: the default agent's TLS policy.
    :param last_event_id: where to resume.
    :param stopped: called when the source stops by itself (a final error).
    """

    def __init__(
        self,
        settings: Settings,
        delay: ReconnectDelay,
        clock: IReactorTime,
        reactor: IReactorTime | None,
        agent: IAgent | None,
        tls: IPolicyForHTTPS | None,
        last_event_id: str,
        stopped: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.delay = delay
        self.clock = clock
        self.reactor = reactor
        self.agent = agent
        self.tls = tls
        self.delivery = Delivery(_log, self.taken, queue_on=settings.queue_size != 0)
        self.state: State = Idle()
        self.ready = ReadyState.CLOSED
        self.last_error: BaseException | None = None
        self.opened: Opened | None = None
        self._last_event_id = last_event_id
        self._stopped = stopped
        self._resume_at = (settings.queue_size or 0) // 2
        self._attempts = 0
        # Reconnections since the last healthy connection (Reconnect.attempt),
        # and consecutive failed connections (the backoff's growth).
        self._reconnects = 0
        self._failures = 0
        self._inputs: deque[tuple[object, Callable[..., None], tuple[object, ...]]] = deque()

    @property
    def url(self) -> str:
        """The source's URL."""
        return self.settings.request.url

    # Running inputs

    def send(self, input: Callable[..., None], *args: object) -> None:
        """Run an input (user calls: start, stop, restart), then deliver.

        :param input: the input.
        :param args: its arguments.
        """
        self.report(None, input, *args)

    def report(self, owner: object, input: Callable[..., None], *args: object) -> None:
        """Run an input reported by ``owner``'s resources, then deliver.

        An input sent while another runs waits for it; one reported by a
        state the machine has left by then is dropped.

        :param owner: the reporting state, or ``None``.
        :param input: the input.
        :param args: its arguments.
        """
        self._inputs.append((owner, input, args))
        delivery = self.delivery
        if delivery.busy:
            return
        delivery.busy = True
        try:
            while self._inputs:
                owner, input, args = self._inputs.popleft()
                if owner is None or owner is self.state:
                    input(*args)
        finally:
            delivery.busy = False
        delivery.flush()

    # Reading the state

    @property
    def last_event_id(self) -> str:
        """What the next request sends as ``Last-Event-ID``."""
        state = self.state
        if isinstance(state, Open) and state.protocol is not None:
            return state.protocol.parser.last_event_id
        return self._last_event_id

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        self._last_event_id = value
        state = self.state
        if isinstance(state, Open) and state.protocol is not None:
            state.protocol.parser.last_event_id = value

    # Inputs

    def start(self) -> None:
        """Start (again): a new stream, keeping the last event ID; no-op while running."""
        state = self.state
        if isinstance(state, Idle | Failed | Closed):
            self._drop_queue(state)
            self._reconnects = self._failures = 0
            self.connect()

    def stop(self, drain: float | None) -> None:
        """Close: abort, stop reconnecting; keep queued events readable ``drain`` seconds."""
        if isinstance(self.state, Closed):
            return
        closed = Closed(StreamClosed(f"the event source for {self.url} was closed"))
        self._enter(closed)
        _log.info("Closed the event stream {url}", url=self.url)
        self._set_ready(ReadyState.CLOSED)
        self.delivery.failed(closed.error, closed)
        if drain is not None and self.delivery.queue.pending:
            closed.drain = self.clock.callLater(
                drain, self.report, closed, self._drop_queue, closed
            )
            self.delivery.queue.watched = True
        else:
            self._drop_queue(closed)

    def restart(self) -> None:
        """Drop the connection (or the wait) and connect now, reporting no error."""
        if isinstance(self.state, Idle | Failed | Closed):
            self.start()
            return
        _log.info("Restarting the event stream {url}", url=self.url)
        self.connect()

    def connect(self) -> None:
        """Start a connection attempt now."""
        self._attempts += 1
        state = Connecting(self._attempts)
        self._enter(state)
        self._set_ready(ReadyState.CONNECTING)
        if self.agent is None:
            self.agent = make_agent(default_reactor(self.reactor), self.tls)
        attempt = Deferred.fromCoroutine(
            request_stream(self.settings.request, self.agent, self.last_event_id, state.attempt)
        )
        state.deferred = attempt
        timeout = self.settings.connect_timeout
        if timeout is not None:
            attempt.addTimeout(timeout, self.clock, onTimeoutCancel=self._timed_out)
        attempt.addCallbacks(
            self._responded, self._attempt_failed, callbackArgs=(state,), errbackArgs=(state,)
        )

    def _timed_out(self, result: object, timeout: float) -> NoReturn:
        """Fail a timed-out attempt with ConnectTimeout, whatever the agent made of the cancel.

        :raises ConnectTimeout: always.
        """
        raise ConnectTimeout(f"{self.url}: no response headers within {timeout} seconds")

    def _attempt_failed(self, failure: Failure, state: Connecting) -> None:
        """The attempt ended without a final response (a report of ``state``)."""
        error = failure.value
        if isinstance(error, TimeoutError | CancelledError):
            error = ConnectTimeout(f"{self.url}: the attempt was cancelled ({error})")
        if isinstance(error, ConnectionFailed):
            self.report(state, self.fail, error)
        else:
            self.report(state, self.reconnect_later, error)

    def _responded(self, result: tuple[IResponse, RequestAttempt], state: Connecting) -> None:
        """A final response arrived: ask the policy what to do with it."""
        response, request = result
        if state is not self.state:
            discard_body(response)  # too late: the attempt was left meanwhile
            return
        try:
            decision = self.settings.policy(
                response.code, response.headers, request.url, self.clock.seconds()
            )
        except Exception as bug:
            _log.failure("the status policy {policy!r} raised", policy=self.settings.policy)
            decision = Decision(
                "fail", ConnectionFailed(f"{request.url}: the status policy raised {bug!r}")
            )
        if decision.action == "open":
            undecodable = check_encoding(response.headers, request.url)
            if undecodable is None:
                self.report(state, self.open, response, request)
                return
            decision = Decision("fail", undecodable)  # never compressed bytes to the parser
        discard_body(response)
        error = decision.error or ConnectionFailed(
            f"{request.url}: the status policy refused HTTP {response.code}"
        )
        if decision.action == "retry":
            self.report(state, self.reconnect_later, error, decision.retry_after or 0.0)
        else:
            self.report(state, self.fail, error)

    def open(self, response: IResponse, request: RequestAttempt) -> None:
        """Open the stream on ``response``."""
        now = self.clock.seconds()
        state = Open(self, request.url, opened_at=now, last_data=now)
        self._enter(state)
        settings = self.settings
        parser = EventStreamParser(
            self._last_event_id,
            max_line_length=settings.max_line_length,
            max_event_size=settings.max_event_size,
            comments=True,
        )
        protocol = state.protocol = EventStreamProtocol(parser, state, self.clock)
        if settings.idle_timeout is not None:
            state.idle = self.clock.callLater(settings.idle_timeout, self._check_idle, state)
        opened = self.opened = Opened(request.url, response.code, response.headers)
        _log.info("Opened the event stream {url}", url=request.url)
        self._set_ready(ReadyState.OPEN)
        self.delivery.opened(opened, state)
        deliver_body(response, protocol)

    def received(self, state: Open, items: Sequence[Event | Comment]) -> None:
        """A chunk of the body was parsed (the hot path: not an input, nothing changes state)."""
        state.last_data = self.clock.seconds()
        delivery = self.delivery
        if "data" in delivery.signals.by_name and state.protocol is not None:
            events = sum(1 for item in items if isinstance(item, Event))
            delivery.signal("data", Received(state.protocol.chunk_size, events), state)
        if items:
            if not state.delivered:
                state.delivered = any(isinstance(item, Event) for item in items)
            delivery.items(state, items, self._interrupted)
        delivery.flush()
        size = self.settings.queue_size
        protocol = state.protocol
        if size and len(delivery.queue.pending) >= size and protocol and not protocol.done:
            protocol.pause()
            delivery.queue.watched = True

    def _interrupted(self, delivered: Event) -> None:
        """A callback left the open state mid-chunk: resume after the last event delivered."""
        self._last_event_id = delivered.id

    def retry_changed(self, state: Open, milliseconds: int) -> None:
        """The server sent a new ``retry:``."""
        self.delay.server_retry(milliseconds)
        _log.debug(
            "{url} set the reconnection time to {delay} s",
            url=self.url,
            delay=self.delay.base,
        )
        self.delivery.signal("retry", self.delay.base, state)
        self.delivery.flush()

    def taken(self) -> None:
        """An event left the queue: resume reading, or finish draining."""
        state = self.state
        queue = self.delivery.queue
        if isinstance(state, Open):
            protocol = state.protocol
            if protocol is not None and protocol.paused and len(queue.pending) <= self._resume_at:
                queue.watched = False
                state.last_data = self.clock.seconds()
                protocol.resume()
        elif isinstance(state, Closed) and state.drain is not None and not queue.pending:
            self.report(state, self._drop_queue, state)

    def _check_idle(self, state: Open) -> None:
        """The idle timer fired: drop the connection if nothing arrived for too long."""
        idle_timeout = self.settings.idle_timeout
        assert idle_timeout is not None
        if state.protocol is not None and state.protocol.paused:
            state.last_data = self.clock.seconds()
        idle_for = self.clock.seconds() - state.last_data
        if idle_for < idle_timeout:
            state.idle = self.clock.callLater(idle_timeout - idle_for, self._check_idle, state)
            return
        state.idle = None
        error = IdleTimeout(f"{self.url}: nothing received for {idle_timeout} seconds")
        self.report(state, self.reconnect_later, error)

    def stream_ended(self, state: Open, reason: BaseException) -> None:
        """The body ended (cleanly, broken, or unparsable): reconnect."""
        error = reason
        if not isinstance(error, SSEError):
            error = NetworkError(state.url, error)
        self.report(state, self.reconnect_later, error)

    def reconnect_later(self, error: BaseException, at_least: float = 0.0) -> None:
        """Report ``error`` and schedule the next attempt."""
        state = self.state
        if isinstance(state, Open) and (
            state.delivered
            or self.clock.seconds() - state.opened_at >= self.settings.reset_backoff_after
        ):
            self._reconnects = self._failures = 0
        else:
            self._failures += 1
        delay = self.delay.delay(self._failures, at_least=at_least)
        self._reconnects += 1
        waiting = Waiting()
        self._enter(waiting)
        waiting.call = self.clock.callLater(delay, self.report, waiting, self.connect)
        # As a browser: readyState is CONNECTING by the time the error is announced.
        self._set_ready(ReadyState.CONNECTING)
        self._report(error)
        reconnect = Reconnect(self._reconnects, delay, error)
        _log.info(
            "Reconnecting to {url} in {delay} s (attempt {attempt}): {reason}",
            url=self.url,
            delay=round(delay, 3),
            attempt=reconnect.attempt,
            reason=error,
        )
        self.delivery.signal("reconnect", reconnect, waiting)

    def fail(self, error: SSEError) -> None:
        """Fail for good: CLOSED, no reconnection."""
        failed = Failed(error)
        self._enter(failed)
        self._stopped()
        self._set_ready(ReadyState.CLOSED)
        self._report(error)
        self.delivery.failed(error, failed)

    # Helpers of the transitions

    def _enter(self, new: State) -> None:
        """Cancel what the current state holds, then enter ``new``."""
        old, self.state = self.state, new
        self.delivery.current = new
        if isinstance(old, Open) and old.protocol is not None:
            self._last_event_id = old.protocol.parser.last_event_id
        old.cancel()

    def _set_ready(self, ready: ReadyState) -> None:
        """Change the ready state; ``state`` observers are told on the delivery schedule."""
        if ready != self.ready:
            self.ready = ready
            self.delivery.signal("state", ready)

    def _report(self, error: BaseException) -> None:
        """Record, log and signal an error."""
        self.last_error = error
        url = self.url
        # Most errors name the URL already: say it once.
        text = "{error}" if url in str(error) else "Event stream {url}: {error}"
        if isinstance(error, StreamEnded):
            _log.info(text, url=url, error=error)
        else:
            _log.warn(text, url=url, error=error)
        self.delivery.signal("error", error)

    def _drop_queue(self, state: Idle | Failed | Closed) -> None:
        """Forget queued events and fail waiting readers (a start, a close, a drain's end)."""
        if isinstance(state, Idle):
            return
        drained: list[Deferred[None]] = []
        if isinstance(state, Closed):
            if state.drain is not None and state.drain.active():
                state.drain.cancel()
            state.drain = None
            drained, state.drained = state.drained, []
        self.delivery.drop_queue(state.error, drained)


__all__ = ["Machine"]
