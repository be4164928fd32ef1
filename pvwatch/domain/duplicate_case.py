"""Rule `duplicate-case`: two case ids that probably describe one adverse event of one patient.

Duplicate reports inflate counts and distort disproportionality (Norén GN, Orre R, Bate A, Edwards IR.
Duplicate detection in adverse drug reaction surveillance. Data Min Knowl Disc 2007;14:305-328). Here the
patient is known (one pseudonym), so the match is simple: same patient, same event (MedDRA PT code when both
have one, otherwise the same term ignoring case), onsets within `onset_days` of each other, and then the
reporters (`reporter_match` below). One alert per pair of cases, for an officer to merge or keep apart; the rule
never merges by itself.

Reporters (version 2). When both reports carry a reporter pseudonym (E2B(R3) C.2.r.1-2, pseudonymised at the
edge), they are compared: two different people (two clinicians, a parent and a clinician) reporting one episode is
a probable duplicate. The same pseudonym on two case ids is also flagged, labelled `same-reporter`: one person
sending the episode again under a new case id is a follow-up or a resend that lost its case id, and it too counts
the event twice and opens a second expedited clock, because follow-ups are meant to keep the case id (issue 5:
"follow-up reports keep the case's clock"; E2B(R3) C.1.8.1, the worldwide unique case id, is kept across
versions). What the officer does differs (merge as a follow-up rather than link two primary sources), so the
alert says which. When either report has no pseudonym (every event from before version 2, sources that do not
send one), the rule falls back to version 1: different reporter types only, since two same-type reports without
identities cannot be told apart from two separate episodes reported by one person.
Source check: ../shared/notes/pv-rules-and-standards.md holds no ICH E2D or GVP Module VI text on duplicates
(only Norén 2007, the peers' duplicate searches and the follow-up rule above); GVP Module VI Addendum I
("Duplicate management of suspected adverse reaction reports") is the guidance that speaks to it and was not read
for this rule, so the same-reporter choice rests on the follow-up rule, not on a quoted guideline.
"""

from __future__ import annotations

from datetime import datetime

from pvwatch.domain.history import PatientHistory
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert, Severity, alert_id_for

RULE_ID = "duplicate-case"
RULE_VERSION = 2
DEFAULT_ONSET_DAYS = 3

DIFFERENT_REPORTERS = "different-reporters"  # both pseudonyms known, and they differ
SAME_REPORTER = "same-reporter"  # both pseudonyms known and equal: a follow-up or a resend under a new case id
DIFFERENT_REPORTER_TYPES = "different-reporter-types"  # a pseudonym missing: version 1's test


def reporter_match(a: AdverseEventReported, b: AdverseEventReported) -> str | None:
    """How the two reports' reporters relate, or None when nothing says they are one case reported twice."""
    if a.reporter is not None and b.reporter is not None:
        return SAME_REPORTER if a.reporter == b.reporter else DIFFERENT_REPORTERS
    return DIFFERENT_REPORTER_TYPES if a.reporter_type != b.reporter_type else None


def _same_event(a: AdverseEventReported, b: AdverseEventReported) -> bool:
    if a.meddra_pt_code and b.meddra_pt_code:
        return a.meddra_pt_code == b.meddra_pt_code
    return a.term.casefold() == b.term.casefold()


def _order(event: AdverseEventReported) -> tuple[datetime, str]:
    return (event.occurred_at, str(event.event_id))


def _summary(first: AdverseEventReported, second: AdverseEventReported, match: str) -> str:
    if match == SAME_REPORTER:
        return (f"Cases {first.case_id} and {second.case_id}: {first.term} sent twice by the same reporter "
                "(a follow-up or resend under a new case id?)")
    return f"Probable duplicate cases {first.case_id} and {second.case_id}: {first.term}"


def evaluate(
    new: AdverseEventReported, history: PatientHistory, now: datetime, onset_days: int = DEFAULT_ONSET_DAYS,
    version: int = RULE_VERSION,
) -> list[SafetyAlert]:
    """Alerts for every other case that probably duplicates `new`'s case. Cases have versions; each pair of
    cases is judged on all their versions and speaks through its earliest matching pair of versions, so the alert
    is the same whatever order the versions arrived in."""
    reports = history.of_type("adverse-event", AdverseEventReported)
    if len(reports) < 2:
        return []  # `new` is the patient's only report: no other case (most patients, replay's commonest call)
    mine = [r for r in reports if r.case_id == new.case_id and r.onset_date is not None]
    pairs: dict[tuple[str, str], tuple[AdverseEventReported, AdverseEventReported, str]] = {}
    for report in mine:
        assert report.onset_date is not None
        for other in reports:
            if other.case_id == new.case_id or other.onset_date is None or not _same_event(report, other):
                continue
            if abs((other.onset_date - report.onset_date).days) > onset_days:
                continue
            match = reporter_match(report, other)
            if match is None:
                continue
            first, second = sorted((report, other), key=lambda e: e.case_id)
            key = (first.case_id, second.case_id)
            known = pairs.get(key)
            if known is None or (_order(first), _order(second)) < (_order(known[0]), _order(known[1])):
                pairs[key] = (first, second, match)
    return [
        SafetyAlert.derived(
            alert_id=alert_id_for(RULE_ID, version, f"{first.case_id}|{second.case_id}"),
            rule_id=RULE_ID, rule_version=version, severity=Severity.WARNING, patient=new.patient,
            case_id=first.case_id, evidence_event_ids=(first.event_id, second.event_id),
            occurred_at=max(first.occurred_at, second.occurred_at), raised_at=now,
            summary=_summary(first, second, match),
            details={"cases": [first.case_id, second.case_id],
                     "reporters": [first.reporter_type.value, second.reporter_type.value],
                     "reporter_match": match},
        )
        for first, second, match in pairs.values()
    ]
