"""A real headless Chromium, driven over the DevTools protocol on a pipe (no extra packages).

``--remote-debugging-pipe`` makes Chromium read commands from file descriptor 3 and write
answers to 4, each a JSON message ended by a NUL byte; :class:`Page` evaluates JavaScript in
the one page it opened, which is what a test of a web page needs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.helpers.waiting import TIMEOUT

CHROMIUM = "/usr/bin/chromium"


class Page:
    """Chromium showing ``url``; :meth:`evaluate` runs an expression in it.

    :param binary: the Chromium executable.
    :param profile: an empty directory for its profile.
    :param url: the page to open.
    """

    def __init__(self, binary: str, profile: Path, url: str) -> None:
        commands_in, self._commands = os.pipe()
        self._answers, answers_out = os.pipe()
        command = (
            f"exec {binary} --headless --no-sandbox --disable-gpu --no-first-run "
            "--disable-background-networking --disable-component-update --disable-sync "
            f"--disable-dev-shm-usage --user-data-dir={profile} --remote-debugging-pipe "
            f"{url} 3<&{commands_in} 4>&{answers_out}"
        )
        self.process = subprocess.Popen(
            ["bash", "-c", command], pass_fds=(commands_in, answers_out),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: renderers die with it
        )  # fmt: skip
        os.close(commands_in)
        os.close(answers_out)
        self._buffer = b""
        self._last_id = 0
        targets = self._call("Target.getTargets")["targetInfos"]
        (page,) = (target for target in targets if target["type"] == "page")
        attached = self._call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self._session = attached["sessionId"]

    def _call(self, method: str, session: str | None = None, **params: Any) -> Any:
        """Send one command and return its result (events in between are skipped)."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._answers], [], [], TIMEOUT)
                assert ready, f"Chromium did not answer {method} within {TIMEOUT} s"
                chunk = os.read(self._answers, 65536)
                assert chunk, "Chromium exited"
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(line)
            if answer.get("id") == self._last_id:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self._call("Runtime.evaluate", self._session, expression=expression,
                            returnByValue=True)  # fmt: skip
        return result["result"].get("value")

    def close(self) -> None:
        """End Chromium and every process it started."""
        os.close(self._commands)
        os.close(self._answers)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(TIMEOUT)

    def __enter__(self) -> Page:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
