"""The engine builds its alerts without validation (SafetyAlert.derived): every alert it derives must be exactly
the alert validation would have built from the same values, or the store and pv.safety.alert.v1 would carry
something the schema rejects."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime
from uuid import NAMESPACE_DNS, uuid4, uuid5

from pvwatch.cohort import generate_cohort
from pvwatch.domain import serious_ae
from pvwatch.domain.engine import SafetyEngine
from pvwatch.events.adverse_event import AdverseEventReported, SeriousnessCriteria
from pvwatch.events.alert import ALERT_NAMESPACE, SafetyAlert, alert_id_for
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.rulebook import load_rule_parameters
from tests.scenarios.stories import all_stories

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_every_alert_the_engine_derives_is_what_validation_builds():
    """The cohort and every planted story (so every rule fires, withdrawals included), in a shuffled order."""
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(60, 7)]
    events += [event for story in all_stories() for event in story.events]
    random.Random(11).shuffle(events)
    engine = SafetyEngine(load_rule_parameters())
    alerts = [alert for start in range(0, len(events), 100)
              for alert in engine.apply(events[start:start + 100], NOW).alerts]
    alerts += engine.clock_alerts(NOW)
    assert {a.rule_id for a in alerts} >= {
        "serious-ae", "duplicate-case", "ctcae-lab", "hys-law", "expedited-clock", "expedited-due-soon",
        "expedited-overdue", "infusion-temporal", "lot-cluster", "flare-after-taper", "undocumented-benefit"}
    for alert in alerts:
        # every field's value as the engine set it (`withdrawal` left to its default, as the engine leaves it)
        validated = SafetyAlert(**{name: value for name, value in dict(alert).items() if name != "withdrawal"})
        assert repr(validated) == repr(alert)  # the same values of the same types (a tuple is not a list)
        assert validated.model_fields_set == alert.model_fields_set
        assert validated.wire_json() == alert.wire_json()
        # what the writer, the outbox and the tests do with an alert: compare, copy, pickle, dump
        assert alert == validated and validated == alert
        assert pickle.loads(pickle.dumps(alert)) == validated
        assert alert.model_copy(update={"summary": "x"}) == validated.model_copy(update={"summary": "x"})
        assert alert.model_dump() == validated.model_dump()


def test_a_serious_case_with_every_criterion_and_the_longest_term_raises_its_alert():
    """A 200-character term (ShortText's limit) with all six ICH E2A criteria makes a 314-character summary: the
    alert is raised with the summary cut to the field's 300 (validation used to reject the alert)."""
    event = AdverseEventReported(
        event_id=uuid4(), occurred_at=NOW, recorded_at=NOW, source="clinic-emr", patient="pt-440f4ef5ca92cca5465a",
        case_id="CASE-LONG-1", report_kind="initial", reporter_type="clinician", awareness_date=NOW.date(),
        term="x" * 200, seriousness=SeriousnessCriteria(
            death=True, life_threatening=True, hospitalisation=True, disability=True, congenital_anomaly=True,
            medically_important=True),
        outcome="fatal", products=[{"name": "belimumab", "role": "suspect"}])
    alert = serious_ae.evaluate(event, NOW)
    assert alert is not None
    assert len(alert.summary) == 300
    assert SafetyAlert(**{name: value for name, value in dict(alert).items() if name != "withdrawal"}) == alert


def test_alert_ids_are_rfc_4122_name_based_sha1_ids_in_the_alert_namespace():
    for key in ("CASE-1|15-day", "é|ü", ""):
        assert alert_id_for("expedited-overdue", 2, key) == uuid5(ALERT_NAMESPACE, f"expedited-overdue/2/{key}")
    assert alert_id_for("serious-ae", 1, "CASE-1") != uuid5(NAMESPACE_DNS, "serious-ae/1/CASE-1")
