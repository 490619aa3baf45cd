"""ReconnectDelay: backoffPolicy growth, server retry, jitter and caps."""

from __future__ import annotations

import random

import pytest

from txsse.client._backoff import ReconnectDelay


def test_grows_exponentially_to_the_maximum() -> None:
    """Without jitter the delay is base * factor ** failures, capped."""
    delay = ReconnectDelay(1.0, 10.0, jitter=0.0)
    assert [delay.delay(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert delay.delay(10_000) == 10.0


def test_server_retry_replaces_base_within_maximum() -> None:
    """retry: replaces the base, and cannot exceed the maximum."""
    delay = ReconnectDelay(3.0, 30.0, jitter=0.0)
    delay.server_retry(500)
    assert delay.delay(0) == 0.5
    delay.server_retry(10**15)
    assert delay.delay(0) == 30.0
    delay.server_retry(0)
    assert delay.delay(0) == 0.0
    assert delay.delay(5) == 0.0


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_jitter_bounds(draw: float) -> None:
    """Jitter moves the delay by at most the given fraction, both ways, never past the max."""
    delay = ReconnectDelay(4.0, 5.0, jitter=0.25, random=lambda: draw)
    assert 3.0 <= delay.delay(0) <= 5.0
    assert delay.delay(3) <= 5.0


def test_jitter_spreads() -> None:
    """With a seeded random source the delays differ and stay within ±jitter."""
    rng = random.Random(7)
    delay = ReconnectDelay(4.0, 60.0, jitter=0.2, random=rng.random)
    values = [delay.delay(0) for _ in range(200)]
    assert len(set(values)) > 100
    assert min(values) >= 3.2 and max(values) <= 4.8


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
