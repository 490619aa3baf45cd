"""The real machine under the tests: free ports, real programs, subprocesses, a full disk."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: ``twistd`` of the Python running the tests.
TWISTD = str(Path(sys.executable).parent / "twistd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_program(program: str, package: str) -> str:
    """The path of ``program`` (a name on ``$PATH`` or an absolute path), or fail the test.

    Tests never install anything: ``.ci/run`` installs the system packages. A missing one
    fails (not skips) the test, naming the Debian package and the command that installs it.

    :param program: ``redis-server``, ``/usr/bin/chromium``, ...
    :param package: the Debian package that provides it.
    :returns: the program's path.
    """
    found = program if os.path.isabs(program) and os.access(program, os.X_OK) else None
    found = found or (None if os.path.isabs(program) else shutil.which(program))
    if found is None:
        pytest.fail(
            f"{program} is not installed; this test runs the real one. Install the Debian "
            f"package {package} (`apt-get install {package}` as root; .ci/run does it)",
            pytrace=False,
        )
    return found


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s; wait for the exit."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Full:
    """A file on a disk that fills up: a write fails with ENOSPC (after storing half, if asked)."""

    def __init__(self, real: Any, *, half_first: bool = False) -> None:
        self._real = real
        self._half_first = half_first

    def write(self, data: Any) -> int:
        if not self._half_first:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._half_first = False
        return int(self._real.write(bytes(data)[: len(data) // 2]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
