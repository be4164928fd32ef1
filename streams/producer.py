"""Publishing events to Kafka with kafka-python: JSON values keyed by patient pseudonym."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from pvwatch.errors import BrokerError
from pvwatch.events.codec import encode_event
from pvwatch.events.envelope import EventEnvelope


class EventPublisher:
    """acks=all and an idempotent producer, so a retried send is not written twice by the broker."""

    def __init__(self, bootstrap: str, *, linger_ms: int = 5, client_id: str = "pvwatch-ingest",
                 bootstrap_timeout_s: float = 10.0) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000),  # kafka-python waits 30 s by default
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            batch_size=64 * 1024,
            max_request_size=1024 * 1024,
        )

    def publish(self, event: EventEnvelope) -> FutureRecordMetadata:
        return self._producer.send(event.topic, key=event.kafka_key, value=encode_event(event))

    def publish_raw(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> FutureRecordMetadata:
        """Send bytes as they are (dead letters from the edge, and tests of the worker's own validation)."""
        return self._producer.send(topic, key=key, value=value, headers=headers)

    def publish_all(self, events: Iterable[EventEnvelope]) -> Iterator[EventEnvelope]:
        """Publish lazily, yielding each event once handed to the producer (for progress bars)."""
        for event in events:
            self.publish(event)
            yield event

    def flush(self, timeout_s: float = 30.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.flush()
        self.close()


@contextmanager
def publishing(bootstrap: str) -> Iterator[EventPublisher]:
    """An EventPublisher for a command line: a Kafka failure becomes a BrokerError saying a re-run is safe.

    A re-run is safe because every event carries its event_id (from the file, or derived from the source record by
    the importers) and the worker stores each event_id once.
    """
    try:
        with EventPublisher(bootstrap) as publisher:
            yield publisher
    except KafkaError as error:
        raise BrokerError(
            f"publishing to Kafka at {bootstrap} failed ({error}); run the same command again when the broker is "
            "back: events keep their event ids, so nothing is stored twice"
        ) from None
