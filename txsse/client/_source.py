"""The reconnecting event-source client service: the public class.

:class:`EventSource` is the HTTP analogue of Twisted's ``ClientService``: a small
public class over a private state machine (:mod:`txsse.client._machine`), whose
user callbacks all run from one place (:mod:`txsse.client._delivery`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal, overload

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IAgent, IPolicyForHTTPS

from txsse._event import Comment, Event
from txsse._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH
from txsse._reactor import GlobalClock, default_reactor
from txsse._validate import check_count, check_seconds, check_url
from txsse.client._attempt import Prepare, RequestSettings
from txsse.client._backoff import DEFAULT_JITTER, ReconnectDelay
from txsse.client._machine import Machine
from txsse.client._policy import StatusPolicy, resolve_policy
from txsse.client._queue import EventQueue, Ready, end_iteration
from txsse.client._request import DEFAULT_MAX_REDIRECTS, Body, check_headers, sensitive_names
from txsse.client._signals import Opened, ReadyState, Received, Reconnect, Signal
from txsse.client._states import Closed, Failed, Open, Settings
from txsse.client._wire import TreqAgent, TreqClient


def _check_last_event_id(value: str) -> str:
    """A last event ID that can be sent as a header.

    :raises ValueError: when it holds NUL, CR or LF.
    """
    if "\0" in value or "\r" in value or "\n" in value:
        raise ValueError("last_event_id cannot contain NUL, CR or LF")
    return value


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
    :param agent: an ``IAgent`` requests go through (a proxy, HTTP/2, a test
        agent); by default txsse's own HTTP/1.1 client, TLS verified, a new
        connection per attempt.
    :param client: a ``treq.HTTPClient`` requests go through instead (always
        ``unbuffered=True``, redirects left to the source); give it an agent
        over a non-persistent ``HTTPConnectionPool``.
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
        reactor: IReactorTime | None = None,
        agent: IAgent | None = None,
        client: TreqClient | None = None,
        tls: IPolicyForHTTPS | None = None,
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
        url = check_url(url)
        if not method or not method.isascii() or not method.isalpha():
            raise ValueError(f"invalid HTTP method {method!r}")
        if body is not None and not isinstance(body, bytes) and not callable(body):
            raise TypeError("body must be bytes, a callable returning bytes, or None")
        check_seconds("connect_timeout", connect_timeout)
        check_seconds("idle_timeout", idle_timeout)
        check_count("queue_size", queue_size)
        check_count("max_redirects", max_redirects)
        if agent is not None and client is not None:
            raise ValueError("give agent= or client=, not both")
        if client is not None:
            agent = TreqAgent(client)
        request = RequestSettings(
            url=url,
            method=method.upper(),
            headers=check_headers(headers or {}),
            body=body,
            prepare=prepare,
            max_redirects=max_redirects,
            sensitive=sensitive_names(sensitive_headers),
            allow_insecure_redirect=allow_insecure_redirect,
        )
        settings = Settings(
            request=request,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            policy=resolve_policy(policy),
            queue_size=queue_size,
            reset_backoff_after=reset_backoff_after,
            max_line_length=max_line_length,
            max_event_size=max_event_size,
        )
        delay = ReconnectDelay(
            reconnect_delay,
            max_reconnect_delay,
            factor=backoff_factor,
            jitter=jitter,
            random=random,
        )
        # The global reactor is looked up when the source starts, not now: constructing a
        # source must not install the default reactor before the application picks one.
        self._machine = Machine(
            settings,
            delay,
            clock=reactor if reactor is not None else GlobalClock(),
            reactor=reactor,
            agent=agent,
            tls=tls,
            last_event_id=_check_last_event_id(last_event_id),
            stopped=self._stopped,
        )
        self._delivery = self._machine.delivery
        self._queue = self._delivery.queue
        self._queue_off = queue_size == 0

    def __repr__(self) -> str:
        return f"<EventSource {self.url} {self._machine.ready.name}>"

    # Public properties

    @property
    def url(self) -> str:
        """The stream's URL, as given (reconnections always start from it)."""
        return self._machine.settings.request.url

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING``, ``OPEN`` or ``CLOSED``."""
        return self._machine.ready

    @property
    def last_event_id(self) -> str:
        """The last event ID: what the next connection sends as ``Last-Event-ID``."""
        return self._machine.last_event_id

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        self._machine.last_event_id = _check_last_event_id(value)

    @property
    def last_error(self) -> BaseException | None:
        """The last error reported (network, timeout, status...), or ``None``."""
        return self._machine.last_error

    @property
    def reconnect_delay(self) -> float:
        """The base reconnection time in seconds (the server's ``retry:`` if it sent one)."""
        return self._machine.delay.base

    @property
    def queue(self) -> EventQueue:
        """The queue behind :meth:`next`: every event, in order.

        It has ``DeferredQueue``'s interface (``get()``, ``put()``, ``pending``,
        ``waiting``): ``await source.queue.get()`` is :meth:`next` without its
        checks for a closed source.
        """
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
        queue = self._queue
        if queue.pending:
            return queue.get()
        if self._queue_off:
            return fail(ValueError("the queue is off (queue_size=0): use add_listener"))
        state = self._machine.state
        if isinstance(state, Failed | Closed):
            return fail(state.error)
        return queue.get()

    def next_batch(self, max_events: int | None = None) -> Deferred[list[Event]]:
        """Every event queued now, in one list: one Deferred for a whole network read.

        :param max_events: the most events returned; ``None`` for all of them.
        :returns: a Deferred that fires with a non-empty list of events, in
            order: at once with what is queued, or, when nothing is, as soon as
            events arrive (with every event of that network read). It fails as
            :meth:`next` does.
        :raises ValueError: for a ``max_events`` below 1.
        """
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be None or >= 1, not {max_events!r}")
        queue = self._queue
        if queue.ready():
            return succeed(queue.take_batch(max_events))
        rest = None if max_events is None else max_events - 1
        return self.next().addCallback(lambda first: [first, *queue.take_batch(rest)])

    def __aiter__(self) -> EventSource:
        """Iterate over the events with ``async for``; it ends when the source is closed."""
        return self

    def __anext__(self) -> Awaitable[Event]:
        """The next event for ``async for``.

        :returns: an awaitable of the event: a bare ready value when one is
            queued (no Deferred per event), or else a Deferred that fires with
            the event, or fails with ``StopAsyncIteration`` once the source is
            closed, or with the :class:`~txsse.errors.ConnectionFailed` that
            stopped the source.
        """
        queue = self._queue
        pending = queue.pending
        if pending and not queue.waiting and not queue.watched:  # the hot path: no calls
            return Ready(pending.popleft())
        if queue.ready():
            return Ready(queue.take())
        return self.next().addErrback(end_iteration)

    def add_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Call ``callback(event)`` for every event of type ``event_type``.

        Every type works, including ``"error"`` and ``"open"``: these are event
        types from the stream, unrelated to :meth:`on`. Exceptions from the
        callback are logged; delivery goes on.

        :param event_type: the ``event:`` field to listen to (``"message"`` for
            events without one).
        :param callback: the callable.
        """
        self._delivery.listeners.add(event_type, callback)

    def remove_listener(self, event_type: str, callback: Callable[[Event], object]) -> None:
        """Undo :meth:`add_listener`.

        :param event_type: the event type.
        :param callback: the callable.
        """
        self._delivery.listeners.remove(event_type, callback)

    @overload
    def on(self, signal: Literal["state"], callback: Callable[[ReadyState], object]) -> None: ...
    @overload
    def on(self, signal: Literal["open"], callback: Callable[[Opened], object]) -> None: ...
    @overload
    def on(self, signal: Literal["error"], callback: Callable[[BaseException], object]) -> None: ...
    @overload
    def on(self, signal: Literal["comment"], callback: Callable[[Comment], object]) -> None: ...
    @overload
    def on(self, signal: Literal["reconnect"], callback: Callable[[Reconnect], object]) -> None: ...
    @overload
    def on(self, signal: Literal["retry"], callback: Callable[[float], object]) -> None: ...
    @overload
    def on(self, signal: Literal["data"], callback: Callable[[Received], object]) -> None: ...
    def on(self, signal: Signal, callback: Callable[..., object]) -> None:
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
        :param callback: the callable; type checkers check that it takes the
            signal's value.
        :raises ValueError: for an unknown signal.
        """
        self._delivery.signals.add(signal, callback)

    def off(self, signal: Signal, callback: object) -> None:
        """Undo :meth:`on`.

        :param signal: the signal name.
        :param callback: the callable given to :meth:`on` (others are ignored).
        """
        self._delivery.signals.remove(signal, callback)

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
        machine = self._machine
        state = machine.state
        if isinstance(state, Open) and machine.opened is not None:
            return succeed(machine.opened)
        if isinstance(state, Failed | Closed):
            return fail(state.error)
        waiters = self._delivery.open_waiters

        def forget(waiter: Deferred[Opened]) -> None:
            if waiter in waiters:
                waiters.remove(waiter)

        waiter: Deferred[Opened] = Deferred(forget)
        waiters.append(waiter)
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
        machine = self._machine
        if machine.reactor is None:
            machine.reactor = machine.clock = default_reactor()
        self.running = True
        machine.send(machine.start)

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
        machine = self._machine
        machine.send(machine.stop, drain)
        state = machine.state
        if isinstance(state, Closed) and state.drain is not None:
            drained: Deferred[None] = Deferred()
            state.drained.append(drained)
            return drained
        return succeed(None)

    def restart(self) -> None:
        """Drop the current connection (or wait) and reconnect now; no error is reported."""
        if not self.running:
            self.startService()
            return
        self._machine.send(self._machine.restart)

    def _stopped(self) -> None:
        """The machine stopped by itself (a final error)."""
        self.running = False


__all__ = ["EventSource", "Prepare"]
