"""Clusters of adverse events after infusions from one lot or one clinic (rule `lot-cluster`).

Why: contamination or a bad manufacturing run affects every patient who received the same lot (Pew Charitable
Trusts, "Harms linked to unapproved stem cell interventions", 2021: clusters of infections traced to single
batches of clinic products). E2B carries only a batch number (G.k.4.r.7); pvwatch links each adverse event to
the infusions the patient received in the `attribution_days` before it, and counts per lot and per clinic.

A cluster is `min_events` or more adverse events (distinct cases) attributed to the same lot or clinic with
onsets within `window_days`, or `min_serious` serious ones (default 1: any serious event after a lot is worth an
officer's look).

Late and out-of-order reports are normal, so each alert's existence must depend only on the set of events, never
on the order they arrived in (otherwise the live worker and a replay would disagree):
- a lot has at most one k-events cluster alert: "this lot had k events within the window" (its members are the
  earliest such window, revised as late reports arrive);
- a clinic runs for years, so its k-events alerts are per calendar block of `window_days` days (W, counted from
  1970-01-01) in which a cluster STARTS: block b alerts once k events have onsets within W days of an event in
  it (the window may reach into the next block); its members are the earliest such window, revised as late
  reports arrive. Every cluster starts in one block, so none is missed; a block has at most one such alert, and
  a cluster with k events on both sides of a block edge alerts in both blocks (the second's members are those
  after the edge). Version 1 required the whole cluster inside one block and missed one straddling the edge;
- a serious event is its own alert, per lot and per clinic.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
    completing: AttributedEvent  # the event that brought the count to the threshold
    members: tuple[AttributedEvent, ...]  # the window's events, oldest first
    anchor: str  # what the alert is keyed on besides scope, key and trigger (see the module docstring)


def _order(e: AttributedEvent) -> tuple[datetime, str]:
    return (e.at, e.case_id)


def _day(at: datetime) -> int:
    return at.date().toordinal() - _EPOCH_ORDINAL


_EPOCH_ORDINAL = datetime(1970, 1, 1).date().toordinal()


def clusters(scope: str, key: str, events: Iterable[AttributedEvent], p: LotClusterParameters) -> list[Cluster]:
    """The clusters among one lot's (or clinic's) attributed events; see the module docstring for their keys."""
    by_case: dict[str, AttributedEvent] = {}
    for event in sorted(events, key=_order):
        by_case.setdefault(event.case_id, event)  # a case counts once, at its first attributed version
    ordered = sorted(by_case.values(), key=_order)
    found = [Cluster(scope, key, "serious", e, (e,), e.case_id) for e in ordered if e.serious and p.min_serious <= 1]
    if p.min_serious > 1:
        found += _windows(scope, key, [e for e in ordered if e.serious], p.min_serious, "serious", p)
    found += _windows(scope, key, ordered, p.min_events, "k-events", p)
    return found


def _windows(scope: str, key: str, ordered: list[AttributedEvent], k: int, trigger: str,
             p: LotClusterParameters) -> list[Cluster]:
    window = timedelta(days=p.window_days)
    onsets = [e.at for e in ordered]  # sorted: each window is a slice found by bisection
    if scope == "lot":
        for i, event in enumerate(ordered):
            members = tuple(ordered[bisect_left(onsets, event.at - window, hi=i + 1):i + 1])
            if len(members) >= k:
                return [Cluster(scope, key, trigger, event, members, "first")]
        return []
    found: dict[int, Cluster] = {}
    for i, start in enumerate(ordered):
        block = _day(start.at) // p.window_days
        if block in found:
            continue  # the block's earliest cluster is its alert
        members = tuple(ordered[i:bisect_right(onsets, start.at + window, lo=i)])  # onsets within the window
        if len(members) >= k:
            found[block] = Cluster(scope, key, trigger, members[k - 1], members, f"block-{block}")
    return list(found.values())
