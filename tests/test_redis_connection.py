"""RedisConnection with a Clock and a hand-driven endpoint: fail fast, back off, stop clean."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from txsse.errors import ChannelUnavailable
from txsse.hub._redisconn import RedisConnection


class Endpoint:
    """Records connection attempts; the test makes each succeed or fail."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, Deferred[Any]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.attempts.append((factory, d))
        return d

    def succeed(self) -> tuple[Any, StringTransport]:
        """Complete the latest attempt with a connected protocol."""
        factory, d = self.attempts[-1]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return protocol, transport

    def refuse(self) -> None:
        self.attempts[-1][1].errback(ConnectionRefusedError())


def make(clock: Clock) -> tuple[RedisConnection, Endpoint]:
    endpoint = Endpoint()
    conn = RedisConnection(
        "redis://127.0.0.1:1", reactor=clock, reply_timeout=2.0, jitter=lambda: 0.0
    )
    conn._endpoint = lambda: endpoint  # type: ignore[method-assign]
    return conn, endpoint


def test_commands_go_out_as_resp_and_replies_come_back() -> None:
    """A connected command is written as RESP; its reply fires the Deferred."""
    clock = Clock()
    conn, endpoint = make(clock)
    conn.startService()
    assert not conn.connected
    protocol, transport = endpoint.succeed()
    assert conn.connected
    replies: list[Any] = []
    conn.execute("XADD", "k", "*", "data", "x").addCallback(replies.append)
    assert (
        transport.value() == b"*5\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n$4\r\ndata\r\n$1\r\nx\r\n"
    )
    protocol.dataReceived(b"$3\r\n1-0\r\n")
    assert replies == ["1-0"]
    conn.stopService()
    assert clock.getDelayedCalls() == []


def test_fails_fast_while_down_and_reconnects_with_backoff() -> None:
    """Lost connection: commands fail at once; attempts follow a growing, bounded delay."""
    clock = Clock()
    conn, endpoint = make(clock)
    conn.startService()
    protocol, _ = endpoint.succeed()
    pending = conn.execute("PING")
    errors: list[Failure] = []
    pending.addErrback(errors.append)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert errors and errors[0].check(ChannelUnavailable)  # the in-flight command too
    assert not conn.connected
    failed: list[Failure] = []
    conn.execute("PING").addErrback(failed.append)
    assert failed and failed[0].check(ChannelUnavailable)
    delays = []
    for _ in range(12):  # Redis stays down: each attempt is refused
        (retry,) = clock.getDelayedCalls()
        delays.append(retry.getTime() - clock.seconds())
        attempts = len(endpoint.attempts)
        clock.advance(delays[-1])
        assert len(endpoint.attempts) == attempts + 1
        endpoint.refuse()
    # backoffPolicy(0.1 s, 5 s, factor 1.5) with the jitter injected as 0: exact delays
    assert delays == pytest.approx([min(0.1 * 1.5**n, 5.0) for n in range(1, 13)])
    waiting = conn.when_connected()
    clock.advance(5.0)
    endpoint.succeed()
    assert waiting.called and conn.connected
    conn.stopService()
    assert clock.getDelayedCalls() == []


def test_stop_fails_waiters_and_leaves_no_timer() -> None:
    """Stopping while down fails when_connected waiters and cancels the retry timer."""
    clock = Clock()
    conn, endpoint = make(clock)
    conn.startService()
    waiting = conn.when_connected()
    endpoint.refuse()
    assert clock.getDelayedCalls() != []  # a retry is scheduled
    conn.stopService()
    failures: list[Failure] = []
    waiting.addErrback(failures.append)
    assert failures and failures[0].check(ChannelUnavailable)
    assert clock.getDelayedCalls() == []
    after: list[Failure] = []
    conn.when_connected().addErrback(after.append)
    assert after and after[0].check(ChannelUnavailable)


def test_a_silent_server_times_out_through_the_injected_clock() -> None:
    """No reply within reply_timeout: the command fails as unavailable and the link is dropped."""
    clock = Clock()
    conn, endpoint = make(clock)
    conn.startService()
    _protocol, transport = endpoint.succeed()
    failures: list[Failure] = []
    conn.execute("PING").addErrback(failures.append)
    clock.advance(1.9)
    assert failures == []
    clock.advance(0.2)
    assert failures and failures[0].check(ChannelUnavailable)
    assert "2.0 seconds" in failures[0].getErrorMessage()
    assert transport.disconnecting or getattr(transport, "aborted", False)
    conn.stopService()
