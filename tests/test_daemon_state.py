"""The daemon's state file: the last event ID, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from txsse.daemon._state import StateFile
from txsse.errors import StateFileError


def test_absent(tmp_path: Path) -> None:
    """A state file that does not exist yet loads as None."""
    assert StateFile(str(tmp_path / "state")).load() is None


@pytest.mark.parametrize("last_event_id", ["", "42", "é ü:{}\"'\t", "x" * 10_000])
def test_round_trip(tmp_path: Path, last_event_id: str) -> None:
    """What save() writes, load() reads back, including the empty ID."""
    state = StateFile(str(tmp_path / "state"))
    state.save("older")
    state.save(last_event_id)
    assert state.load() == last_event_id
    assert StateFile(str(tmp_path / "state")).check() == last_event_id


def test_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """save() writes and fsyncs a temporary file, then renames it over the state file."""
    path = str(tmp_path / "state")
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(f"replace {os.path.basename(src)}")
        assert StateFile(path).load() == "1"  # the old content is intact until now
        real_replace(src, dst)

    StateFile(path).save("1")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    StateFile(path).save("2")
    assert calls == ["fsync", "replace state.tmp", "fsync"]  # file, rename, directory
    assert StateFile(path).load() == "2"
    assert sorted(os.listdir(tmp_path)) == ["state"]


def test_stale_temporary_file_is_harmless(tmp_path: Path) -> None:
    """A temporary file left by a crash is overwritten by the next save."""
    (tmp_path / "state.tmp").write_text("half-writ")
    state = StateFile(str(tmp_path / "state"))
    state.save("7")
    assert state.load() == "7"


@pytest.mark.parametrize(
    "content",
    [b"", b"7", b"{}", b'{"last_event_id": 7}', b'{"last_event_id": "a\\nb"}', b"\xff\xfe", b"[]"],
)
def test_invalid_content(tmp_path: Path, content: bytes) -> None:
    """Anything but a state file holding a valid ID is a clear error."""
    (tmp_path / "state").write_bytes(content)
    with pytest.raises(StateFileError, match=r"state file|invalid last event ID"):
        StateFile(str(tmp_path / "state")).load()


def test_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() refuses a directory the daemon cannot create files in."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root, chmod would not do
    with pytest.raises(StateFileError, match="not writable"):
        StateFile(str(tmp_path / "state")).check()


def test_save_failure(tmp_path: Path) -> None:
    """A failed save raises StateFileError naming the file."""
    state = StateFile(str(tmp_path / "gone" / "state"))
    with pytest.raises(StateFileError, match=r"cannot write .*state\.tmp"):
        state.save("1")


def test_unreadable(tmp_path: Path) -> None:
    """A state file that cannot be read (here: a directory) is refused."""
    (tmp_path / "state").mkdir()
    with pytest.raises(StateFileError, match="is a directory"):
        StateFile(str(tmp_path / "state")).check()
    with pytest.raises(StateFileError, match="cannot read"):
        StateFile(str(tmp_path / "state")).load()


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    """A state file of another version is an error that names the versions, not ignored."""
    path = tmp_path / "state"
    path.write_text('{"version": 2, "last_event_id": "7"}\n')
    with pytest.raises(StateFileError, match=r"version 2 .* reads version 1"):
        StateFile(str(path)).load()
    path.write_text('{"last_event_id": "7"}\n')
    with pytest.raises(StateFileError, match="not a txsse state file"):
        StateFile(str(path)).load()


def test_parent_is_a_plain_file(tmp_path: Path) -> None:
    """A state file under a plain file names the state file and the real cause."""
    (tmp_path / "plain").write_text("")
    path = str(tmp_path / "plain" / "state")
    with pytest.raises(StateFileError) as caught:
        StateFile(path).check()
    assert str(caught.value).startswith(f"cannot write {path}: Not a directory")


def test_missing_directory(tmp_path: Path) -> None:
    """A state file in a missing directory names the state file and the cause."""
    path = str(tmp_path / "missing" / "state")
    with pytest.raises(StateFileError, match="No such file or directory"):
        StateFile(path).check()
