"""Adverse events in a risk window after an MSC infusion (rule `infusion-temporal`), linked to the infusion, its
lot and the clinic that gave it.

Windows follow the MSC adverse events of special interest proposed from the literature:
- fever and infusion reactions within hours: fever is the only consistent MSC association (Lalu MM et al.
  PLoS One 2012;7:e47559; Wang Y et al. Stem Cell Res Ther 2021;12:545, fever OR 3.65);
- thromboembolism within 14 days: tissue factor (CD142) on MSC triggers instant blood-mediated inflammatory
  reactions (Moll G et al. Stem Cells Transl Med 2022; Wu Z et al. Transplant Proc 2017;49:1656);
- infection over a longer window (contamination of clinic products: Pew 2021), and a new mass or malignancy at
  any time (ectopic tissue after cell therapy: Thirabanjasak D et al. J Am Soc Nephrol 2010;21:1218).
The categories, the term fragments that place an event in one, and the windows are parameters (rules.yaml).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID


@dataclass(frozen=True)
class RiskWindow:
    category: str  # e.g. "fever-or-infusion-reaction"
    term_fragments: tuple[str, ...]  # casefolded substrings of the reported term that place it in the category
    hours: float | None  # None: any time after the infusion
    serious_only: bool = False  # e.g. infection counts only when serious

    def matches(self, term: str) -> bool:
        folded = term.casefold()
        return any(fragment in folded for fragment in self.term_fragments)

    def contains(self, after: timedelta) -> bool:
        return after >= timedelta(0) and (self.hours is None or after <= timedelta(hours=self.hours))


@dataclass(frozen=True)
class InfusionTemporalParameters:
    windows: tuple[RiskWindow, ...] = (
        RiskWindow("fever-or-infusion-reaction",
                   ("fever", "pyrexia", "febrile", "infusion", "chills", "rigor", "anaphyla", "hypersensitivity"),
                   24.0),
        RiskWindow("thromboembolism", ("thromb", "embol", "infarct", "ischaemic stroke", "ischemic stroke"),
                   14 * 24.0),
        RiskWindow("infection", ("infection", "sepsis", "septic", "pneumonia", "cellulitis", "abscess",
                                 "bacteraemia", "bacteremia"), 90 * 24.0, serious_only=True),
        RiskWindow("new-mass-or-malignancy", ("neoplasm", "tumour", "tumor", "malignan", "lymphoma", "cancer",
                                              "carcinoma", "sarcoma", "mass"), None),
    )


@dataclass(frozen=True)
class InfusionGiven:
    event_id: UUID
    at: datetime
    lot: str | None
    clinic: str | None
    product: str | None


@dataclass(frozen=True)
class AdverseEventAfter:
    event_id: UUID
    case_id: str
    term: str
    at: datetime
    serious: bool


@dataclass(frozen=True)
class InfusionLink:
    """An adverse event inside a risk window of one infusion."""

    event: AdverseEventAfter
    infusion: InfusionGiven
    window: RiskWindow

    @property
    def hours_after(self) -> float:
        return (self.event.at - self.infusion.at).total_seconds() / 3600


def category_of(term: str, serious: bool, p: InfusionTemporalParameters) -> RiskWindow | None:
    """The first risk window whose terms match (the order in rules.yaml is the precedence)."""
    for window in p.windows:
        if window.matches(term) and (serious or not window.serious_only):
            return window
    return None


def links(
    events: Iterable[AdverseEventAfter], infusions: Iterable[InfusionGiven], p: InfusionTemporalParameters
) -> list[InfusionLink]:
    """Every (adverse event, infusion) pair with the event in its category's window after the infusion."""
    infusion_list = list(infusions)
    found = []
    for event in events:
        window = category_of(event.term, event.serious, p)
        if window is None:
            continue
        for infusion in infusion_list:
            if window.contains(event.at - infusion.at):
                found.append(InfusionLink(event, infusion, window))
    return found
