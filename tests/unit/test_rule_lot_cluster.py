"""Lot and clinic clusters: k adverse events (default 3) within the window, or any serious one; alert keys that
depend on the set of events only (late reports must not make the live worker and a replay disagree)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.lot_cluster import AttributedEvent, LotClusterParameters, clusters

T0 = datetime(2026, 4, 1, tzinfo=UTC)  # 2026-03-08 .. 2026-06-05 is a multiple of 90 days from 1970-01-01
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


def test_a_clinic_cluster_straddling_a_block_boundary_is_found():
    # Version 1 counted disjoint 90-day blocks; the one holding T0 ends 2026-06-05 (day 65), so these three
    # events within 10 days fell into two blocks and raised nothing.
    straddling = [ae("A", 60), ae("B", 64), ae("C", 70)]
    found = clusters("clinic", "c", straddling, P)
    assert found, "three events within 10 days at one clinic are a cluster"
    assert {tuple(m.case_id for m in c.members) for c in found} == {("A", "B", "C")}


def test_a_clinic_cluster_is_one_alert_wherever_it_falls_and_only_within_the_window():
    for start in range(0, 90, 5):  # the cluster's start anywhere in a block, its end in the same or the next one
        found = clusters("clinic", "c", [ae("A", start), ae("B", start + 20), ae("C", start + 40)], P)
        assert [[m.case_id for m in c.members] for c in found] == [["A", "B", "C"]], (start, keys(found))
    assert clusters("clinic", "c", [ae("A", 0), ae("B", 45), ae("C", 90.01)], P) == []


def test_a_clinic_has_new_alerts_as_time_goes_on():
    """A clinic runs for years: a cluster next year is news, not a revision of this year's alert."""
    this_year = [ae("A", 0), ae("B", 5), ae("C", 10)]
    next_year = [ae("D", 365), ae("E", 370), ae("F", 375)]
    now_anchors = {c.anchor for c in clusters("clinic", "c", this_year, P)}
    later = clusters("clinic", "c", this_year + next_year, P)
    assert now_anchors < {c.anchor for c in later}
    assert {tuple(m.case_id for m in c.members) for c in later} == {("A", "B", "C"), ("D", "E", "F")}


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


def test_a_clinic_alerts_exactly_when_some_window_holds_k_events():
    """The definition (k cases with onsets within window_days), checked by brute force on random onsets."""
    rng = random.Random(7)
    for _ in range(300):
        events = [ae(f"C{i}", rng.uniform(0, 400)) for i in range(rng.randint(1, 6))]
        ordered = sorted(events, key=lambda e: e.at)
        in_some_window = any(
            sum(1 for e in ordered if timedelta(0) <= last.at - e.at <= timedelta(days=P.window_days)) >= P.min_events
            for last in ordered)
        found = clusters("clinic", "c", events, P)
        assert bool(found) == in_some_window, [e.at for e in ordered]
        for cluster in found:
            assert cluster.members[-1].at - cluster.members[0].at <= timedelta(days=P.window_days)


def test_a_clinic_cluster_with_k_cases_on_both_sides_of_a_block_edge_alerts_in_both_blocks():
    """What the set of events implies, whatever the arrival order: the block the cluster starts in, and the next
    block, where k of its cases also start a window (T0's block ends at day 65)."""
    found = clusters("clinic", "c", [ae("A", 63), ae("B", 64), ae("C", 66), ae("D", 67), ae("E", 68)], P)
    assert [[m.case_id for m in c.members] for c in found] == [["A", "B", "C", "D", "E"], ["C", "D", "E"]]
    assert len({c.anchor for c in found}) == 2
