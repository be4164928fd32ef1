"""After a crash the next worker reads back the alert topic's tail and sends only the unmarked alerts that never
arrived (streams/alert_resend.py), on the real embedded broker."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pvwatch.events import ALERT_TOPIC
from pvwatch.streams.alert_resend import already_on_topic
from pvwatch.streams.writer import PublishableAlert

pytestmark = pytest.mark.integration


def alert(number: int) -> dict[str, object]:
    return {"alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alert-{number}")), "rule_id": "serious-ae",
            "patient": f"pt-{number % 37:020d}", "summary": f"alert {number}"}


def pending(document: dict[str, object]) -> PublishableAlert:
    # serialised differently from what is on the topic (key order, spacing), as the store's copy may be
    return PublishableAlert(str(document["alert_id"]), str(document["alert_id"]).encode(),
                            json.dumps(dict(reversed(list(document.items()))), indent=1).encode(), True)


def test_the_unmarked_alerts_already_on_the_topic_are_found_and_no_others(broker):
    sent = [alert(n) for n in range(300)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for document in sent:
        # keyed as the worker sends them (streams/writer.py publishable): by alert id, across every partition
        producer.send(ALERT_TOPIC, key=str(document["alert_id"]).encode(), value=json.dumps(document).encode())
    producer.flush()
    producer.close()
    revised = {**sent[-1], "summary": "alert 299, revised with new evidence"}
    never_sent = alert(1000)
    unmarked = [pending(d) for d in sent[-90:-1]] + [pending(revised), pending(never_sent)]

    found = already_on_topic(broker.bootstrap, ALERT_TOPIC, unmarked)

    assert found == {str(d["alert_id"]) for d in sent[-90:-1]}


def test_the_embedded_broker_reports_end_offsets_below_the_true_end(broker):
    """Why alert_resend reads until polls come back empty instead of up to `end_offsets` (Tansu's ListOffsets)."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for batch in (1, 5, 20):
        for _ in range(batch):
            producer.send(ALERT_TOPIC, key=b"k", value=b"{}", partition=0)
        producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        end = consumer.end_offsets([TopicPartition(ALERT_TOPIC, 0)])[TopicPartition(ALERT_TOPIC, 0)]
    finally:
        consumer.close()
    assert end < 26, "if Tansu now reports the true end, alert_resend may trust end_offsets again"
