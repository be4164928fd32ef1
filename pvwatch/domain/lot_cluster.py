"""Clusters of adverse events after infusions from one lot or one clinic (rule `lot-cluster`).

Why: contamination or a bad manufacturing run affects every patient who received the same lot (Pew Charitable
Trusts, "Harms linked to unapproved stem cell interventions", 2021: clusters of infections traced to single
batches of clinic products). E2B carries only a batch number (G.k.4.r.7); pvwatch links each adverse event to
the infusions the patient received in the `attribution_days` before it, and counts per lot and per clinic.

A cluster is `min_events` or more adverse events (distinct cases) attributed to the same lot or clinic with
onsets within `window_days`, or `min_serious` serious ones (default 1: any serious event after a lot is worth an
officer's look). The alert is keyed on the scope, the lot or clinic, and the case that completed the cluster (the
case at which the count in the window ending at it first reaches the threshold), so the set of alerts is a
function of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID


@dataclass(frozen=True)
class LotClusterParameters:
    attribution_days: int = 30  # an AE counts for the lots the patient received in the 30 days before it
    window_days: int = 90  # the AEs of a cluster have onsets within this many days
    min_events: int = 3  # k: any AEs
    min_serious: int = 1  # serious AEs


@dataclass(frozen=True)
class AttributedEvent:
    """An adverse event case attributed to one lot or clinic through an infusion the patient received."""

    event_id: UUID
    case_id: str
    patient: str
    at: datetime
    serious: bool
    infusion_event_id: UUID


@dataclass(frozen=True)
class Cluster:
    scope: str  # "lot" or "clinic"
    key: str  # the lot or clinic id
    trigger: str  # "k-events" or "serious"
    completing: AttributedEvent
    members: tuple[AttributedEvent, ...]  # the window's events, oldest first


def _order(e: AttributedEvent) -> tuple[datetime, str]:
    return (e.at, e.case_id)


def clusters(scope: str, key: str, events: Iterable[AttributedEvent], p: LotClusterParameters) -> list[Cluster]:
    """The clusters among one lot's (or clinic's) attributed events, at most one per trigger and completing case."""
    by_case: dict[str, AttributedEvent] = {}
    for event in sorted(events, key=_order):
        by_case.setdefault(event.case_id, event)  # a case counts once, at its first attributed version
    ordered = sorted(by_case.values(), key=_order)
    window = timedelta(days=p.window_days)
    found = []
    for i, event in enumerate(ordered):
        members = tuple(e for e in ordered[: i + 1] if event.at - e.at <= window)
        before = members[:-1]
        if len(members) >= p.min_events > len(before):
            found.append(Cluster(scope, key, "k-events", event, members))
        serious = [e for e in members if e.serious]
        if event.serious and len(serious) >= p.min_serious > len(serious) - 1:
            found.append(Cluster(scope, key, "serious", event, tuple(serious)))
    return found
