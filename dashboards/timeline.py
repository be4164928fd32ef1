"""The patient timeline drawn server-side as SVG: treatments with tapers, MSC infusions, labs with CTCAE grades,
disease-activity scores as a chart, adverse events and alerts on one time axis.

Clinician-documented and parent-reported values are drawn differently (solid line and filled circles versus
dashed line and hollow triangles, and named in the legend): benefit reported by parents but not documented by a
clinician is the gap pvwatch exists to expose, so the two must never look alike.

Event payloads are read by field name with fallbacks, so event types added later draw as generic markers until
they get their own lane.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

WIDTH = 1100
LEFT = 150
RIGHT = 30
LANE_HEIGHT = 34
CHART_HEIGHT = 150
PARENT_WORDS = ("parent", "patient", "caregiver", "family")
#: CTCAE v5.0 grades 1-5 (mild, moderate, severe, life-threatening, death), light to dark.
GRADE_COLOURS = {1: "#9ccc65", 2: "#fbc02d", 3: "#fb8c00", 4: "#e53935", 5: "#000000"}


def first(payload: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = payload.get(name)
        if value not in (None, "", []):
            return value
    return None


def reported_by_parent(event: dict[str, Any]) -> bool:
    """True when the value comes from a parent (or the patient), not from a clinician's documentation."""
    payload = event["payload"]
    who = first(payload, "assessor", "assessed_by", "assessor_type", "reporter_type", "reported_by", "reporter")
    text = str(who if who is not None else event.get("source", "")).lower()
    return any(word in text for word in PARENT_WORDS)


def lane_of(event_type: str) -> str:
    for lane in ("treatment", "infusion", "lab", "disease-activity", "adverse-event", "outcome"):
        if lane in event_type:
            return lane
    return "other"


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


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def render_timeline(events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> str:
    """SVG of one patient's story; `events` as from ReadModel.patient_events, `alerts` as from ReadModel.alerts."""
    moments = [e["occurred_at"] for e in events] + [t for a in alerts if (t := _time(a["occurred_at"]))]
    if not moments:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40" role="img">' \
               '<text x="10" y="25">No events stored for this patient yet.</text></svg>'
    start, end = min(moments), max(moments)
    pad = max(timedelta(days=3), (end - start) * 0.04)
    scale = _Scale(start - pad, end + pad)

    parts: list[str] = []
    y = 30
    lanes = [("treatment", "Treatments"), ("infusion", "MSC infusions"), ("lab", "Labs (CTCAE grade)"),
             ("adverse-event", "Adverse events"), ("alert", "Alerts"), ("outcome", "Outcomes"), ("other", "Other")]
    by_lane: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_lane[lane_of(event["type"])].append(event)

    for lane, label in lanes:
        if lane == "alert":
            if not alerts:
                continue
            parts.append(_lane_label(y, label))
            for alert in alerts:
                when = _time(alert["occurred_at"])
                if when is None:
                    continue
                x = scale.x(when)
                colour = "#c62828" if alert["severity"] == "critical" else "#ef6c00"
                parts.append(
                    f'<g class="alert-flag">{_title(alert["summary"] + " (" + alert["status"] + ")")}'
                    f'<line x1="{x:.1f}" y1="{y - 12}" x2="{x:.1f}" y2="{y + 10}" stroke="{colour}" stroke-width="2"/>'
                    f'<path d="M{x:.1f},{y - 12} l12,4 l-12,4 z" fill="{colour}"/></g>')
            y += LANE_HEIGHT
            continue
        lane_events = by_lane.get(lane, [])
        if not lane_events:
            continue
        parts.append(_lane_label(y, label))
        if lane == "treatment":
            y = _treatments(parts, lane_events, scale, y)
            continue
        for event in lane_events:
            parts.append(_marker(lane, event, scale.x(event["occurred_at"]), y))
        y += LANE_HEIGHT

    activity = by_lane.get("disease-activity", [])
    if activity:
        y = _activity_chart(parts, activity, scale, y + 10)

    parts.extend(_axis(scale, y))
    height = y + 40
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" aria-label="Patient timeline" '
            f'font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def _lane_label(y: int, label: str) -> str:
    return (f'<text x="8" y="{y + 4}" font-weight="bold">{escape(label)}</text>'
            f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#eeeeee"/>')


def _treatments(parts: list[str], events: list[dict[str, Any]], scale: _Scale, y: int) -> int:
    """One bar per drug from its first to its stop event; dose changes and tapers marked on the bar."""
    by_drug: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        drug = first(event["payload"], "drug_name", "drug", "name", "product") or "treatment"
        by_drug[str(drug)].append(event)
    for drug, drug_events in by_drug.items():
        begin = drug_events[0]["occurred_at"]
        stopped = next((e for e in drug_events if "stop" in e["type"] or first(e["payload"], "action") == "stopped"),
                       None)
        finish = stopped["occurred_at"] if stopped else scale.end
        x1, x2 = scale.x(begin), scale.x(finish)
        parts.append(f'<rect class="treatment" x="{x1:.1f}" y="{y - 6}" width="{max(2.0, x2 - x1):.1f}" height="12" '
                     f'fill="#90caf9" rx="3">{_title(drug)}</rect>'
                     f'<text x="{x1 + 3:.1f}" y="{y + 3}" font-size="10">{escape(drug)}</text>')
        for event in drug_events:
            payload = event["payload"]
            dose = first(payload, "dose")
            unit = first(payload, "unit", "dose_unit") or ""
            taper = "taper" in event["type"] or "taper" in str(first(payload, "reason", "action") or "").lower()
            x = scale.x(event["occurred_at"])
            what = f"{event['type']} {dose if dose is not None else ''} {unit}".strip()
            colour = "#6a1b9a" if taper else "#1565c0"
            parts.append(f'<g class="{"taper" if taper else "dose"}">{_title(what)}'
                         f'<line x1="{x:.1f}" y1="{y - 9}" x2="{x:.1f}" y2="{y + 9}" stroke="{colour}" '
                         f'stroke-width="{3 if taper else 1.5}"/></g>')
        y += LANE_HEIGHT - 8
    return y + 8


def _marker(lane: str, event: dict[str, Any], x: float, y: int) -> str:
    payload = event["payload"]
    if lane == "infusion":
        lot = first(payload, "lot", "lot_id", "batch", "batch_id") or "lot missing"
        clinic = first(payload, "administering_site", "clinic", "site", "product_source") or event["source"]
        dose = first(payload, "cells_per_kg", "cell_dose_per_kg", "dose")
        text = f"MSC infusion, lot {lot}, {clinic}, dose {dose if dose is not None else 'missing'}"
        return (f'<g class="infusion">{_title(text)}<path d="M{x:.1f},{y - 8} l8,8 l-8,8 l-8,-8 z" fill="#00897b"/>'
                f'<text x="{x + 10:.1f}" y="{y + 4}" font-size="10">{escape(str(lot))}</text></g>')
    if lane == "lab":
        grade = first(payload, "ctcae_grade", "grade")
        colour = GRADE_COLOURS.get(int(grade), "#9e9e9e") if isinstance(grade, int) else "#9e9e9e"
        test = first(payload, "test", "loinc_name", "name", "loinc", "loinc_code") or "lab"
        value = first(payload, "value")
        unit = first(payload, "unit") or ""
        text = f"{test}: {value} {unit}, CTCAE grade {grade if grade is not None else 'not graded'}"
        label = f'<text x="{x + 7:.1f}" y="{y + 4}" font-size="10">G{grade}</text>' if grade else ""
        return f'<g class="lab">{_title(text)}<circle cx="{x:.1f}" cy="{y}" r="5" fill="{colour}"/>{label}</g>'
    if lane == "adverse-event":
        seriousness = payload.get("seriousness") or {}
        serious = isinstance(seriousness, dict) and any(seriousness.values())
        term = str(first(payload, "term", "ctcae_term") or "adverse event")
        colour = "#c62828" if serious else "#f9a825"
        kind = "serious " if serious else ""
        reporter = payload.get("reporter_type", "?")
        text = f"{kind}adverse event: {term} ({payload.get('report_kind', '')}, reported by {reporter})"
        fill = f'fill="white" stroke="{colour}" stroke-width="2"' if reported_by_parent(event) else f'fill="{colour}"'
        return (f'<g class="adverse-event{" serious" if serious else ""}">{_title(text)}'
                f'<path d="M{x:.1f},{y - 8} l7,14 l-14,0 z" {fill}/>'
                f'<text x="{x + 9:.1f}" y="{y + 4}" font-size="10">{escape(term)}</text></g>')
    return f'<g class="{escape(lane)}">{_title(event["type"])}<rect x="{x - 4:.1f}" y="{y - 4}" width="8" height="8" ' \
           f'fill="#757575"/></g>'


def _activity_chart(parts: list[str], events: list[dict[str, Any]], scale: _Scale, top: int) -> int:
    """Scores per instrument and per source: clinician solid, parent dashed with hollow triangles."""
    series: dict[tuple[str, bool], list[tuple[datetime, float]]] = defaultdict(list)
    for event in events:
        score = _number(first(event["payload"], "score", "value"))
        if score is None:
            continue
        instrument = str(first(event["payload"], "instrument", "scale") or "score")
        series[(instrument, reported_by_parent(event))].append((event["occurred_at"], score))
    if not series:
        return top
    values = [score for points in series.values() for _, score in points]
    low, high = min(0.0, min(values)), max(values) or 1.0
    bottom = top + CHART_HEIGHT

    def y_of(score: float) -> float:
        return bottom - (CHART_HEIGHT - 10) * (score - low) / ((high - low) or 1.0)

    parts.append(f'<text x="8" y="{top + 12}" font-weight="bold">Disease activity</text>'
                 f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{CHART_HEIGHT}" fill="#fafafa" '
                 f'stroke="#dddddd"/>'
                 f'<text x="{LEFT - 6}" y="{y_of(high) + 4:.1f}" text-anchor="end">{high:g}</text>'
                 f'<text x="{LEFT - 6}" y="{y_of(low) + 4:.1f}" text-anchor="end">{low:g}</text>')
    palette = ["#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457"]
    instruments = sorted({instrument for instrument, _ in series})
    legend_y = top + 30
    for (instrument, parent), points in sorted(series.items()):
        colour = palette[instruments.index(instrument) % len(palette)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{scale.x(t):.1f},{y_of(s):.1f}" for i, (t, s) in enumerate(points))
        source = "parent-reported" if parent else "clinician-documented"
        dash = ' stroke-dasharray="6 4"' if parent else ""
        parts.append(f'<path class="activity {source}" d="{path}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"{dash}/>')
        for moment, score in points:
            x, y = scale.x(moment), y_of(score)
            tip = _title(f"{instrument} {score:g} ({source}, {moment.date().isoformat()})")
            if parent:
                parts.append(f'<path class="point {source}" d="M{x:.1f},{y - 6:.1f} l6,10 l-12,0 z" fill="white" '
                             f'stroke="{colour}" stroke-width="2">{tip}</path>')
            else:
                parts.append(f'<circle class="point {source}" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                             f'{tip}</circle>')
        marker = (f'<path d="M{8},{legend_y - 8} l6,10 l-12,0 z" fill="white" stroke="{colour}" stroke-width="2"/>'
                  if parent else f'<circle cx="8" cy="{legend_y - 4}" r="4" fill="{colour}"/>')
        parts.append(f'{marker}<text x="18" y="{legend_y}" font-size="10">{escape(instrument)}, '
                     f'{"parent" if parent else "clinician"}</text>')
        legend_y += 14
    return bottom + 20


def _axis(scale: _Scale, y: int) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#424242"/>']
    ticks = 8
    for i in range(ticks + 1):
        moment = scale.start + (scale.end - scale.start) * i / ticks
        x = scale.x(moment)
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#424242"/>'
                     f'<text x="{x:.1f}" y="{y + 18}" text-anchor="middle">{moment.date().isoformat()}</text>')
    return parts
