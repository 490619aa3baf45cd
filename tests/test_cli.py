"""What the twistd plugins share about command lines: token files, demo arguments, Redis extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.python import usage

from txsse._cli import MAX_TOKEN_FILE, endpoint_option, read_token_file
from txsse._validate import positive_int_option, seconds_option
from txsse.daemon._demo import split_arguments


def test_token_file_bom_and_whitespace_are_not_the_token(tmp_path: Path) -> None:
    """A UTF-8 BOM (Notepad) and surrounding whitespace (the final newline) are stripped."""
    path = tmp_path / "token"
    path.write_bytes(b"\xef\xbb\xbf  s3cret\r\n\n")
    path.chmod(0o600)
    assert read_token_file("--publish-token-file", str(path)) == ("s3cret", None)


def test_world_readable_token_file_warns(tmp_path: Path) -> None:
    """A token file every user may read gets a warning that says how to fix it."""
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    token, warning = read_token_file("--publish-token-file", str(path))
    assert token == "s3cret"
    assert warning == (
        f"--publish-token-file {path} is readable by every user (mode 0644): chmod 600 {path}"
    )


def test_token_file_reading_is_bounded() -> None:
    """``/dev/zero`` as a token file is an error after a few KiB, not an endless read."""
    with pytest.raises(usage.UsageError, match=f"larger than {MAX_TOKEN_FILE} bytes"):
        read_token_file("--publish-token-file", "/dev/zero")


def test_token_file_unreadable(tmp_path: Path) -> None:
    """A missing token file is one line naming the option, the file and the cause."""
    path = tmp_path / "missing"
    with pytest.raises(usage.UsageError) as caught:
        read_token_file("--subscribe-token-file", str(path))
    assert (
        str(caught.value)
        == f"--subscribe-token-file: cannot read {path}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("arguments", "twistd", "sse"),
    [
        ([], [], []),
        (["--format", "sse", "-e", "tick"], [], ["--format", "sse", "-e", "tick"]),
        (["--logfile", "x", "--format", "sse"], ["--logfile", "x"], ["--format", "sse"]),
        (["--logfile=x", "--syslog", "-o", "f"], ["--logfile=x", "--syslog"], ["-o", "f"]),
        (["--reactor", "poll", "--help"], ["--reactor", "poll"], ["--help"]),
    ],
)
def test_demo_arguments_split(arguments: list[str], twistd: list[str], sse: list[str]) -> None:
    """The twistd's own long options go to twistd, everything else to ``sse``."""
    assert split_arguments(arguments) == (twistd, sse)


WITHOUT_REDIS = "import sys; sys.modules['txredisapi'] = None\n"


def run_without_redis(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter where txredisapi cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS + code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=dict(os.environ),
        check=False,
    )


@pytest.mark.parametrize("package", ["txsse.server", "txsse.hub"])
def test_redis_names_without_the_extra_say_which_extra(tmp_path: Path, package: str) -> None:
    """``from txsse.server import RedisStreamChannel`` without txredisapi names the extra."""
    done = run_without_redis(f"from {package} import RedisStreamChannel", tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: RedisStreamChannel needs the Redis client txredisapi: "
        "pip install 'txsse[redis]'"
    )


def test_hub_redis_option_without_the_extra_says_which_extra(tmp_path: Path) -> None:
    """``twistd sse-hub --redis URL`` without txredisapi: one usage line naming the extra."""
    argv = ["twistd", "-n", "sse-hub", "--redis", "redis://127.0.0.1:1/0", "--publish-token", "x"]
    code = f"sys.argv = {argv!r}\nfrom twisted.scripts.twistd import run\nrun()"
    done = run_without_redis(code, tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == (
        "twistd -n: --redis needs txredisapi: pip install 'txsse[redis]'"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_coerce_functions_document_their_values_in_the_help() -> None:
    """The shared ``coerce`` functions add what they accept to each option's help line."""

    class Options(usage.Options):
        optParameters = [
            ["wait", None, "1", "Wait this long.", seconds_option],
            ["count", None, "2", "This many.", positive_int_option],
            ["port", None, "tcp:80", "Listen here.", endpoint_option("--port", "tcp:8080")],
        ]

    words = " ".join(str(Options()).split())
    assert "Wait this long. [default: 1]. Seconds, 0 or more." in words
    assert "This many. [default: 2]. A positive integer." in words
    assert "Listen here. [default: tcp:80]. A Twisted endpoint, for example tcp:8080." in words
