"""The daemon's state file: the last event ID, replaced atomically and durably."""

from __future__ import annotations

import errno
import json
import os
import stat

from txsse.errors import StateFileError

_VERSION = 1


class StateFile:
    """The last event ID of a stream, kept in a small JSON file.

    Every :meth:`save` writes a temporary file beside the state file, flushes it
    to disk (``fsync``), renames it over the state file (an atomic step on POSIX)
    and flushes the directory, so that after a crash or a power cut the file holds
    either the previous ID or the new one, never a mix.

    :param path: the state file's path; its directory must exist and be writable.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._tmp = path + ".tmp"

    def check(self) -> str | None:
        """Check that the state file can be read and replaced.

        :returns: what :meth:`load` returns.
        :raises StateFileError: the directory is missing or not writable, or the
            file is unreadable or invalid.
        """
        directory = os.path.dirname(self.path) or "."
        try:
            is_directory = stat.S_ISDIR(os.stat(directory).st_mode)
        except OSError as e:
            raise StateFileError(f"cannot write {self.path}: {e.strerror}") from None
        if not is_directory:
            raise StateFileError(
                f"cannot write {self.path}: {os.strerror(errno.ENOTDIR)} ({directory} is a file)"
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StateFileError(f"directory {directory} is not writable")
        if os.path.isdir(self.path):
            raise StateFileError(f"{self.path} is a directory")
        return self.load()

    def load(self) -> str | None:
        """Read the last event ID.

        :returns: the saved ID, or ``None`` when the file does not exist yet.
        :raises StateFileError: the file cannot be read or is not a state file.
        """
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateFileError(f"cannot read {self.path}: {e.strerror}") from None
        try:
            state = json.loads(raw.decode("utf-8"))
            version = state["version"]
            last_event_id = state["last_event_id"]
        except (ValueError, TypeError, KeyError):
            raise StateFileError(
                f"{self.path} is not a txsse state file; remove it to start without a last event ID"
            ) from None
        if version != _VERSION:
            raise StateFileError(
                f"{self.path} is a version {version!r} state file and this txsse reads version "
                f"{_VERSION} only: use the txsse that wrote it, or remove the file to start "
                "without a last event ID"
            )
        if not isinstance(last_event_id, str) or any(c in last_event_id for c in "\r\n\0"):
            raise StateFileError(f"{self.path} holds an invalid last event ID")
        return last_event_id

    def save(self, last_event_id: str) -> None:
        """Replace the state file with one holding ``last_event_id``, durably.

        :param last_event_id: the ID to save.
        :raises StateFileError: the file cannot be written.
        """
        payload = json.dumps({"version": _VERSION, "last_event_id": last_event_id}) + "\n"
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, payload.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self._tmp, self.path)
            _fsync_directory(os.path.dirname(self.path) or ".")
        except OSError as e:
            raise StateFileError(f"cannot write {e.filename or self.path}: {e.strerror}") from None


def _fsync_directory(directory: str) -> None:
    """Flush a directory entry change (a rename) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
