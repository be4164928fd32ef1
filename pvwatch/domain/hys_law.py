"""Hy's law: a potential drug-induced liver injury case (rule `hys-law`).

Source: US FDA, Guidance for Industry "Drug-Induced Liver Injury: Premarketing Clinical Evaluation", July 2009,
section III.A: aminotransferase (ALT or AST) elevation "3-fold or greater" above the ULN together with total
bilirubin elevation "to >2xULN", without initial findings of cholestasis (elevated serum alkaline phosphatase)
and without another cause. The guidance fixes no ALP cut-off and no time window: ALP below 2 x ULN and a pairing
window of 30 days are analysis-plan conventions, so both are parameters (`HysLawParameters`).

Pure: callers pass the patient's liver results; the rule finds every qualifying transaminase/bilirubin pair.
Each pair is one alert (its id comes from the two result ids).

"Without initial findings of cholestasis" read so that the alerts are a function of the set of results, not of
the order they arrive in: a pair is a case when no ALP >= `alp_uln_multiple` x ULN was taken within
`pairing_window_days` of both of its results (before, between or after them). An ALP that arrives after the pair
was raised therefore withdraws it (`excluded_by`), and a replay of the complete log never raises it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from pvwatch.domain.ctcae import Analyte, Ceiling, QuietBand


@dataclass(frozen=True)
class HysLawParameters:
    transaminase_uln_multiple: float = 3.0  # ALT or AST >= 3 x ULN ("3-fold or greater", FDA 2009)
    bilirubin_uln_multiple: float = 2.0  # total bilirubin > 2 x ULN (FDA 2009)
    alp_uln_multiple: float = 2.0  # no cholestasis: ALP < 2 x ULN (analysis-plan convention)
    pairing_window_days: int = 30  # results paired when taken within this many days (convention)


@dataclass(frozen=True)
class LiverResult:
    """One liver test, reduced to what Hy's law reads: which analyte, its multiple of ULN, when taken."""

    event_id: UUID
    analyte: Analyte
    taken_at: datetime
    value: float
    uln: float

    @property
    def times_uln(self) -> float:
        return self.value / self.uln


@dataclass(frozen=True)
class HysLawCase:
    transaminase: LiverResult
    bilirubin: LiverResult
    alp: LiverResult | None  # the highest ALP within the window, None when none was measured

    @property
    def evidence(self) -> tuple[UUID, ...]:
        found = (self.transaminase.event_id, self.bilirubin.event_id)
        return found if self.alp is None else (*found, self.alp.event_id)


def _elevated_transaminase(result: LiverResult, p: HysLawParameters) -> bool:
    return result.analyte in (Analyte.ALT, Analyte.AST) and result.times_uln >= p.transaminase_uln_multiple


def _elevated_bilirubin(result: LiverResult, p: HysLawParameters) -> bool:
    return result.analyte is Analyte.BILIRUBIN and result.times_uln > p.bilirubin_uln_multiple


def cases_with(new: LiverResult, results: Iterable[LiverResult], p: HysLawParameters) -> list[HysLawCase]:
    """Hy's law pairs that include `new`, among the patient's `results` (which may include `new` itself).

    A pair is excluded when an ALP within the window of both results is at or above `alp_uln_multiple` x ULN
    (cholestatic pattern). A pair without any ALP is kept and says so: missing data must not hide a case.
    """
    window = timedelta(days=p.pairing_window_days)
    history = [r for r in results if abs(r.taken_at - new.taken_at) <= window]
    if _elevated_transaminase(new, p):
        pairs = [(new, r) for r in history if _elevated_bilirubin(r, p)]
    elif _elevated_bilirubin(new, p):
        pairs = [(r, new) for r in history if _elevated_transaminase(r, p)]
    else:
        return []  # an ALP (or a normal value) only ever removes a pair; it never makes one
    found = []
    for transaminase, bilirubin in pairs:
        if abs(transaminase.taken_at - bilirubin.taken_at) > window:
            continue
        alps = [r for r in history if r.analyte is Analyte.ALP
                and abs(r.taken_at - transaminase.taken_at) <= window
                and abs(r.taken_at - bilirubin.taken_at) <= window]
        highest = max(alps, key=lambda r: (r.times_uln, str(r.event_id)), default=None)
        if highest is not None and highest.times_uln >= p.alp_uln_multiple:
            continue
        found.append(HysLawCase(transaminase, bilirubin, highest))
    return found


def excluded_by(alp: LiverResult, results: Iterable[LiverResult],
                p: HysLawParameters) -> list[tuple[LiverResult, LiverResult]]:
    """The (transaminase, bilirubin) pairs among `results` that `alp` excludes: both within the window of the ALP
    and of each other, as `cases_with` reads them. None unless `alp` is an ALP at or above `alp_uln_multiple`."""
    if alp.analyte is not Analyte.ALP or alp.times_uln < p.alp_uln_multiple:
        return []
    window = timedelta(days=p.pairing_window_days)
    near = [r for r in results if abs(r.taken_at - alp.taken_at) <= window]
    return [(t, b) for t in near if _elevated_transaminase(t, p) for b in near if _elevated_bilirubin(b, p)
            and abs(t.taken_at - b.taken_at) <= window]


def quiet_band(analyte: Analyte, p: HysLawParameters) -> QuietBand:
    """The results of `analyte` that can be neither half of a pair nor the ALP that excludes one (the replay
    screen): a transaminase below its multiple, a bilirubin at most its multiple, an ALP below its multiple, each
    compared as `_elevated_transaminase`, `_elevated_bilirubin` and `cases_with` compare them. Other analytes:
    every result (the rule never reads them)."""
    if analyte in (Analyte.ALT, Analyte.AST):
        return QuietBand(uln=Ceiling(p.transaminase_uln_multiple, inclusive=False))
    if analyte is Analyte.BILIRUBIN:
        return QuietBand(uln=Ceiling(p.bilirubin_uln_multiple, inclusive=True))
    if analyte is Analyte.ALP:
        return QuietBand(uln=Ceiling(p.alp_uln_multiple, inclusive=False))
    return QuietBand()
