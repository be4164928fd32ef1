"""Lot and clinic clusters: k adverse events (default 3) within the window, or any serious one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.lot_cluster import AttributedEvent, LotClusterParameters, clusters

T0 = datetime(2026, 4, 1, tzinfo=UTC)
P = LotClusterParameters()


def ae(case: str, days: float, serious: bool = False) -> AttributedEvent:
    return AttributedEvent(uuid4(), case, "pt-" + case, T0 + timedelta(days=days), serious, uuid4())


def test_third_event_within_the_window_completes_a_cluster():
    events = [ae("A", 0), ae("B", 10), ae("C", 90)]
    (cluster,) = clusters("lot", "LOT-7", events, P)
    assert (cluster.trigger, cluster.completing.case_id) == ("k-events", "C")
    assert [m.case_id for m in cluster.members] == ["A", "B", "C"]


def test_events_spread_beyond_the_window_are_not_a_cluster():
    assert clusters("lot", "LOT-7", [ae("A", 0), ae("B", 10), ae("C", 90.01)], P) == []


def test_follow_up_versions_of_one_case_count_once():
    assert clusters("lot", "LOT-7", [ae("A", 0), ae("A", 1), ae("B", 2)], P) == []


def test_a_serious_event_alone_is_a_cluster_trigger():
    (cluster,) = clusters("clinic", "clinic-a", [ae("A", 0, serious=True)], P)
    assert cluster.trigger == "serious"


def test_the_result_does_not_depend_on_arrival_order():
    events = [ae("A", 0), ae("B", 5), ae("C", 6), ae("D", 7)]
    forward = clusters("lot", "L", events, P)
    backward = clusters("lot", "L", list(reversed(events)), P)
    assert [(c.trigger, c.completing.case_id) for c in forward] == [(c.trigger, c.completing.case_id)
                                                                    for c in backward] == [("k-events", "C")]
