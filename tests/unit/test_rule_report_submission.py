"""The report-submitted event (the one that stops an expedited clock): the example in docs/rules.md is accepted on
its own topic, a category that is no ICH E2A clock is rejected, and submitting stops exactly its clock."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pvwatch.domain.engine import SafetyEngine
from pvwatch.errors import InvalidEvent
from pvwatch.events.codec import decode_event, encode_event
from pvwatch.events.registry import TOPIC_OF_TYPE
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.rulebook import load_rule_parameters
from tests.scenarios.stories import load

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
EXAMPLE = next(line for line in DOC.read_text().splitlines() if '"type": "report-submitted"' in line)


def test_documented_example_is_accepted_on_its_topic():
    event = decode_event(EXAMPLE.encode(), TOPIC_OF_TYPE["report-submitted"])
    assert isinstance(event, ExpeditedReportSubmitted)
    assert event.topic == "pv.safety.report-submitted.v1"
    assert decode_event(encode_event(event), event.topic) == event


def test_a_category_that_is_no_clock_is_rejected():
    record = json.loads(EXAMPLE)
    record["category"] = "30-day"
    with pytest.raises(InvalidEvent, match="category"):
        decode_event(json.dumps(record).encode(), TOPIC_OF_TYPE["report-submitted"])


def test_submission_stops_only_its_own_clock():
    story = load(Path(__file__).resolve().parents[1] / "scenarios" / "fatal_susar.yaml")
    engine = SafetyEngine(load_rule_parameters())
    engine.apply(story.events, datetime(2026, 3, 3, tzinfo=UTC))
    stopped = {key[1]: row.clock.submitted_at is not None for key, row in engine.clocks.items()}
    assert stopped == {"7-day": True, "7-day-follow-up": False}
    assert re.fullmatch(r"[0-9a-f-]{36}", str(engine.clocks[("C-PE-1", "7-day")].clock.submission_event_id))
