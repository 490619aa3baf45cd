"""What the twistd plugins share about command lines: usage errors and listening.

Only the plugins' option modules use this: a library user never sees a
:class:`~twisted.python.usage.UsageError` or a :class:`SystemExit` from txsse.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory
from twisted.python import usage

from txsse._reactor import default_reactor
from txsse._validate import coerce_doc

#: The largest token file read, in bytes: a token file holds one token, not a stream.
MAX_TOKEN_FILE = 4096

_NOT_RECOGNIZED = re.compile(r"option (-{1,2})([^ ]+) not recognized")


class PluginOptions(usage.Options):
    """The options of a twistd plugin, with usage errors that say what to do.

    On a usage error twistd prints its own usage line (``twistd [options]``):
    this class makes it the plugin's (``twistd [twistd options] NAME SYNOPSIS``),
    and an option that belongs to twistd, given after the plugin's name, gets a
    hint that twistd's options go first.
    """

    #: What the plugin's usage line shows after ``twistd [twistd options] NAME``.
    synopsis = "[options]"

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse the plugin's arguments (see :class:`~twisted.python.usage.Options`).

        :param options: the arguments; ``sys.argv[1:]`` when ``None``.
        :raises usage.UsageError: for any invalid argument, with a hint when
            it is one of twistd's own options.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            parent = self.parent
            if parent is None:
                raise
            name = parent.subCommand
            # twistd prints the top-level options object on an error: show our line there.
            parent.synopsis = f"Usage: twistd [twistd options] {name} {self.synopsis}"  # type: ignore[attr-defined]
            match = _NOT_RECOGNIZED.fullmatch(str(error))
            if match is not None and match.group(2) in parent.synonyms:
                option = match.group(1) + match.group(2)
                raise usage.UsageError(
                    f"{error}: {option} is an option of twistd itself, and twistd's options "
                    f"go before {name!r}: twistd {option} ... {name} ..."
                ) from None
            raise


def check_endpoint(option: str, description: str, example: str) -> str:
    """Check a server endpoint string given to ``option``.

    :param option: the option's name, for the message (``--port``).
    :param description: the endpoint string.
    :param example: a valid value to suggest.
    :returns: the description.
    :raises usage.UsageError: when it cannot be parsed.
    """
    try:
        serverFromString(None, description)
    except Exception as error:
        raise usage.UsageError(
            f"{option} {description!r} is not a server endpoint ({error}); "
            f"use for example {example}"
        ) from None
    return description


def endpoint_option(option: str, example: str) -> Callable[[str], str]:
    """A coerce function for an ``optParameters`` entry holding a server endpoint.

    :param option: the option's name, for the message (``--port``).
    :param example: a valid value to suggest.
    :returns: the coerce function.
    """

    def coerce(description: str) -> str:
        return check_endpoint(option, description, example)

    return coerce_doc(coerce, f"A Twisted endpoint, for example {example}.")


def read_token_file(option: str, path: str) -> tuple[str, str | None]:
    """Read a token from the file given to ``option``.

    A UTF-8 byte order mark and surrounding whitespace (the final newline an
    editor adds) are not part of the token. At most :data:`MAX_TOKEN_FILE`
    bytes are read, so that ``/dev/zero`` or a log file given by mistake is an
    error rather than a hang.

    :param option: the option's name, for the messages (``--publish-token-file``).
    :param path: the file.
    :returns: the token, and a warning to log when every user may read the file
        (``None`` otherwise).
    :raises usage.UsageError: the file cannot be read, is too large or is not UTF-8.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read(MAX_TOKEN_FILE + 1)
    except OSError as error:
        raise usage.UsageError(f"{option}: cannot read {path}: {error.strerror}") from None
    if len(raw) > MAX_TOKEN_FILE:
        raise usage.UsageError(
            f"{option}: {path} is larger than {MAX_TOKEN_FILE} bytes; "
            "give a file holding the token only"
        )
    try:
        token = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as error:
        raise usage.UsageError(f"{option}: {path} is not UTF-8 text ({error})") from None
    warning = None
    if stat.S_ISREG(mode) and mode & stat.S_IROTH:
        warning = (
            f"{option} {path} is readable by every user (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 {path}"
        )
    return token, warning


class ListeningService(StreamServerEndpointService):
    """Listen where a command-line option says; exit with one line when that fails.

    :param option: the option that named the endpoint (``--port``).
    :param description: the option's value, a server endpoint string.
    :param factory: the protocol factory to listen with.
    :param listen_on: the endpoint string to listen on, when the plugin adds to
        the option's value (a ``backlog=``); ``description`` by default.
    """

    def __init__(
        self,
        option: str,
        description: str,
        factory: IProtocolFactory,
        *,
        listen_on: str | None = None,
    ) -> None:
        endpoint = serverFromString(default_reactor(), listen_on or description)
        super().__init__(endpoint, factory)
        self._option = option
        self._description = description
        self._raiseSynchronously = True  # as strports.service(): fail at start-up, not later

    def privilegedStartService(self) -> None:
        """Start listening, or end the process with a one-line message.

        :raises SystemExit: the endpoint cannot listen (the port is in use,
            the address is not local, permission is denied).
        """
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or error.socketError
            raise SystemExit(
                f"{self._option} {self._description}: cannot listen on "
                f"{error.interface or '*'}:{error.port}: {reason}"
            ) from None


__all__ = [
    "MAX_TOKEN_FILE",
    "ListeningService",
    "PluginOptions",
    "check_endpoint",
    "endpoint_option",
    "read_token_file",
]
