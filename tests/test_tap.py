"""The ``twistd sse`` options: every value checked while parsing, before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

from txsse.daemon import _options
from txsse.daemon._demo import DemoService
from txsse.daemon._options import Options, makeService, parse_header
from txsse.daemon._service import SSEDaemon
from txsse.daemon._state import StateFile

URL = "http://127.0.0.1:8080/events"


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def refused(*args: str) -> str:
    with pytest.raises(usage.UsageError) as info:
        parse(*args)
    return str(info.value)


def test_plugin_is_found() -> None:
    """The plugin system finds the ``sse`` service maker through the plugin system."""
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert "sse" in makers
    assert makers["sse"].options is Options


def test_defaults() -> None:
    """With only --url, every option has its documented default."""
    options = parse("--url", URL)
    assert options["url"] == URL
    assert options["method"] == "GET"
    assert options["headers"] == []
    assert options["events"] == []
    assert options["body"] is None
    assert options["last-event-id"] is None
    assert options["state-file"] is None
    assert options["output"] == "-"
    assert options["format"] == "json"
    assert options["reconnect-delay"] == 3.0
    assert options["max-reconnect-delay"] == 30.0
    assert options["connect-timeout"] == 30.0
    assert options["idle-timeout"] == 300.0
    assert options["policy"] == "resilient"
    assert not options["demo"]


def test_help_documents_every_option_and_default() -> None:
    """The help text names every option with its default."""
    text = str(Options())
    for name in (
        "--url",
        "--header",
        "--method",
        "--data",
        "--data-file",
        "--last-event-id",
        "--state-file",
        "--output",
        "--format",
        "--event",
        "--reconnect-delay",
        "--max-reconnect-delay",
        "--connect-timeout",
        "--idle-timeout",
        "--policy",
        "--demo",
        "--metrics",
    ):
        assert name + "=" in text or name + " " in text, name
    assert text.count("[default:") == 17


def test_all_values(tmp_path: Path) -> None:
    """Every option is parsed into its Python value; repeatable ones accumulate."""
    options = parse(
        "-u",
        URL,
        "-H",
        "Authorization: Bearer x",
        "--header",
        "X-Two:  spaced ",
        "-X",
        "report",
        "--data",
        "é",
        "--last-event-id",
        "41",
        "--state-file",
        str(tmp_path / "state"),
        "--output",
        str(tmp_path / "out.jsonl"),
        "--format",
        "sse",
        "-e",
        "tick",
        "--event",
        "message",
        "--reconnect-delay",
        "0.5",
        "--max-reconnect-delay",
        "9",
        "--connect-timeout",
        "0",
        "--idle-timeout",
        "45",
        "--policy",
        "strict",
    )
    assert options["headers"] == [("Authorization", "Bearer x"), ("X-Two", "spaced")]
    assert options["method"] == "REPORT"
    assert options["body"] == "é".encode()
    assert options["last-event-id"] == "41"
    assert options["state-file"] == str(tmp_path / "state")
    assert options["output"] == str(tmp_path / "out.jsonl")
    assert options["events"] == ["tick", "message"]
    assert (options["reconnect-delay"], options["max-reconnect-delay"]) == (0.5, 9.0)
    assert (options["connect-timeout"], options["idle-timeout"]) == (0.0, 45.0)
    assert options["policy"] == "strict"


def test_data_file(tmp_path: Path) -> None:
    """--data-file is read, as bytes, while the options are parsed."""
    body = tmp_path / "body"
    body.write_bytes(b'{"q": 1}\xff')
    assert parse("--url", URL, "--data-file", str(body))["body"] == b'{"q": 1}\xff'


def test_relative_paths_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative --output and --state-file survive twistd changing directory later."""
    monkeypatch.chdir(tmp_path)
    options = parse("--url", URL, "-o", "out", "-s", "state")
    assert options["output"] == str(tmp_path / "out")
    assert options["state-file"] == str(tmp_path / "state")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--url is required"),
        (("--demo", "--url", URL), "exclusive"),
        (("--url", "ftp://example.com/"), "need an absolute http(s) URL"),
        (("--url", "/events"), "need an absolute http(s) URL"),
        (("--url", "http://host:99999/"), "invalid event stream URL"),
        (("--url", "http://host/a b"), "contains whitespace"),
        (("--url", URL, "-H", "no colon"), "not of the form 'Name: value'"),
        (("--url", URL, "-H", "Bad Name: x"), "not of the form 'Name: value'"),
        (("--url", URL, "-H", "X: a\rb"), "contains CR, LF or NUL"),
        (("--url", URL, "-X", "GE T"), "not an HTTP method"),
        (("--url", URL, "--last-event-id", "a\nb"), "contains CR, LF or NUL"),
        (("--url", URL, "-e", "a\nb"), "contains CR, LF or NUL"),
        (("--url", URL, "--format", "xml"), "--format must be one of json, sse"),
        (("--url", URL, "--policy", "lenient"), "--policy must be one of"),
        (("--url", URL, "--reconnect-delay", "-1"), "0 or more"),
        (("--url", URL, "--idle-timeout", "nan"), "0 or more"),
        (("--url", URL, "--connect-timeout", "inf"), "0 or more"),
        (("--url", URL, "--max-reconnect-delay", "soon"), "not a number of seconds"),
        (
            ("--url", URL, "--reconnect-delay", "10", "--max-reconnect-delay", "5"),
            "must not be less than --reconnect-delay",
        ),
        (("--url", URL, "--data", "x", "--data-file", "/dev/null"), "exclusive"),
        (("--url", URL, "--data-file", "/nonexistent/body"), "cannot read"),
        (("--url", URL, "--output", "/nonexistent/out"), "--output: cannot write"),
        (
            ("--url", URL, "--state-file", "/nonexistent/state"),
            "cannot write /nonexistent/state: No such file or directory",
        ),
    ],
)
def test_invalid(args: tuple[str, ...], message: str) -> None:
    """Each invalid value is a usage error whose message says what is wrong."""
    assert message in refused(*args)


def test_stdout_needs_the_foreground() -> None:
    """Standard output is refused when twistd forks into the background (it goes nowhere)."""
    from twisted.scripts.twistd import ServerOptions

    with pytest.raises(usage.UsageError, match="standard output"):
        ServerOptions().parseOptions(["sse", "--url", URL])
    assert ServerOptions().parseOptions(["-n", "sse", "--url", URL]) is None


def test_state_file_is_a_directory(tmp_path: Path) -> None:
    """A directory given as --state-file is refused."""
    assert "is a directory" in refused("--url", URL, "--state-file", str(tmp_path))


def test_corrupt_state_file(tmp_path: Path) -> None:
    """A state file that is not ours is refused, with what to do about it."""
    state = tmp_path / "state"
    state.write_text("hello")
    assert "not a txsse state file; remove it" in refused("--url", URL, "-s", str(state))


def test_valid_state_file(tmp_path: Path) -> None:
    """A state file written by the daemon is accepted."""
    StateFile(str(tmp_path / "state")).save("17")
    assert parse("--url", URL, "-s", str(tmp_path / "state"))["state-file"]


def test_parse_header() -> None:
    """A header value may contain colons; whitespace around name and value goes."""
    assert parse_header(" Cookie :a=1; b=http://x ") == ("Cookie", "a=1; b=http://x")
    assert parse_header("X-Empty:") == ("X-Empty", "")


def test_make_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service maker builds the daemon (--idle-timeout 0: none); --demo wraps it."""
    built: list[dict[str, Any]] = []

    class Built(SSEDaemon):
        def __init__(self, url: str, **options: Any) -> None:
            built.append({"url": url, **options})
            super().__init__(url, **options)

    monkeypatch.setattr(_options, "SSEDaemon", Built)
    daemon = makeService(parse("--url", URL, "--idle-timeout", "0"))
    assert isinstance(daemon, SSEDaemon)
    assert daemon.url == URL
    assert built[0]["idle_timeout"] is None  # 0 means never (see test_daemon: never drops)
    demo = makeService(parse("--demo"))
    assert isinstance(demo, DemoService)
    assert [type(child) for child in demo] == [Built]
