"""The ``twistd sse`` service: consume an event stream, write it out, remember where it was."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IAgent

from txsse._event import Event
from txsse._reactor import default_reactor
from txsse.client import EventSource
from txsse.daemon._exit import EXIT_IO_ERROR, EXIT_SOFTWARE, EXIT_STREAM_FAILED, stop_with_status
from txsse.daemon._output import EventWriter
from txsse.daemon._state import StateFile
from txsse.errors import SSEError, StateFileError, StreamClosed


class SSEDaemon(Service):
    """Write every event of a stream to a file, resuming where it stopped.

    Each event is written and flushed before its ID is saved to the state file,
    so a stopped daemon resumes after the last event it wrote: nothing is lost
    and, after a clean stop, nothing is repeated. A ``kill -9`` between the two
    steps repeats at most that one event.

    :param url: the stream's URL; may be set later, before the service starts.
    :param headers: extra request headers, ``(name, value)`` pairs.
    :param method: the HTTP method.
    :param body: the request body, or ``None``.
    :param last_event_id: the ID to start from when there is no state file yet.
    :param state_file: where to keep the last event ID, or ``None``.
    :param output: the file to append events to; ``"-"`` is standard output.
    :param output_format: ``"json"`` or ``"sse"`` (see :class:`EventWriter`).
    :param event_types: write only events of these types; ``None`` writes all.
    :param reconnect_delay: see :class:`~txsse.EventSource`.
    :param max_reconnect_delay: see :class:`~txsse.EventSource`.
    :param connect_timeout: see :class:`~txsse.EventSource`.
    :param idle_timeout: see :class:`~txsse.EventSource`.
    :param policy: see :class:`~txsse.EventSource`.
    :param reactor: the reactor (``IReactorTime``, and ``IReactorCore`` to stop
        it when ``on_exit`` is not given); the global one by default.
    :param agent: the ``IAgent`` for HTTP; the source's default when ``None``.
    :param on_exit: called with an exit status when the daemon must end the
        process; by default it stops the reactor and the process exits with it.
    :param observe_source: called with each :class:`~txsse.EventSource` the
        daemon creates, before it starts (``--metrics`` counts through it).
    """

    log = Logger()

    def __init__(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        method: str = "GET",
        body: bytes | None = None,
        last_event_id: str = "",
        state_file: str | None = None,
        output: str = "-",
        output_format: str = "json",
        event_types: Collection[str] | None = None,
        reconnect_delay: float = 3.0,
        max_reconnect_delay: float = 30.0,
        connect_timeout: float | None = 30.0,
        idle_timeout: float | None = 300.0,
        policy: str = "resilient",
        reactor: IReactorTime | None = None,
        agent: IAgent | None = None,
        on_exit: Callable[[int], None] | None = None,
        observe_source: Callable[[EventSource], object] | None = None,
    ) -> None:
        reactor = default_reactor(reactor)
        self.url = url
        self._reactor = reactor
        self._headers = list(headers)
        self._method = method
        self._body = body
        self._last_event_id = last_event_id
        self._state = StateFile(state_file) if state_file is not None else None
        self._output = output
        self._format = output_format
        self._types = frozenset(event_types) if event_types is not None else None
        # EventSource's reconnection settings, fixed for the daemon's lifetime.
        self._new_source = partial(
            EventSource,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            policy=policy,
        )
        self._agent = agent
        self._observe_source = observe_source
        self._on_exit = on_exit or (
            lambda status: stop_with_status(IReactorCore(self._reactor), status)
        )
        self._saved_id: str | None = None
        self._writer: EventWriter | None = None
        self._source: EventSource | None = None
        self._done: Deferred[None] | None = None

    def startService(self) -> None:
        """Read the state file, open the output and start consuming the stream.

        :raises StateFileError: the state file cannot be read.
        :raises OSError: the output cannot be opened.
        """
        last_event_id = self._last_event_id
        if self._state is not None:
            saved = self._state.load()
            if saved is not None:
                last_event_id = self._saved_id = saved
        self._writer = EventWriter(
            self._output,
            self._format,
            last_event_id=last_event_id,
            durable=self._state is not None,
        )
        self._source = source = self._new_source(
            self.url,
            headers=self._request_headers(),
            method=self._method,
            body=self._body,
            last_event_id=last_event_id,
            reactor=self._reactor,
            agent=self._agent,
        )
        if self._observe_source is not None:
            self._observe_source(source)
        self.log.info(
            "reading {url} from Last-Event-ID {last_event_id!r} into {output} ({output_format})",
            url=self.url,
            last_event_id=last_event_id,
            output=self._output,
            output_format=self._format,
        )
        super().startService()
        source.startService()
        self._done = Deferred.fromCoroutine(self._consume(source))

    def _request_headers(self) -> dict[str, str]:
        """The extra headers; the values of a repeated name are joined with commas."""
        names: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        for name, value in self._headers:
            names.setdefault(name.lower(), name)
            values.setdefault(name.lower(), []).append(value)
        return {names[key]: ", ".join(values[key]) for key in names}

    async def _consume(self, source: EventSource) -> None:
        """Write events until the source closes or something fails for good."""
        while True:
            try:
                event = await source.next()
            except StreamClosed:
                return
            except SSEError as e:  # ConnectionFailed: the source gave up for good
                reason = str(e) if self.url in str(e) else f"{self.url}: {e}"
                self.log.critical("{reason}; stopping", url=self.url, reason=reason)
                self._on_exit(EXIT_STREAM_FAILED)
                return
            except Exception:
                self.log.failure("unexpected error from the event source; stopping")
                self._on_exit(EXIT_SOFTWARE)
                return
            try:
                self._deliver(event)
            except (OSError, StateFileError) as e:
                self.log.critical("cannot record the event: {reason}; stopping", reason=str(e))
                self._on_exit(EXIT_IO_ERROR)
                return
            except Exception:
                self.log.failure("unexpected error while recording an event; stopping")
                self._on_exit(EXIT_SOFTWARE)
                return

    def _deliver(self, event: Event) -> None:
        """Write ``event`` if it passes the filter, then save its ID."""
        assert self._writer is not None
        if self._types is None or event.event in self._types:
            self._writer.write(event)
        if self._state is not None and event.id != self._saved_id:
            self._state.save(event.id)
            self._saved_id = event.id

    async def _stop(self) -> None:
        """Close the source, let the consumer finish, close the output."""
        if self._source is not None:
            await self._source.close()
        if self._done is not None:
            await self._done
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def stopService(self) -> Deferred[None]:
        """Stop reading; every event already written has its ID saved.

        :returns: a Deferred that fires once the source is closed and the output
            file is closed.
        """
        super().stopService()
        return Deferred.fromCoroutine(self._stop())
