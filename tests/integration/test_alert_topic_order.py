"""pv.safety.alert.v1 is keyed by alert id: every message about one alert lands on one partition, in the order
sent, so a consumer that keeps the last message per alert id holds the current alert. A lot-cluster alert revised
by a late report can name another patient (the one whose report now completes the cluster); keyed by patient, the
revision went to another partition and could be read before the alert it revises."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.registry import ALERT_TOPIC
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.scenarios.stories import all_stories

pytestmark = pytest.mark.integration

PATIENT_D = "pt-b4b4b4b4b4b4b4b4b4b4"


def alert_messages(bootstrap: str) -> list[tuple[int, int, dict]]:
    """(partition, offset, alert) of every message on the alert topic, in offset order within each partition."""
    consumer = KafkaConsumer(ALERT_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        return [(m.partition, m.offset, json.loads(m.value)) for m in consumer]
    finally:
        consumer.close()


def partition_of(key: str, partitions: int = 4) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions  # the default partitioner of both Kafka clients


def test_a_revised_lot_cluster_alert_follows_the_alert_it_revises_on_one_partition(workers: Workers):
    story = next(s for s in all_stories() if s.name == "lot-cluster")
    by_patient = {e.patient: e for e in story.events if isinstance(e, AdverseEventReported)}
    first_ae = min(by_patient.values(), key=lambda e: e.occurred_at)
    infusion = next(e for e in story.events if isinstance(e, MscInfusionGiven) and e.patient == first_ae.patient)
    # a fourth child infused from the same lot, whose report (between the first and the second) arrives late
    late = [infusion.model_copy(update={"event_id": uuid4(), "patient": PATIENT_D}),
            first_ae.model_copy(update={"event_id": uuid4(), "patient": PATIENT_D, "case_id": "C-LOT-D",
                                        "occurred_at": first_ae.occurred_at.replace(day=12)})]
    worker = workers.start()
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in story.events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(story.events), 60, what="stored")
    wait_for(lambda: len([a for *_, a in alert_messages(workers.broker.bootstrap)
                          if a["rule_id"] == "lot-cluster"]) == 2, 30, what="the lot and clinic clusters")
    first = {a["alert_id"]: a["patient"] for *_, a in alert_messages(workers.broker.bootstrap)
             if a["rule_id"] == "lot-cluster"}
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in late:
            publisher.publish(event)
    wait_for(lambda: len([a for *_, a in alert_messages(workers.broker.bootstrap)
                          if a["rule_id"] == "lot-cluster"]) == 4, 30, what="both clusters revised")
    worker.stop()

    messages = [(p, o, a) for p, o, a in alert_messages(workers.broker.bootstrap) if a["rule_id"] == "lot-cluster"]
    revised = {a["alert_id"]: a["patient"] for *_, a in messages if a["patient"] != first[a["alert_id"]]}
    assert set(revised) == set(first), "each cluster is now completed by another child's report"
    assert any(partition_of(first[i]) != partition_of(revised[i]) for i in first), (
        "keyed by patient, the revision would land on another partition (the test's premise)")
    for alert_id in first:
        sent = sorted((p, o, a) for p, o, a in messages if a["alert_id"] == alert_id)
        assert len({p for p, _, _ in sent}) == 1, "one alert, one partition"
        assert sent[-1][2]["patient"] == revised[alert_id], "the last message is the revision"
        assert str(late[1].event_id) in sent[-1][2]["evidence_event_ids"]  # four reports within the window
