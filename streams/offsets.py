"""Consumer-group progress from the broker itself: how far the worker has committed, per partition."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition


def group_lag(bootstrap: str, group_id: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """End offset minus committed offset for every partition of `topics` (nothing committed = whole partition).

    The consumer only reads the group's committed offsets (OffsetFetch); it never joins the group.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, client_id="pvwatch-lag",
                             enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        return {tp: max(0, ends[tp] - (consumer.committed(tp) or 0)) for tp in partitions}
    finally:
        consumer.close()
