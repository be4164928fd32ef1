"""Lot and clinic clusters: k adverse events (default 3) within the window, or any serious one; alert keys that
depend on the set of events only (late reports must not make the live worker and a replay disagree)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.lot_cluster import AttributedEvent, LotClusterParameters, clusters

T0 = datetime(2026, 4, 1, tzinfo=UTC)  # in the 90-day block 2026-03-08 .. 2026-06-05
P = LotClusterParameters()


def ae(case: str, days: float, serious: bool = False) -> AttributedEvent:
    return AttributedEvent(uuid4(), case, "pt-" + case, T0 + timedelta(days=days), serious, uuid4())


def keys(found) -> list[tuple[str, str]]:
    return [(c.trigger, c.anchor) for c in found]


def test_third_event_within_the_window_makes_a_lot_cluster():
    (cluster,) = clusters("lot", "LOT-7", [ae("A", 0), ae("B", 10), ae("C", 90)], P)
    assert (cluster.trigger, cluster.completing.case_id) == ("k-events", "C")
    assert [m.case_id for m in cluster.members] == ["A", "B", "C"]


def test_events_spread_beyond_the_window_are_not_a_lot_cluster():
    assert clusters("lot", "LOT-7", [ae("A", 0), ae("B", 10), ae("C", 90.01)], P) == []


def test_a_lot_has_one_k_events_alert_however_many_events_follow():
    found = clusters("lot", "L", [ae(c, i) for i, c in enumerate("ABCDEFG")], P)
    assert keys(found) == [("k-events", "first")]


def test_follow_up_versions_of_one_case_count_once():
    assert clusters("lot", "LOT-7", [ae("A", 0), ae("A", 1), ae("B", 2)], P) == []


def test_each_serious_event_is_its_own_cluster_alert():
    found = clusters("clinic", "clinic-a", [ae("A", 0, serious=True), ae("B", 5, serious=True)], P)
    assert keys(found) == [("serious", "A"), ("serious", "B")]


def test_clinic_k_events_are_counted_per_calendar_block_of_the_window():
    in_block = [ae("A", 0), ae("B", 30), ae("C", 60)]
    (cluster,) = clusters("clinic", "c", in_block, P)
    assert cluster.anchor.startswith("block-")
    straddling = [ae("A", 60), ae("B", 64), ae("C", 70)]  # the next block starts 2026-06-06 (day 66)
    assert clusters("clinic", "c", straddling, P) == []


def test_the_alert_keys_do_not_depend_on_arrival_order():
    events = [ae(c, 7 * i, serious=(c == "D")) for i, c in enumerate("ABCDEF")]
    expected = keys(clusters("lot", "L", events, P)) + keys(clusters("clinic", "c", events, P))
    for seed in range(5):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        partial = shuffled[:4]  # what the live worker knew before the late reports arrived ...
        known = keys(clusters("lot", "L", partial, P)) + keys(clusters("clinic", "c", partial, P))
        assert set(known) <= set(expected)  # ... is never an alert the full log would not raise
        assert keys(clusters("lot", "L", shuffled, P)) + keys(clusters("clinic", "c", shuffled, P)) == expected
