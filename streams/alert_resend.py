"""After a crash, send each alert once: find the stored-but-unmarked alerts that already reached the alert topic.

The outbox sends an alert, then marks it published in the store. A worker killed between the two leaves the
alert marked unpublished although it is on `pv.safety.alert.v1`; sending every unmarked alert again put 26-87
duplicates on the topic per kill -9 in tests/integration/test_pipeline.py. Those alerts are the last messages the
dead worker sent (pvwatch is the alert topic's only producer and sends in order), so reading back that many
messages from the end of each partition finds them, and the next worker sends only what never arrived.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pvwatch.streams.writer import PublishableAlert

log = logging.getLogger(__name__)

#: beyond the pending alerts themselves: a revision sent twice, or clock alerts, may sit between them
TAIL_MARGIN = 16


def already_on_topic(bootstrap: str, topic: str, pending: Sequence[PublishableAlert],
                     timeout_s: float = 10.0) -> set[str]:
    """Ids of the `pending` alerts whose exact content (same alert_id, same fields) is already on `topic`.

    A revised alert keeps its alert_id with new content, so only an equal message counts. Contents are compared as
    JSON, not bytes: the same alert serialised live and from the store may differ in key order. An id pending twice
    (a withdrawal and the alert raised again after it: the store marks both by the id) counts only when both are.
    """
    if not pending:
        return set()
    try:
        return _read_back(bootstrap, topic, pending, timeout_s)
    except KafkaError as error:  # then every pending alert is sent: at least once, never lost
        log.warning("could not read back %s (%s); resending %d unmarked alerts", topic, error, len(pending))
        return set()


def _read_back(bootstrap: str, topic: str, pending: Sequence[PublishableAlert], timeout_s: float) -> set[str]:
    wanted: dict[str, list[Any]] = {}
    for alert in pending:
        wanted.setdefault(alert.alert_id, []).append(json.loads(alert.value))
    seen: dict[str, list[Any]] = {}
    window = 2 * len(pending) + TAIL_MARGIN
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="pvwatch-resend-check", fetch_max_wait_ms=100)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        # The embedded broker (Tansu) reports an end offset below the true end (its last record batch's base
        # offset, measured: 8 after 26 records): starting from it reads more, never less; the end is where polls
        # come back empty (nothing else writes the alert topic while the worker starts).
        ends: dict[Any, int] = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - window))
        deadline = time.monotonic() + timeout_s
        empty_polls = 0
        while empty_polls < 2:
            if time.monotonic() > deadline:
                break  # what was not read back is sent again: at least once, never lost
            polled = consumer.poll(timeout_ms=500)
            empty_polls = 0 if polled else empty_polls + 1
            for records in polled.values():
                for record in records:
                    sent = _alert(record.value)
                    alert_id = str(sent.get("alert_id")) if sent is not None else ""
                    if sent is not None and sent in wanted.get(alert_id, ()):
                        seen.setdefault(alert_id, []).append(sent)
        return {alert_id for alert_id, documents in wanted.items()
                if all(document in seen.get(alert_id, ()) for document in documents)}
    finally:
        consumer.close()


def _alert(value: bytes | None) -> dict[str, Any] | None:
    try:
        document = json.loads(value or b"")
    except ValueError:
        return None  # not an alert pvwatch wrote: it cannot match one
    return document if isinstance(document, dict) else None
