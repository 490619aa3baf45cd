"""Scraping Prometheus ``/metrics`` over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import treq
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.waiting import until

#: Seconds to wait for metrics to move (a timeout, never a measurement).
WAIT = 20.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Prometheus text format to {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> Samples:
    """GET /metrics and parse it."""
    response = await treq.get(url, timeout=10)
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    return parse(await response.text())


async def scrape_until(url: str, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``check`` holds; fail after :data:`WAIT` seconds."""

    async def satisfied() -> Samples | None:
        samples = await scrape(url)
        return samples if check(samples) else None

    return await until(satisfied, f"{url} to satisfy the check", WAIT)
