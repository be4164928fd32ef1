"""Flare after taper (rule `flare-after-taper`): disease activity worsening within a window after a DMARD or
biologic is tapered or stopped.

Sources:
- SLE: SLEDAI-2K (Gladman DD et al. J Rheumatol 2002;29:288-291). SELENA flare index (Petri M et al. N Engl J
  Med 2005;353:2550-2558; Buyon JP et al. Ann Intern Med 2005;142:953-962): mild/moderate flare = SLEDAI rise
  >= 3 with the score staying <= 12; severe flare = SLEDAI > 12. The rise is a parameter (default 3).
- JIA: ACR 2021 JADAS10 / cJADAS10 disease-activity cut-offs (Trincianti C et al. Arthritis Care Res
  2021;73:1966-1975): inactive (ID), minimal (MiDA), moderate (MoDA), high (HDA), different for oligoarticular
  and polyarticular JIA. A flare is a move from ID/MiDA before the taper to MoDA/HDA after it.
- MCTD has no validated flare index. Proxy used here (documented in docs/rules.md): the SLE rule on SLEDAI-2K,
  which is how lupus-like MCTD activity is usually scored; alerts say the index is a proxy.

Clinician-documented and parent-reported scores are never mixed: the baseline and the later score must come
from the same kind of assessor, and each alert is labelled with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID


class Disease(StrEnum):
    SLE = "SLE"
    MCTD = "MCTD"
    JIA = "JIA"


class JiaCategory(StrEnum):
    OLIGOARTICULAR = "oligoarticular"
    POLYARTICULAR = "polyarticular"


class ActivityLevel(StrEnum):
    INACTIVE = "inactive"
    MINIMAL = "minimal"
    MODERATE = "moderate"
    HIGH = "high"


#: ACR 2021 upper bounds of ID, MiDA and MoDA (Trincianti 2021, table 3); above the last is HDA.
JADAS_CUTOFFS: dict[tuple[str, JiaCategory], tuple[float, float, float]] = {
    ("JADAS10", JiaCategory.OLIGOARTICULAR): (1.4, 4.0, 13.0),
    ("JADAS10", JiaCategory.POLYARTICULAR): (2.7, 6.0, 17.0),
    ("cJADAS10", JiaCategory.OLIGOARTICULAR): (1.1, 4.0, 12.0),
    ("cJADAS10", JiaCategory.POLYARTICULAR): (2.5, 5.0, 16.0),
}


@dataclass(frozen=True)
class FlareParameters:
    window_days: int = 90  # pvwatch convention: worsening within this many days after the taper
    sledai_rise: float = 3.0  # SELENA flare index: SLEDAI-2K rise >= 3
    sledai_severe_above: float = 12.0  # SELENA flare index: severe when SLEDAI-2K > 12


@dataclass(frozen=True)
class Taper:
    event_id: UUID
    drug: str
    at: datetime
    stopped: bool  # False: dose reduced


@dataclass(frozen=True)
class ActivityScore:
    event_id: UUID
    instrument: str  # "SLEDAI-2K", "JADAS10", "cJADAS10", ...
    score: float
    at: datetime
    assessed_by: str  # "clinician" or "parent"


@dataclass(frozen=True)
class Flare:
    taper: Taper
    baseline: ActivityScore
    after: ActivityScore
    severity: str  # "mild/moderate", "severe" (SELENA) or "moderate", "high" (JADAS level reached)
    from_level: str
    to_level: str
    proxy: bool  # True for MCTD: no validated index


def jadas_level(instrument: str, score: float, category: JiaCategory) -> ActivityLevel:
    inactive, minimal, moderate = JADAS_CUTOFFS[(instrument, category)]
    if score <= inactive:
        return ActivityLevel.INACTIVE
    if score <= minimal:
        return ActivityLevel.MINIMAL
    if score <= moderate:
        return ActivityLevel.MODERATE
    return ActivityLevel.HIGH


def sledai_level(score: float) -> str:
    """SLEDAI-2K activity bands: 0 none, 1-4 low, 5-10 moderate, >10 high (Gladman 2002 usage)."""
    if score <= 0:
        return "none"
    if score <= 4:
        return "low"
    if score <= 10:
        return "moderate"
    return "high"


def _instruments(disease: Disease) -> tuple[str, ...]:
    return ("JADAS10", "cJADAS10") if disease is Disease.JIA else ("SLEDAI-2K",)


def _baseline(scores: list[ActivityScore], like: ActivityScore, taper: Taper) -> ActivityScore | None:
    """The latest score of the same instrument and assessor at or before the taper."""
    before = [s for s in scores if s.instrument == like.instrument and s.assessed_by == like.assessed_by
              and s.at <= taper.at]
    return max(before, key=lambda s: (s.at, str(s.event_id)), default=None)


def flares(
    tapers: Iterable[Taper],
    scores: Iterable[ActivityScore],
    disease: Disease,
    jia_category: JiaCategory,
    p: FlareParameters,
) -> list[Flare]:
    """Every (taper, later score) pair that is a flare by the disease's index; the caller keys alerts on the pair,
    so the result depends on the set of events, not the order they arrived in."""
    window = timedelta(days=p.window_days)
    relevant = [s for s in scores if s.instrument in _instruments(disease)]
    found: list[Flare] = []
    for taper in tapers:
        for after in relevant:
            if not taper.at < after.at <= taper.at + window:
                continue
            baseline = _baseline(relevant, after, taper)
            if baseline is None:
                continue
            flare = _judge(taper, baseline, after, disease, jia_category, p)
            if flare is not None:
                found.append(flare)
    return found


def _judge(
    taper: Taper, baseline: ActivityScore, after: ActivityScore, disease: Disease, category: JiaCategory,
    p: FlareParameters,
) -> Flare | None:
    if disease is Disease.JIA:
        before_level = jadas_level(baseline.instrument, baseline.score, category)
        after_level = jadas_level(after.instrument, after.score, category)
        calm = (ActivityLevel.INACTIVE, ActivityLevel.MINIMAL)
        active = (ActivityLevel.MODERATE, ActivityLevel.HIGH)
        if before_level in calm and after_level in active:
            return Flare(taper, baseline, after, after_level.value, before_level.value, after_level.value, False)
        return None
    if after.score - baseline.score < p.sledai_rise:
        return None
    severity = "severe" if after.score > p.sledai_severe_above else "mild/moderate"
    return Flare(taper, baseline, after, severity, sledai_level(baseline.score), sledai_level(after.score),
                 proxy=disease is Disease.MCTD)
