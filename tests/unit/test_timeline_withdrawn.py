"""The patient timeline's withdrawn flag (dashboards/timeline.py) carries text that came from outside: an adverse
event's term is in its alert's summary, a case id in a clock withdrawal's reason (pvwatch.domain.engine). Drawn into
the SVG's <title>, attributes and link, it is escaped: markup in a report never reaches an officer's browser."""

from __future__ import annotations

import re
from html import unescape

from pvwatch.dashboards.timeline import render_timeline

HOSTILE_CASE = 'C-1"><img src=x onerror=alert(1)>'
HOSTILE_TERM = "</title><script>alert(1)</script>"


def test_a_withdrawn_alert_s_summary_reason_and_case_are_escaped() -> None:
    withdrawn = {"alert_id": "5f4e3011-3f87-5ff7-bca9-aa763c733565", "rule_id": "serious-ae", "severity": "critical",
                 "case_id": HOSTILE_CASE, "occurred_at": "2026-03-05T08:00:00+00:00",
                 "withdrawn_at": "2026-11-30T12:40:00+00:00",
                 "summary": f"Serious adverse event (hospitalisation): {HOSTILE_TERM}",
                 "reason": f"case {HOSTILE_CASE} has no 15-day clock any more"}
    svg = render_timeline([], [], None, [withdrawn])
    assert "<script" not in svg and "<img" not in svg
    (title,) = re.findall(r'<g class="alert-flag withdrawn critical"[^>]*><title>([^<]*)</title>', svg)
    assert unescape(title) == (f"serious-ae: Serious adverse event (hospitalisation): {HOSTILE_TERM} - withdrawn "
                               f"2026-11-30 12:40: case {HOSTILE_CASE} has no 15-day clock any more")
    (href,) = re.findall(r'<a href="(/cases/[^"]*)">', svg)
    assert '"' not in href and "<" not in href
