"""Stop the reactor and make ``twistd`` exit with a chosen status.

twistd has no way for a service to choose the process's exit status (Twisted issue
#11335): once the reactor stops it stops the services, removes the PID file, logs
"Server Shut Down." through its ``AppLogger`` and returns, and the process exits with 0.
:func:`stop_with_status` records the status and stops the reactor; once the reactor
has shut down, the first message of twistd's ``AppLogger`` (the last step of its flow)
raises :class:`SystemExit` with the recorded status. That is an ordinary exit: every
``atexit`` handler runs and the standard streams are flushed, as after ``sys.exit``.
Outside twistd nothing else happens after the reactor stops: an application running
:class:`~txsse.daemon.SSEDaemon` itself passes ``on_exit``.
"""

from __future__ import annotations

import contextlib

from twisted.application.app import AppLogger
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorCore
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import provider

#: Exit status after the server refused the stream for good.
EXIT_STREAM_FAILED = 1
#: Exit status after the output or the state file could not be written (sysexits EX_IOERR).
EXIT_IO_ERROR = 74
#: Exit status after an unexpected error (a bug; sysexits EX_SOFTWARE).
EXIT_SOFTWARE = 70

_status: list[int] = []


@provider(ILogObserver)
def _exit_when_twistd_is_done(event: LogEvent) -> None:
    """After the reactor's shutdown, twistd's ``AppLogger`` speaks last: exit then.

    :raises SystemExit: with the recorded status (log observers let it through).
    """
    if _status and isinstance(event.get("log_source"), AppLogger):
        globalLogPublisher.removeObserver(_exit_when_twistd_is_done)
        raise SystemExit(_status[0])


def _reactor_has_shut_down() -> None:
    globalLogPublisher.addObserver(_exit_when_twistd_is_done)


def stop_with_status(reactor: IReactorCore, status: int) -> None:
    """Stop ``reactor`` and make twistd exit with ``status`` once it is done.

    The first status recorded wins. Safe to call before the reactor runs (it
    then stops as soon as it starts) and while it is stopping.

    :param reactor: the reactor to stop.
    :param status: the process exit status.
    """
    if not _status:
        _status.append(status)
        reactor.addSystemEventTrigger("after", "shutdown", _reactor_has_shut_down)

    def stop() -> None:
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    reactor.callWhenRunning(stop)
