"""Data-quality signals behind the call for standardised infusion protocols and monitored follow-up
(rule `undocumented-benefit`).

Two findings, each an `info`/`warning` alert an officer can follow up with the clinic or the family:
- a benefit claim ("she is much better since the stem cells") with no documented measure behind it (no
  disease-activity score, lab or examination it refers to): benefit that is reported but not documented is the
  gap pvwatch exists to expose;
- an MSC infusion recorded without its lot or its cell dose, which makes lot tracing (rule `lot-cluster`) and
  dose-response assessment impossible (ISCT minimal criteria for MSC, Dominici M et al. Cytotherapy
  2006;8:315-317, presuppose a characterised, traceable product). What is missing is decided once, by the event
  model (`MscInfusionGiven.missing_documentation`, the same rule as the `infusions` view's column).
"""

from __future__ import annotations


def benefit_is_undocumented(documented_measure: str | None, measure_event_id: object | None) -> bool:
    """A claim is documented when it names a measure (an instrument or a result) or points at the event holding
    it; a parent's "better" with neither is undocumented."""
    return not (documented_measure and documented_measure.strip()) and measure_event_id is None
