"""The patient timeline drawn server-side as SVG, one time axis for the whole story (docs/events.md types):

* treatments: one bar per course (course_id, else drug) from start to stop, dose changes and tapers marked with
  their dose; a taper is the change pvwatch watches for flares (rule flare-after-taper);
* MSC infusions: lot, clinic and cell dose; an incompletely documented infusion (no lot or no cell dose, the
  model's `missing_documentation`) is drawn hollow with a red "!";
* labs: one row per analyte, named (not by LOINC code), each value coloured by its CTCAE v5.0 grade: the grade of
  the ctcae-lab alert when the rules raised one, else pvwatch.domain.ctcae.grade on the value and its range;
* disease activity: one chart per instrument (the scales differ: SLEDAI-2K 0-105, JADAS10 0-40, globals 0-10);
  clinician-documented values solid line and filled circles, parent- or patient-reported values dashed line and
  hollow triangles, named in each chart's legend. Benefit reported by parents but not documented by a clinician is
  the gap pvwatch exists to expose, so the two must never look alike;
* adverse events (serious red, parent-reported hollow, linked to the case), alerts (flags) and outcome claims
  (documented: filled star; no documented measure: hollow star with "?");
* withdrawn alerts (alert_withdrawals: a later event made them untrue, docs/rules.md "Late and out-of-order
  events") in the alerts lane as hollow, dashed, struck-through flags saying when and why, so an alert an officer
  saw never vanishes from the story unexplained; the lane's legend tells the two apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import quote

from pvwatch.domain import ctcae

WIDTH = 1100
LEFT = 170
RIGHT = 30
ROW = 26
CHART_HEIGHT = 110
#: CTCAE v5.0 grades 0-5 (within range, mild, moderate, severe, life-threatening, death), light to dark.
GRADE_COLOURS = {0: "#bdbdbd", 1: "#9ccc65", 2: "#fbc02d", 3: "#fb8c00", 4: "#e53935", 5: "#000000"}
ANALYTE_NAMES = {ctcae.Analyte.NEUTROPHILS: "Neutrophils", ctcae.Analyte.PLATELETS: "Platelets",
                 ctcae.Analyte.HAEMOGLOBIN: "Haemoglobin", ctcae.Analyte.ALT: "ALT", ctcae.Analyte.AST: "AST",
                 ctcae.Analyte.BILIRUBIN: "Total bilirubin", ctcae.Analyte.CREATININE: "Creatinine",
                 ctcae.Analyte.ALP: "Alkaline phosphatase"}
PALETTE = ("#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457")
#: rows of the timeline in order; the disease-activity charts follow them
LANES = ("treatment", "infusion", "lab", "adverse-event", "alert", "outcome")


def lane_of(event_type: str) -> str:
    """The timeline lane of an event type (patient-enrolled/-updated and alert-action have none)."""
    if event_type.startswith("treatment-"):
        return "treatment"
    return {"msc-infusion": "infusion", "lab-result": "lab", "disease-activity": "disease-activity",
            "adverse-event": "adverse-event", "outcome-claim": "outcome"}.get(event_type, "none")


def reported_by_parent(event: dict[str, Any]) -> bool:
    """True when the value comes from a parent or the patient, not from a clinician's documentation
    (disease-activity `assessed_by`, outcome-claim `claimed_by`, adverse-event `reporter_type`)."""
    payload = event["payload"]
    who = payload.get("assessed_by") or payload.get("claimed_by") or payload.get("reporter_type")
    return who in ("parent", "patient")


def lab_name(payload: dict[str, Any]) -> str:
    analyte = ctcae.LOINC_ANALYTES.get(str(payload.get("loinc_code")))
    if analyte is not None:
        return ANALYTE_NAMES[analyte]
    return str(payload.get("test_name") or f"LOINC {payload.get('loinc_code')}")


def lab_grade(payload: dict[str, Any], alert_grade: int | None) -> tuple[int | None, str]:
    """(CTCAE grade, term) of one lab value: the ctcae-lab alert's grade when the rules raised one (it may use the
    patient's baseline), else CTCAE v5.0 on the value and its reference range; None when it cannot be graded."""
    analyte = ctcae.LOINC_ANALYTES.get(str(payload.get("loinc_code")))
    if analyte is None or analyte not in ctcae.TERM_OF_ANALYTE:
        return alert_grade, ""
    term = ctcae.TERM_OF_ANALYTE[analyte].value
    if alert_grade is not None:
        return alert_grade, term
    try:
        graded = ctcae.grade(analyte, float(payload["value"]), str(payload.get("unit")),
                             payload.get("reference_low"), payload.get("reference_high"))
    except (ctcae.UngradableResult, KeyError, TypeError, ValueError):
        return None, term
    return (graded.grade, term) if graded else (None, term)


@dataclass
class _Scale:
    start: datetime
    end: datetime

    def x(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        return LEFT + (WIDTH - LEFT - RIGHT) * (moment - self.start).total_seconds() / span


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_timeline(events: list[dict[str, Any]], alerts: list[dict[str, Any]],
                    lab_alert_grades: dict[str, int] | None = None,
                    withdrawn: list[dict[str, Any]] | None = None) -> str:
    """SVG of one patient's story. `events` as from ReadModel.patient_events, `alerts` as from ReadModel.alerts,
    `lab_alert_grades` {lab event id: grade} from the patient's ctcae-lab alerts, `withdrawn` as from
    ReadModel.withdrawn_alerts."""
    withdrawn = withdrawn or []
    drawn = [e for e in events if lane_of(e["type"]) != "none"]
    moments = [e["occurred_at"] for e in drawn] + [t for a in (*alerts, *withdrawn) if (t := _time(a["occurred_at"]))]
    if not moments:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40" role="img">'
                '<text x="10" y="25">No events stored for this patient yet.</text></svg>')
    start, end = min(moments), max(moments)
    pad = max(timedelta(days=3), (end - start) * 0.03)
    scale = _Scale(start - pad, end + pad)
    by_lane: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in drawn:
        by_lane[lane_of(event["type"])].append(event)

    parts: list[str] = []
    y = 24
    draw: dict[str, Callable[[list[str], list[dict[str, Any]], _Scale, int], int]] = {
        "treatment": _treatments, "infusion": _infusions, "adverse-event": _adverse_events, "outcome": _outcomes}
    for lane in LANES:
        if lane == "alert":
            y = _alerts(parts, alerts, withdrawn, scale, y)
        elif lane == "lab":
            y = _labs(parts, by_lane["lab"], scale, y, lab_alert_grades or {})
        elif by_lane[lane]:
            y = draw[lane](parts, by_lane[lane], scale, y)
    y = _activity_charts(parts, by_lane["disease-activity"], scale, y + 6)
    parts.extend(_axis(scale, y))
    height = y + 30
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" aria-label="Patient timeline" '
            f'font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def _lane_label(y: float, label: str, css: str, bold: bool = True) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text class="lane-label {css}" x="8" y="{y + 4:.0f}"{weight}>{escape(label)}</text>'
            f'<line x1="{LEFT}" y1="{y:.0f}" x2="{WIDTH - RIGHT}" y2="{y:.0f}" stroke="#eeeeee"/>')


def _treatments(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int) -> int:
    """One bar per course from its start (or first seen change) to its stop; changes and tapers marked."""
    parts.append(_lane_label(y, "Treatments", "treatment"))
    courses: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        payload = event["payload"]
        courses[str(payload.get("course_id") or payload.get("drug"))].append(event)
    y += 16
    for course_events in courses.values():
        first = course_events[0]["payload"]
        drug = str(first.get("drug"))
        stop = next((e for e in course_events if e["type"] == "treatment-stopped"), None)
        x1 = scale.x(course_events[0]["occurred_at"])
        x2 = scale.x(stop["occurred_at"]) if stop else WIDTH - RIGHT
        label = f"{drug} ({first.get('drug_class', '')})"
        parts.append(f'<g class="course">{_title(label + (" stopped" if stop else " ongoing"))}'
                     f'<rect x="{x1:.1f}" y="{y - 5}" width="{max(2.0, x2 - x1):.1f}" height="10" fill="#bbdefb" '
                     f'rx="3"/></g><text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="10">'
                     f'{escape(drug)}</text>')
        for event in course_events:
            parts.append(_treatment_mark(event, scale.x(event["occurred_at"]), y))
        y += ROW - 4
    return y + 8


def _treatment_mark(event: dict[str, Any], x: float, y: int) -> str:
    payload = event["payload"]
    change = event["type"].removeprefix("treatment-")
    dose = payload.get("dose")
    unit = payload.get("dose_unit") or ""
    previous = payload.get("previous_dose")
    dose_text = f"{_fmt(dose)} {unit}".strip() if dose is not None else ""
    what = f"{payload.get('drug')} {change}"
    if previous is not None and dose is not None:
        what += f" {_fmt(previous)} -> {dose_text}"
    elif dose_text:
        what += f" {dose_text}"
    if payload.get("reason"):
        what += f" ({payload['reason']})"
    what += f", {event['occurred_at'].date().isoformat()}"
    colour = {"tapered": "#6a1b9a", "stopped": "#424242", "started": "#1565c0"}.get(change, "#0277bd")
    width = 3 if change == "tapered" else 1.5
    label = (f'<text x="{x + 3:.1f}" y="{y - 7}" font-size="9" fill="{colour}">'
             f'{"taper " if change == "tapered" else ""}{escape(dose_text)}</text>'
             if change in ("tapered", "dose-changed") else "")
    return (f'<g class="{escape(change)}">{_title(what)}<line x1="{x:.1f}" y1="{y - 8}" x2="{x:.1f}" y2="{y + 8}" '
            f'stroke="{colour}" stroke-width="{width}"/>{label}</g>')


def _infusions(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int) -> int:
    parts.append(_lane_label(y + 4, "MSC infusions", "infusion"))
    y += 8
    for event in events:
        payload = event["payload"]
        x = scale.x(event["occurred_at"])
        missing = list(payload.get("missing_documentation") or [])
        if "incompletely_documented" not in payload:  # stored before the computed field existed: same rule
            missing = [m for m, absent in (("lot_id", not payload.get("lot_id")),
                                           ("cell_dose", payload.get("cells_per_kg") is None
                                            and payload.get("total_cells") is None)) if absent]
        lot = payload.get("lot_id") or "no lot"
        dose = (f"{payload['cells_per_kg']:.2g} cells/kg" if payload.get("cells_per_kg") is not None
                else f"{payload['total_cells']:.2g} cells" if payload.get("total_cells") is not None
                else "no cell dose")
        text = (f"MSC infusion {payload.get('infusion_number') or ''}: {payload.get('product_name') or 'product?'}, "
                f"lot {lot}, {payload.get('clinic')}, {dose}, {event['occurred_at'].date().isoformat()}")
        shape = f'M{x:.1f},{y - 8} l8,8 l-8,8 l-8,-8 z'
        if missing:
            text += f"; INCOMPLETELY DOCUMENTED: missing {', '.join(missing)}"
            mark = (f'<path d="{shape}" fill="white" stroke="#c62828" stroke-width="2" stroke-dasharray="3 2"/>'
                    f'<text x="{x - 2:.1f}" y="{y + 4}" font-size="10" fill="#c62828" font-weight="bold">!</text>')
        else:
            mark = f'<path d="{shape}" fill="#00897b"/>'
        href = f"/lots/{quote(str(payload['lot_id']), safe='')}" if payload.get("lot_id") else \
            f"/clinics/{quote(str(payload.get('clinic')), safe='')}"
        parts.append(f'<a href="{escape(href)}"><g class="infusion{" incomplete" if missing else ""}">'
                     f'{_title(text)}{mark}<text x="{x + 10:.1f}" y="{y + 4}" font-size="9">'
                     f'{escape(str(lot))} · {escape(dose)}</text></g></a>')
    return y + ROW + 6


def _labs(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int,
          alert_grades: dict[str, int]) -> int:
    if not events:
        return y
    parts.append(_lane_label(y + 4, "Labs (CTCAE grade)", "lab"))
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        rows[lab_name(event["payload"])].append(event)
    y += 20
    for name, row_events in rows.items():
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="10">{escape(name)}</text>'
                     f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#f5f5f5"/>')
        for event in row_events:
            payload = event["payload"]
            grade, term = lab_grade(payload, alert_grades.get(event["event_id"]))
            x = scale.x(event["occurred_at"])
            colour = GRADE_COLOURS.get(grade, "#ffffff") if grade is not None else "#ffffff"
            text = (f"{name} {payload.get('comparator') or ''}{_fmt(payload.get('value'))} {payload.get('unit')} "
                    f"(range {_fmt(payload.get('reference_low'))}-{_fmt(payload.get('reference_high'))}), "
                    f"{event['occurred_at'].date().isoformat()}: "
                    + (f"CTCAE v5.0 {term} grade {grade}" if grade is not None else "not graded by CTCAE"))
            label = (f'<text x="{x + 6:.1f}" y="{y - 5}" font-size="9" font-weight="bold">G{grade}</text>'
                     if grade else "")
            parts.append(f'<g class="lab grade-{grade if grade is not None else "none"}">{_title(text)}'
                         f'<circle cx="{x:.1f}" cy="{y}" r="4" fill="{colour}" stroke="#616161" '
                         f'stroke-width="0.5"/>{label}</g>')
        y += ROW - 6
    return y + 8


def _adverse_events(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int) -> int:
    parts.append(_lane_label(y + 4, "Adverse events", "adverse-event"))
    y += 8
    for event in events:
        payload = event["payload"]
        met = [name for name, value in (payload.get("seriousness") or {}).items() if value]
        term = str(payload.get("term"))
        colour = "#c62828" if met else "#f9a825"
        parent = reported_by_parent(event)
        grade = f", CTCAE grade {payload['ctcae_grade']}" if payload.get("ctcae_grade") else ""
        text = (f"{'serious (' + ', '.join(met) + ') ' if met else ''}adverse event: {term}{grade}; "
                f"{payload.get('report_kind', 'initial')} report by {payload.get('reporter_type')}, "
                f"case {payload.get('case_id')}")
        fill = f'fill="white" stroke="{colour}" stroke-width="2"' if parent else f'fill="{colour}"'
        x = scale.x(event["occurred_at"])
        parts.append(f'<a href="/cases/{quote(str(payload.get("case_id")), safe="")}">'
                     f'<g class="adverse-event{" serious" if met else ""}{" parent-reported" if parent else ""}">'
                     f'{_title(text)}<path d="M{x:.1f},{y - 8} l7,14 l-14,0 z" {fill}/>'
                     f'<text x="{x + 9:.1f}" y="{y + 4}" font-size="10">{escape(term)}</text></g></a>')
    return y + ROW + 6


def _alerts(parts: list[str], alerts: list[dict[str, Any]], withdrawn: list[dict[str, Any]], scale: _Scale,
            y: int) -> int:
    """Standing alerts as filled flags; withdrawn ones hollow, dashed and struck through, titled "withdrawn <when>:
    <reason>" (the rule's own words: never a narrative or an identifier), both at the alert's clinical time."""
    if not alerts and not withdrawn:
        return y
    parts.append(_lane_label(y + 4, "Alerts", "alert"))
    y += 8
    for alert in alerts:
        when = _time(alert["occurred_at"])
        if when is None:
            continue
        x = scale.x(when)
        colour = _alert_colour(alert["severity"])
        tip = _title(f"{alert['rule_id']}: {alert['summary']} ({alert['status']})")
        flag = f'<g class="alert-flag {escape(alert["severity"])}">{tip}{_flag(x, y, colour)}</g>'
        parts.append(_linked_to_case(flag, alert))
    for alert in withdrawn:
        when = _time(alert["occurred_at"])
        if when is None:
            continue
        x = scale.x(when)
        tip = _title(f"{alert['rule_id']}: {alert['summary']} - withdrawn {_minute(alert['withdrawn_at'])}: "
                     f"{alert['reason']}")
        flag = (f'<g class="alert-flag withdrawn {escape(alert["severity"])}" '
                f'data-alert-id="{escape(str(alert["alert_id"]))}">{tip}'
                f'{_flag(x, y, _alert_colour(alert["severity"]), withdrawn=True)}</g>')
        parts.append(_linked_to_case(flag, alert))
    legend = (f'<g class="legend alert-raised">{_flag(14, y + 22, "#546e7a")}'
              f'<text x="28" y="{y + 20}" font-size="9">raised</text></g>'
              f'<g class="legend alert-withdrawn">{_flag(74, y + 22, "#546e7a", withdrawn=True)}'
              f'<text x="88" y="{y + 20}" font-size="9">withdrawn</text></g>')
    parts.append(legend)
    return y + ROW + 20


def _alert_colour(severity: str) -> str:
    return {"critical": "#c62828", "warning": "#ef6c00"}.get(severity, "#546e7a")


def _flag(x: float, y: float, colour: str, *, withdrawn: bool = False) -> str:
    """A flag on its pole at (x, y); a withdrawn one hollow and dashed, struck through by a diagonal line."""
    if not withdrawn:
        return (f'<line x1="{x:.1f}" y1="{y - 10}" x2="{x:.1f}" y2="{y + 8}" stroke="{colour}" stroke-width="2"/>'
                f'<path d="M{x:.1f},{y - 10} l10,4 l-10,4 z" fill="{colour}"/>')
    return (f'<line x1="{x:.1f}" y1="{y - 10}" x2="{x:.1f}" y2="{y + 8}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="3 2"/>'
            f'<path d="M{x:.1f},{y - 10} l10,4 l-10,4 z" fill="white" stroke="{colour}" stroke-width="1.5"/>'
            f'<line class="strike" x1="{x - 4:.1f}" y1="{y + 4}" x2="{x + 12:.1f}" y2="{y - 12}" stroke="#212121" '
            f'stroke-width="1.5"/>')


def _linked_to_case(flag: str, alert: dict[str, Any]) -> str:
    if alert.get("case_id"):
        return f'<a href="/cases/{quote(str(alert["case_id"]), safe="")}">{flag}</a>'
    return flag


def _minute(moment: Any) -> str:
    """An ISO time to the minute, as the withdrawn lists show it ("2026-11-30 12:40")."""
    return str(moment)[:16].replace("T", " ")


def _star(x: float, y: float) -> str:
    points = []
    for i in range(10):
        radius = 7 if i % 2 == 0 else 3
        angle = math.pi / 2 + i * math.pi / 5
        points.append(f"{x + radius * math.cos(angle):.1f},{y - radius * math.sin(angle):.1f}")
    return " ".join(points)


def _outcomes(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int) -> int:
    parts.append(_lane_label(y + 4, "Outcome claims", "outcome"))
    y += 8
    for event in events:
        payload = event["payload"]
        measure = payload.get("documented_measure")
        documented = bool(measure)
        x = scale.x(event["occurred_at"])
        text = (f"{payload.get('claimed_by')} claims {payload.get('what')} {payload.get('direction')}"
                f"{' with ' + str(payload['attributed_to']) if payload.get('attributed_to') else ''}: ")
        if measure:
            text += (f"documented by {measure.get('name')} {_fmt(measure.get('before'))} -> "
                     f"{_fmt(measure.get('after'))}")
        else:
            text += "NO documented measure"
        colour = "#2e7d32" if payload.get("direction") == "improved" else "#6d4c41"
        style = f'fill="{colour}"' if documented else f'fill="white" stroke="{colour}" stroke-width="1.5"'
        mark = "" if documented else f'<text x="{x + 8:.1f}" y="{y + 4}" font-size="10" fill="{colour}">?</text>'
        parts.append(f'<g class="outcome {"documented" if documented else "undocumented"}">{_title(text)}'
                     f'<polygon points="{_star(x, y)}" {style}/>{mark}</g>')
    return y + ROW + 6


def _activity_charts(parts: list[str], events: list[dict[str, Any]], scale: _Scale, top: int) -> int:
    """One chart per instrument: clinician-documented solid with filled circles, parent/patient-reported dashed
    with hollow triangles."""
    by_instrument: dict[str, dict[bool, list[tuple[datetime, float, bool]]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        payload = event["payload"]
        score = payload.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            by_instrument[str(payload.get("instrument"))][reported_by_parent(event)].append(
                (event["occurred_at"], float(score), bool(payload.get("documented"))))
    for n, (instrument, series) in enumerate(sorted(by_instrument.items())):
        colour = PALETTE[n % len(PALETTE)]
        values = [score for points in series.values() for _, score, _ in points]
        high = max(values) or 1.0
        bottom = top + CHART_HEIGHT

        def y_of(score: float, bottom: int = bottom, high: float = high) -> float:
            return bottom - (CHART_HEIGHT - 14) * score / high

        parts.append(f'<g class="activity-chart" data-instrument="{escape(instrument)}">'
                     f'<text x="8" y="{top + 12}" font-weight="bold">{escape(instrument)}</text>'
                     f'<text x="8" y="{top + 25}" font-size="9">disease activity</text>'
                     f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{CHART_HEIGHT}" '
                     f'fill="#fafafa" stroke="#dddddd"/>'
                     f'<text x="{LEFT - 6}" y="{y_of(high) + 4:.1f}" text-anchor="end">{high:g}</text>'
                     f'<text x="{LEFT - 6}" y="{y_of(0) + 4:.1f}" text-anchor="end">0</text>')
        legend_y = top + 42
        for parent, points in sorted(series.items()):
            source = "parent-reported" if parent else "clinician-documented"
            path = " ".join(f"{'M' if i == 0 else 'L'}{scale.x(t):.1f},{y_of(s):.1f}"
                            for i, (t, s, _) in enumerate(points))
            dash = ' stroke-dasharray="6 4"' if parent else ""
            parts.append(f'<path class="activity {source}" d="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash}/>')
            for moment, score, documented in points:
                x, y = scale.x(moment), y_of(score)
                tip = _title(f"{instrument} {score:g}, {source}{'' if documented else ' (not documented)'}, "
                             f"{moment.date().isoformat()}")
                if parent:
                    parts.append(f'<path class="point {source}" d="M{x:.1f},{y - 6:.1f} l6,10 l-12,0 z" '
                                 f'fill="white" stroke="{colour}" stroke-width="2">{tip}</path>')
                else:
                    parts.append(f'<circle class="point {source}" cx="{x:.1f}" cy="{y:.1f}" r="4" '
                                 f'fill="{colour}">{tip}</circle>')
            marker = (f'<path d="M14,{legend_y - 8} l6,10 l-12,0 z" fill="white" stroke="{colour}" '
                      f'stroke-width="2"/><line x1="24" y1="{legend_y - 3}" x2="40" y2="{legend_y - 3}" '
                      f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>'
                      if parent else f'<circle cx="14" cy="{legend_y - 3}" r="4" fill="{colour}"/>'
                      f'<line x1="24" y1="{legend_y - 3}" x2="40" y2="{legend_y - 3}" stroke="{colour}" '
                      f'stroke-width="2"/>')
            parts.append(f'<g class="legend {source}">{marker}<text x="44" y="{legend_y}" font-size="9">'
                         f'{"parent-reported" if parent else "clinician"}</text></g>')
            legend_y += 14
        parts.append("</g>")
        top = bottom + 12
    return top + 8


def _axis(scale: _Scale, y: int) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#424242"/>']
    ticks = 8
    for i in range(ticks + 1):
        moment = scale.start + (scale.end - scale.start) * i / ticks
        x = scale.x(moment)
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#424242"/>'
                     f'<text x="{x:.1f}" y="{y + 18}" text-anchor="middle">{moment.date().isoformat()}</text>')
    return parts
