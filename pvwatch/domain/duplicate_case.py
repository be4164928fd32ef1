"""Rule `duplicate-case`: two case ids that probably describe one adverse event of one patient.

Duplicate reports inflate counts and distort disproportionality (Norén GN, Orre R, Bate A, Edwards IR.
Duplicate detection in adverse drug reaction surveillance. Data Min Knowl Disc 2007;14:305-328). Here the
patient is known (one pseudonym), so the match is simple: same patient, same event (MedDRA PT code when both
have one, otherwise the same term ignoring case), onsets within `onset_days` of each other, and reports from
different reporter types (a parent and a clinician describing the same episode). One alert per pair of
cases, for an officer to merge or keep apart; the rule never merges by itself.
"""

from __future__ import annotations

from datetime import datetime

from pvwatch.domain.history import PatientHistory
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert, Severity, alert_id_for

RULE_ID = "duplicate-case"
RULE_VERSION = 1
DEFAULT_ONSET_DAYS = 3


def _same_event(a: AdverseEventReported, b: AdverseEventReported) -> bool:
    if a.meddra_pt_code and b.meddra_pt_code:
        return a.meddra_pt_code == b.meddra_pt_code
    return a.term.casefold() == b.term.casefold()


def _order(event: AdverseEventReported) -> tuple[datetime, str]:
    return (event.occurred_at, str(event.event_id))


def evaluate(
    new: AdverseEventReported, history: PatientHistory, now: datetime, onset_days: int = DEFAULT_ONSET_DAYS,
    version: int = RULE_VERSION,
) -> list[SafetyAlert]:
    """Alerts for every other case that probably duplicates `new`'s case. Cases have versions; each pair of
    cases is judged on all their versions and speaks through its earliest matching pair of versions, so the alert
    is the same whatever order the versions arrived in."""
    reports = history.of_type("adverse-event", AdverseEventReported)
    mine = [r for r in reports if r.case_id == new.case_id and r.onset_date is not None]
    pairs: dict[tuple[str, str], tuple[AdverseEventReported, AdverseEventReported]] = {}
    for report in mine:
        assert report.onset_date is not None
        for other in reports:
            if other.case_id == new.case_id or other.onset_date is None:
                continue
            if other.reporter_type == report.reporter_type or not _same_event(report, other):
                continue
            if abs((other.onset_date - report.onset_date).days) > onset_days:
                continue
            first, second = sorted((report, other), key=lambda e: e.case_id)
            key = (first.case_id, second.case_id)
            known = pairs.get(key)
            if known is None or (_order(first), _order(second)) < (_order(known[0]), _order(known[1])):
                pairs[key] = (first, second)
    return [
        SafetyAlert(
            alert_id=alert_id_for(RULE_ID, version, f"{first.case_id}|{second.case_id}"),
            rule_id=RULE_ID, rule_version=version, severity=Severity.WARNING, patient=new.patient,
            case_id=first.case_id, evidence_event_ids=(first.event_id, second.event_id),
            occurred_at=max(first.occurred_at, second.occurred_at), raised_at=now,
            summary=f"Probable duplicate cases {first.case_id} and {second.case_id}: {first.term}",
            details={"cases": [first.case_id, second.case_id],
                     "reporters": [first.reporter_type.value, second.reporter_type.value]},
        )
        for first, second in pairs.values()
    ]
