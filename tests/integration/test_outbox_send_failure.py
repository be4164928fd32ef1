"""The outbox keeps what it could not send: a send the producer refuses at once (its buffer full, the broker gone)
leaves the alerts pending, and the next flush sends them. Before, only a failed delivery did; a refused send
dropped the batch's alerts from the outbox until the next worker start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pvwatch.streams.app import Outbox
from pvwatch.streams.writer import InProcessWriter, StoreWriter
from tests.integration.test_alert_withdrawal import RecordingAlertTopic, raw, story

pytestmark = pytest.mark.integration


class RefusingOnceAlertTopic(RecordingAlertTopic):
    """The Faust alert topic whose first send raises before it returns a future (as a full producer buffer does)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def send(self, key: object, value: bytes, headers: dict[str, bytes] | None = None) -> asyncio.Future[None]:
        if not self.refused:
            self.refused += 1
            raise BufferError("the producer's buffer is full")
        return await super().send(key, value, headers)


def test_an_alert_whose_send_is_refused_is_sent_by_the_next_flush(tmp_path: Path):
    alt, bilirubin, _ = story()  # ALT 4 x ULN and bilirubin 3 x ULN: Hy's law

    async def scenario() -> tuple[list[str], list[bytes]]:
        writer = InProcessWriter(StoreWriter(tmp_path / "store.duckdb", None, None))
        topic = RefusingOnceAlertTopic()
        outbox = Outbox(writer, topic, RecordingAlertTopic(), [])  # type: ignore[arg-type]
        try:
            outbox.add(await writer.process(raw([alt, bilirubin])))
            with pytest.raises(BufferError):
                await outbox.flush()
            still_pending = [alert.alert_id for alert in outbox.pending_alerts]
            await outbox.flush()
            return still_pending, topic.sent
        finally:
            await writer.close()

    pending, sent = asyncio.run(scenario())
    assert len(pending) == 1, "the refused alert stays in the outbox"
    assert [json.loads(message)["alert_id"] for message in sent] == pending
