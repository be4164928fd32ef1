"""Flare after taper (rule `flare-after-taper`): disease activity worsening within a window after a DMARD or
biologic is tapered or stopped.

Sources:
- SLE: SLEDAI-2K (Gladman DD et al. J Rheumatol 2002;29:288-291). SELENA flare index (Petri M et al. N Engl J
  Med 2005;353:2550-2558; Buyon JP et al. Ann Intern Med 2005;142:953-962): mild/moderate flare = SLEDAI rise
  >= 3 with the score staying <= 12; severe flare = SLEDAI > 12. The rise is a parameter (default 3).
- JIA: ACR 2021 JADAS10 / cJADAS10 disease-activity cut-offs (Trincianti C et al. Arthritis Rheumatol
  2021;73:1966-1975, doi:10.1002/art.41879): inactive (ID), minimal (MiDA), moderate (MoDA), high (HDA),
  different for oligoarticular and polyarticular JIA. A flare is a move from ID/MiDA before the taper to MoDA/HDA
  after it.
- MCTD has no validated flare index. Proxy used here (documented in docs/rules.md): the SLE rule on SLEDAI-2K,
  which is how lupus-like MCTD activity is usually scored; alerts say the index is a proxy.

Clinician-documented and parent-reported scores are never mixed: the baseline and the later score must come
from the same kind of assessor, and each alert is labelled with it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

_Item = TypeVar("_Item")


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


#: The instruments each flare index reads (SLE and MCTD: SLEDAI-2K; JIA: JADAS10 and cJADAS10).
JIA_INSTRUMENTS = ("JADAS10", "cJADAS10")
SLEDAI_INSTRUMENTS = ("SLEDAI-2K",)
INSTRUMENTS = frozenset(JIA_INSTRUMENTS + SLEDAI_INSTRUMENTS)


def instruments(disease: Disease) -> tuple[str, ...]:
    return JIA_INSTRUMENTS if disease is Disease.JIA else SLEDAI_INSTRUMENTS


#: Above any UUID's integer: (at, _AFTER_ALL) sorts after every event at the instant `at`.
_AFTER_ALL = 1 << 128
#: A taper, its baseline (the latest score of the same instrument and assessor at or before it) and a score of the
#: same kind within the window after it: the pairing every flare index judges.
Triple = tuple[Taper, ActivityScore, ActivityScore]


class FlareIndex:
    """One patient's tapers and scores in occurred_at order (ties by event id), each kind of score (instrument,
    assessor: clinician and parent scores are never compared) apart. The triples an arriving taper or score takes
    part in are found by bisection, so the cost of an event does not grow with the patient's history (the engine
    keeps one per patient; `flares` builds one for a set of events). Adding the same event again changes nothing."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._taper_keys: list[tuple[datetime, int]] = []
        self._tapers: list[Taper] = []
        self._score_keys: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
        self._scores: dict[tuple[str, str], list[ActivityScore]] = {}

    @property
    def tapers(self) -> list[Taper]:
        """The tapers and stops in occurred_at order (a view: do not modify)."""
        return self._tapers

    def add_taper(self, taper: Taper) -> None:
        _insert(self._taper_keys, self._tapers, (taper.at, taper.event_id.int), taper)

    def add_score(self, score: ActivityScore) -> None:
        kind = (score.instrument, score.assessed_by)
        if kind not in self._score_keys:
            self._score_keys[kind], self._scores[kind] = [], []
        _insert(self._score_keys[kind], self._scores[kind], (score.at, score.event_id.int), score)

    def after_taper(self, taper: Taper) -> list[Triple]:
        """Every score in the window after `taper` that has a baseline, with it, in occurred_at order."""
        found: list[Triple] = []
        for kind in self._score_keys:
            baseline = self._baseline(kind, taper.at)
            if baseline is not None:
                found.extend((taper, baseline, after) for after in self._after(kind, taper))
        if len(self._score_keys) > 1:
            found.sort(key=lambda triple: (triple[2].at, triple[2].event_id.int))
        return found

    def around_score(self, score: ActivityScore) -> list[Triple]:
        """The triples with `score` (added before) as the later score (tapers in the window before it) or as the
        baseline (tapers at or after it and before the next score of its kind), in the tapers' order."""
        taper_keys = self._taper_keys
        if not taper_keys:
            return []  # most patients: no taper, nothing to pair
        kind = (score.instrument, score.assessed_by)
        found: list[Triple] = []
        earliest = bisect.bisect_left(taper_keys, (score.at - self.window,))
        before = bisect.bisect_left(taper_keys, (score.at,))
        for taper in self._tapers[earliest:before]:  # taper.at < score.at <= taper.at + window
            baseline = self._baseline(kind, taper.at)
            if baseline is not None:
                found.append((taper, baseline, score))
        keys = self._score_keys[kind]
        following = bisect.bisect_right(keys, (score.at, score.event_id.int))
        until = bisect.bisect_left(taper_keys, (keys[following][0],)) if following < len(keys) else len(taper_keys)
        for taper in self._tapers[before:until]:  # score.at <= taper.at < the next score's at: the baseline
            found.extend((taper, score, after) for after in self._after(kind, taper))
        return found

    def _baseline(self, kind: tuple[str, str], at: datetime) -> ActivityScore | None:
        """The latest score of `kind` at or before `at`."""
        position = bisect.bisect_right(self._score_keys[kind], (at, _AFTER_ALL))
        return self._scores[kind][position - 1] if position else None

    def _after(self, kind: tuple[str, str], taper: Taper) -> list[ActivityScore]:
        """The scores of `kind` with taper.at < at <= taper.at + window."""
        keys = self._score_keys[kind]
        first = bisect.bisect_right(keys, (taper.at, _AFTER_ALL))
        return self._scores[kind][first:bisect.bisect_right(keys, (taper.at + self.window, _AFTER_ALL), first)]


def _insert(keys: list[tuple[datetime, int]], items: list[_Item], key: tuple[datetime, int], item: _Item) -> None:
    if not keys or keys[-1] < key:  # the usual case (every case in a replay): the latest so far
        keys.append(key)
        items.append(item)
        return
    position = bisect.bisect_left(keys, key)
    if position == len(keys) or keys[position] != key:  # else the same event again
        keys.insert(position, key)
        items.insert(position, item)


def flares(
    tapers: Iterable[Taper],
    scores: Iterable[ActivityScore],
    disease: Disease,
    jia_category: JiaCategory,
    p: FlareParameters,
) -> list[Flare]:
    """Every (taper, later score) pair that is a flare by the disease's index; the caller keys alerts on the pair,
    so the result depends on the set of events, not the order they arrived in."""
    index = FlareIndex(timedelta(days=p.window_days))
    for score in scores:
        index.add_score(score)
    tapers = list(tapers)
    for taper in tapers:
        index.add_taper(taper)
    return judged([triple for taper in tapers for triple in index.after_taper(taper)], disease, jia_category, p)


def judged(triples: Iterable[Triple], disease: Disease, jia_category: JiaCategory, p: FlareParameters) -> list[Flare]:
    """The triples of the disease's instruments that are flares by its index."""
    read = instruments(disease)
    return [found for taper, baseline, after in triples if after.instrument in read
            if (found := _judge(taper, baseline, after, disease, jia_category, p)) is not None]


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
