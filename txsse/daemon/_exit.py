"""Stop the reactor and make the process exit with a chosen status.

twistd has no way for a service to choose the process's exit status: it returns
0 once the reactor stops. :func:`stop_with_status` records the status and stops
the reactor; twistd then cleans up as usual (services stopped, PID file removed,
log closed) and, at interpreter exit, a hook flushes standard output and error
and ends the process with the recorded status.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import Any

from twisted.internet.error import ReactorNotRunning

#: Exit status after the server refused the stream for good.
EXIT_STREAM_FAILED = 1
#: Exit status after the output or the state file could not be written (sysexits EX_IOERR).
EXIT_IO_ERROR = 74
#: Exit status after an unexpected error (a bug; sysexits EX_SOFTWARE).
EXIT_SOFTWARE = 70

_status: list[int] = []


def _exit_with_recorded_status() -> None:
    """At interpreter exit: flush standard streams and exit with the recorded status."""
    if not _status:
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_status[0])


def stop_with_status(reactor: Any, status: int) -> None:
    """Stop ``reactor`` and make the process exit with ``status`` afterwards.

    The first non-zero status recorded wins. Safe to call before the reactor
    runs (it then stops as soon as it starts) and while it is stopping.

    :param reactor: the reactor to stop.
    :param status: the process exit status.
    """
    if not _status:
        atexit.register(_exit_with_recorded_status)
        _status.append(status)

    def stop() -> None:
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    reactor.callWhenRunning(stop)
