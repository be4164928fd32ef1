"""Topic creation with kafka-python's admin client (idempotent: existing topics are left alone)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from pvwatch.errors import BrokerError
from pvwatch.events.registry import ALL_TOPICS


def ensure_topics(
    bootstrap: str, partitions: int, topics: Iterable[str] = ALL_TOPICS, *, timeout_s: float = 20.0
) -> list[str]:
    """Create the topics that do not exist yet; return those created. Retries while the broker starts."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="pvwatch-admin", request_timeout_ms=10_000)
            break
        except (KafkaConnectionError, KafkaTimeoutError):
            if time.monotonic() > deadline:
                raise BrokerError(f"no Kafka broker at {bootstrap}") from None
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            new = [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in missing]
            try:
                admin.create_topics(new, timeout_ms=10_000)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as error:
                raise BrokerError(f"could not create topics {missing}: {error}") from error
        return missing
    finally:
        admin.close()
