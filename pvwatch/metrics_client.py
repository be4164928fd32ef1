"""Reading a worker's /metrics over HTTP: how the demo and the tests watch a running worker."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout_s: float = 2.0) -> dict[str, float]:
    """Sum of every sample by sample name (labels summed over), e.g. {'pv_alerts_raised_total': 3.0}."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return dict(totals)


def scrape_labelled(url: str, name: str, timeout_s: float = 2.0) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric keyed by their sorted label pairs."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def processed(totals: dict[str, float]) -> int:
    """Messages the worker has finished with: stored, recognised as duplicates, or dead-lettered."""
    return int(
        totals.get("pv_events_ingested_total", 0)
        + totals.get("pv_events_duplicate_total", 0)
        + totals.get("pv_events_rejected_total", 0)
    )
