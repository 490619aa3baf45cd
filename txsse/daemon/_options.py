"""Command-line options and ``makeService`` for the ``twistd sse`` plugin.

Only this module knows about command-line options: it checks every value while
parsing, so that a bad option is a usage error before anything starts, and hands
plain Python values to :class:`txsse.daemon._service.SSEDaemon`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.python import usage

from txsse._cli import PluginOptions
from txsse._metricsopt import HELP as METRICS_HELP
from txsse._metricsopt import check_metrics_option, metrics_option_service
from txsse._validate import check_url, coerce_doc, seconds_option
from txsse.client import EventSource
from txsse.daemon._output import FORMATS
from txsse.daemon._service import SSEDaemon
from txsse.daemon._state import StateFile
from txsse.errors import StateFileError

#: An HTTP token (RFC 9110): the characters allowed in a method or a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_POLICIES = ("resilient", "strict")


def _method(value: str) -> str:
    """Accept an HTTP method name (ASCII letters), upper-cased."""
    if not value.isascii() or not value.isalpha():
        raise ValueError(f"{value!r} is not an HTTP method name")
    return value.upper()


def _no_line_break(what: str) -> Callable[[str], str]:
    """Return a coerce function refusing CR, LF and NUL (they cannot go in a header)."""

    def coerce(value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"{what} {value!r} contains CR, LF or NUL")
        return value

    return coerce


def _choice(what: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """Return a coerce function accepting one of ``choices``."""

    def coerce(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
        return value

    return coerce_doc(coerce, f"One of: {', '.join(choices)}.")


def parse_header(value: str) -> tuple[str, str]:
    """Split a ``Name: value`` header option.

    :param value: the option's argument.
    :returns: the header's name and value, without surrounding whitespace.
    :raises ValueError: no colon, an invalid name, or CR, LF or NUL in the value.
    """
    name, colon, text = value.partition(":")
    name, text = name.strip(), text.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise ValueError(f"header {value!r} is not of the form 'Name: value'")
    _no_line_break("header value")(text)
    return name, text


class Options(PluginOptions):
    """The options of ``twistd sse``."""

    synopsis = "(--url URL | --demo) [options]"
    longdesc = """\
Consume a Server-Sent Events stream and write every event to a file or to
standard output, one JSON object per line ({"event": ..., "data": ..., "id": ...})
or re-serialized as an event stream. The connection is re-established after
network errors with the last event ID, and with --state-file that ID survives
restarts, so that no event is lost. A refusal by the server (an HTTP error
status, 204, a content type other than text/event-stream) stops the daemon with
exit status 1. Durations are in seconds. Example: twistd -n sse --url
https://example.com/events --state-file events.state --output events.jsonl"""

    optFlags = [
        [
            "demo",
            None,
            "Consume txsse's built-in demo stream, served on a free loopback port [default: off].",
        ],
    ]

    optParameters = [
        [
            "url",
            "u",
            None,
            "The http(s) URL of the event stream (required unless --demo) [default: none].",
            check_url,
        ],
        ["method", "X", "GET", "The HTTP method.", _method],
        ["data", "d", None, "The request body, as text (UTF-8) [default: none]."],
        ["data-file", None, None, "Read the request body from this file [default: none]."],
        [
            "last-event-id",
            None,
            None,
            "The Last-Event-ID to start from when the state file is absent [default: none].",
            _no_line_break("last event ID"),
        ],
        [
            "state-file",
            "s",
            None,
            "Keep the last event ID in this file (read at start, written after each event) "
            "[default: none].",
        ],
        ["output", "o", "-", "Append events to this file; - is standard output (needs twistd -n)."],
        [
            "format",
            "f",
            "json",
            "json: one JSON object per line; sse: an event stream.",
            _choice("--format", FORMATS),
        ],
        [
            "reconnect-delay",
            None,
            3.0,
            "Initial delay before reconnecting (the server's retry: overrides it).",
            seconds_option,
        ],
        [
            "max-reconnect-delay",
            None,
            30.0,
            "Longest delay between reconnection attempts.",
            seconds_option,
        ],
        [
            "connect-timeout",
            None,
            30.0,
            "Give up an attempt when no response arrives within this time; 0: never.",
            seconds_option,
        ],
        [
            "idle-timeout",
            None,
            300.0,
            "Reconnect when no byte (keep-alives included) arrives within this time; 0: never.",
            seconds_option,
        ],
        [
            "policy",
            None,
            "resilient",
            "resilient: also retry 5xx, 408 and 429 (honouring Retry-After); "
            "strict: fail on any non-200 answer, as browsers do.",
            _choice("--policy", _POLICIES),
        ],
    ]

    compData = usage.Completions(
        optActions={
            "data-file": usage.CompleteFiles(),
            "state-file": usage.CompleteFiles(),
            "output": usage.CompleteFiles(),
            "format": usage.CompleteList(list(FORMATS)),
            "policy": usage.CompleteList(list(_POLICIES)),
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self["headers"] = []
        self["events"] = []
        self["body"] = None
        self["metrics"] = None

    def opt_metrics(self, description: str) -> None:
        self["metrics"] = check_metrics_option(description)

    opt_metrics.__doc__ = METRICS_HELP

    def opt_header(self, value: str) -> None:
        """A request header, "Name: value" (repeatable) [default: none]."""
        try:
            self["headers"].append(parse_header(value))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    opt_H = opt_header

    def opt_event(self, value: str) -> None:
        """Write only events of this type (repeatable) [default: all types]."""
        try:
            self["events"].append(_no_line_break("event type")(value))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    opt_e = opt_event

    def postOptions(self) -> None:
        """Check the options together, and the files they name.

        :raises usage.UsageError: for any inconsistent option or unusable file.
        """
        if self["demo"] and self["url"]:
            raise usage.UsageError("--demo and --url are exclusive: --demo serves its own URL")
        if not self["demo"] and not self["url"]:
            raise usage.UsageError("--url is required (or --demo for the built-in demo stream)")
        if self["max-reconnect-delay"] < self["reconnect-delay"]:
            raise usage.UsageError("--max-reconnect-delay must not be less than --reconnect-delay")
        self["body"] = self._body()
        self._check_output()
        self._check_state_file()

    def _body(self) -> bytes | None:
        """Return the request body from ``--data`` or ``--data-file``."""
        if self["data"] is not None and self["data-file"] is not None:
            raise usage.UsageError("--data and --data-file are exclusive")
        if self["data"] is not None:
            data: str = self["data"]
            return data.encode("utf-8")
        if self["data-file"] is not None:
            try:
                with open(self["data-file"], "rb") as f:
                    return f.read()
            except OSError as e:
                raise usage.UsageError(
                    f"--data-file: cannot read {e.filename}: {e.strerror}"
                ) from None
        return None

    def _check_output(self) -> None:
        """Make ``--output`` absolute and check that it can be appended to."""
        if self["output"] == "-":
            # twistd sends standard output to /dev/null when it forks into the
            # background; ``twist`` and ``twistd -n`` stay in the foreground.
            parent = self.parent
            if parent is not None and not parent.get("nodaemon", True):
                raise usage.UsageError(
                    "--output - (standard output) is discarded when twistd runs in the "
                    "background: give twistd -n, or --output FILE"
                )
            return
        self["output"] = os.path.abspath(self["output"])
        try:
            with open(self["output"], "ab"):
                pass
        except OSError as e:
            raise usage.UsageError(f"--output: cannot write {e.filename}: {e.strerror}") from None

    def _check_state_file(self) -> None:
        """Make ``--state-file`` absolute, check it can be replaced, and read it."""
        if self["state-file"] is None:
            return
        self["state-file"] = os.path.abspath(self["state-file"])
        try:
            StateFile(self["state-file"]).check()
        except StateFileError as e:
            raise usage.UsageError(f"--state-file: {e}") from None


def makeService(options: Options | dict[str, Any]) -> Service:
    """Build the daemon's service from parsed options.

    :param options: the parsed :class:`Options`.
    :returns: the service twistd runs: the daemon, plus the demo stream server
        with ``--demo``.
    """
    from txsse.daemon._demo import DemoService

    observe_source: Callable[[EventSource], object] | None = None
    if options.get("metrics"):
        # Imported only here: prometheus-client is optional (txsse[metrics]).
        from txsse.metrics import instrument_source

        observe_source = instrument_source
    daemon = SSEDaemon(
        url=options["url"] or "",
        headers=list(options["headers"]),
        method=options["method"],
        body=options["body"],
        last_event_id=options["last-event-id"] or "",
        state_file=options["state-file"],
        output=options["output"],
        output_format=options["format"],
        event_types=frozenset(options["events"]) or None,
        reconnect_delay=options["reconnect-delay"],
        max_reconnect_delay=options["max-reconnect-delay"],
        connect_timeout=options["connect-timeout"] or None,
        idle_timeout=options["idle-timeout"] or None,
        policy=options["policy"],
        observe_source=observe_source,
    )
    service: Service = DemoService(daemon) if options["demo"] else daemon
    if observe_source is None:
        return service
    top = MultiService()
    service.setServiceParent(top)
    metrics_option_service(options["metrics"]).setServiceParent(top)
    return top
