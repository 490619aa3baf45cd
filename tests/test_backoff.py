"""ReconnectDelay: backoffPolicy growth, server retry, floor, jitter and caps."""

from __future__ import annotations

import random

import pytest

from txsse.client._backoff import FAILURE_FLOOR, ReconnectDelay


def test_grows_exponentially_to_the_maximum() -> None:
    """Without jitter the delay is the base after a healthy stream, then base * factor ** n."""
    delay = ReconnectDelay(1.0, 10.0, jitter=0.0)
    assert [delay.delay(n) for n in range(7)] == [1.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert delay.delay(10_000) == 10.0


def test_server_retry_replaces_base_within_maximum() -> None:
    """retry: replaces the base, and cannot exceed the maximum."""
    delay = ReconnectDelay(3.0, 30.0, jitter=0.0)
    delay.server_retry(500)
    assert delay.delay(0) == 0.5
    delay.server_retry(10**15)
    assert delay.delay(0) == 30.0


def test_zero_base_grows_from_the_floor_after_failures() -> None:
    """retry: 0 is honoured after a healthy stream; failures still grow from the floor."""
    delay = ReconnectDelay(3.0, 30.0, jitter=0.0)
    delay.server_retry(0)
    assert delay.delay(0) == 0.0
    assert [delay.delay(n) for n in range(1, 5)] == [FAILURE_FLOOR * 2**n for n in range(4)]


def test_floor_capped_by_the_maximum() -> None:
    """A maximum below the floor still bounds every delay."""
    delay = ReconnectDelay(0.0, 0.05, jitter=0.0)
    assert [delay.delay(n) for n in range(3)] == [0.0, 0.05, 0.05]


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_jitter_only_lengthens(draw: float) -> None:
    """Jitter adds at most the given fraction, never shortens, never passes the max."""
    delay = ReconnectDelay(4.0, 5.0, jitter=0.25, random=lambda: draw)
    assert delay.delay(0) == min(4.0 * (1 + 0.25 * draw), 5.0)
    assert delay.delay(3) == 5.0


def test_jitter_spreads() -> None:
    """With a seeded generator the delays differ and stay within [delay, delay * 1.2]."""
    rng = random.Random(7)
    delay = ReconnectDelay(4.0, 60.0, jitter=0.2, random=rng.random)
    values = [delay.delay(0) for _ in range(200)]
    assert len(set(values)) > 100
    assert min(values) >= 4.0 and max(values) <= 4.8


def test_retry_after_floor() -> None:
    """at_least raises the delay, up to the maximum."""
    delay = ReconnectDelay(1.0, 20.0, jitter=0.0)
    assert delay.delay(0, at_least=7.0) == 7.0
    assert delay.delay(0, at_least=100.0) == 20.0


@pytest.mark.parametrize(
    ("args", "kw"),
    [
        ((-1.0, 5.0), {}),
        ((5.0, 1.0), {}),
        ((1.0, 5.0), {"factor": 0.5}),
        ((1.0, 5.0), {"jitter": 2}),
    ],
)
def test_bad_arguments(args: tuple[float, float], kw: dict[str, float]) -> None:
    """Nonsense settings raise ValueError."""
    with pytest.raises(ValueError):
        ReconnectDelay(*args, **kw)  # type: ignore[arg-type]
