"""Rule `serious-ae`: every serious adverse event case raises a critical alert at once.

Source: ICH E2A (1994) section II.B, "Serious Adverse Event or Reaction": death, life-threatening,
inpatient hospitalisation or prolongation of existing hospitalisation, persistent or significant
disability/incapacity, congenital anomaly/birth defect, or other medically important event.
One alert per case: follow-up versions of a case already alerted do not alert again (same alert id).
"""

from __future__ import annotations

from datetime import datetime

from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert, Severity, alert_id_for

RULE_ID = "serious-ae"
RULE_VERSION = 1


def evaluate(event: AdverseEventReported, now: datetime, version: int = RULE_VERSION) -> SafetyAlert | None:
    criteria = event.seriousness
    if not criteria.is_serious:
        return None
    met = criteria.met()
    return SafetyAlert.derived(
        alert_id=alert_id_for(RULE_ID, version, event.case_id),
        rule_id=RULE_ID,
        rule_version=version,
        severity=Severity.CRITICAL,
        patient=event.patient,
        case_id=event.case_id,
        evidence_event_ids=(event.event_id,),
        occurred_at=event.occurred_at,
        raised_at=now,
        summary=f"Serious adverse event ({', '.join(met)}): {event.term}",
        details={"criteria": met, "term": event.term, "report_kind": event.report_kind,
                 "reporter_type": event.reporter_type.value},
    )
