"""The documentation's runnable examples and complete programs.

:func:`runnable_example` executes the block under "A runnable example" as a module. A complete
program is a code block with a file name as its caption, which :func:`programs` finds and
:class:`Program` writes to a directory and runs as a real process, as a reader would::

    ```{code-block} python
    :caption: serve.py

    ...
    ```
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.helpers.system import stop_process
from tests.helpers.waiting import block_until

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
#: How long a documented program may take to run to its end, in seconds (a bound, not a measure).
PROGRAM_TIMEOUT = 30.0
_BLOCK = re.compile(
    r"^```\{code-block\} \S+\n:caption: (\S+)\n(?::[^\n]*\n)*\n?(.*?)^```", re.M | re.S
)


def runnable_example(page: str) -> dict[str, Any]:
    """Execute the Python block under "A runnable example" of ``docs/<page>``; its namespace."""
    text = (DOCS / page).read_text()
    block = re.search(r"## A runnable example.*?```python\n(.*?)```", text, re.S)
    assert block is not None, f"docs/{page} lost its runnable example"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block.group(1), str(DOCS / page), "exec"), namespace)
    return namespace


def programs(page: str) -> dict[str, str]:
    """The captioned code blocks of ``docs/<page>``, by caption (a file name)."""
    found = dict(_BLOCK.findall((DOCS / page).read_text(encoding="utf-8")))
    assert found, f"docs/{page} shows no program"
    return found


def shell_lines(path: Path) -> list[str]:
    """The commands of the ``sh`` blocks of a Markdown file, continuation lines joined."""
    text = path.read_text(encoding="utf-8")
    blocks = "\n".join(re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in blocks.splitlines() if line.strip()]


def shell_line(page: str, start: str) -> str:
    """The one line of a ``sh`` block of ``docs/<page>`` that starts with ``start``."""
    (line,) = (line for line in shell_lines(DOCS / page) if line.startswith(start))
    return line


def environment() -> dict[str, str]:
    """The environment of the tests, with the virtualenv's scripts (twistd) first on ``PATH``."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


class Program:
    """A program from the docs, written to ``directory`` and run there as a process."""

    def __init__(self, directory: Path, name: str, source: str | None = None) -> None:
        self.directory = directory
        self.name = name
        if source is not None:
            (directory / name).write_text(source, encoding="utf-8")
        self.output = directory / f"{name.split()[0]}.out"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        """The command line: Python for a ``.py`` file, else the words of ``name``."""
        if self.name.endswith(".py"):
            return [sys.executable, self.name, *args]
        return [*shlex.split(self.name), *args]

    def start(self, *args: str) -> Program:
        """Start it in the background, its output (both streams) going to ``self.output``."""
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv(*args), cwd=self.directory, env=environment(), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def text(self) -> str:
        """What it has written so far."""
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, needle: str) -> None:
        """Wait until its output contains ``needle``; fail with the output if it exits first."""

        def seen() -> bool:
            assert self.process is not None
            if needle in self.text():
                return True
            assert self.process.poll() is None, f"{self.name} exited:\n{self.text()}"
            return False

        block_until(seen, f"{needle!r} from {self.name}", PROGRAM_TIMEOUT)

    def run(self, *args: str, stdin: bytes = b"") -> str:
        """Run it to the end (within ``PROGRAM_TIMEOUT``); return its output; fail if it fails."""
        done = subprocess.run(
            self.argv(*args), cwd=self.directory, env=environment(), input=stdin,
            capture_output=True, timeout=PROGRAM_TIMEOUT,
        )  # fmt: skip
        text = (done.stdout + done.stderr).decode("utf-8", "replace")
        assert done.returncode == 0, f"{self.name} failed ({done.returncode}):\n{text}"
        return done.stdout.decode("utf-8")

    async def finish(self, *args: str, **env: str) -> tuple[int, str]:
        """Run it to the end without blocking the reactor (the tests' servers run there).

        :param env: more environment variables.
        :returns: its exit status and its output (both streams).
        """
        out, err, status = await getProcessOutputAndValue(
            self.argv()[0], self.argv(*args)[1:], env={**environment(), **env},
            path=str(self.directory), reactor=reactor,
        ).addTimeout(PROGRAM_TIMEOUT, reactor)  # fmt: skip
        return status, (out + err).decode("utf-8", "replace")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait for the exit."""
        stop_process(self.process)
