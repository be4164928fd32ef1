"""Expectedness against the reference safety information (RSI) in force at day 0, and the SUSAR test.

Sources:
- ICH E2A (1994) section II.C: an unexpected adverse drug reaction is one "the nature or severity of which is
  not consistent with the applicable product information" (investigator's brochure, or the summary of product
  characteristics / label for an authorised product).
- EU CT-3 (2011/C 172/01) section 7.2.3.2 and ICH E2F: expectedness is judged against the RSI version in force
  when the sponsor became aware of the case (day 0), and that version is recorded.
- SUSAR (suspected unexpected serious adverse reaction) = serious (ICH E2A II.B) + unexpected + a suspect product.

Policy (pvwatch): a clinic-made MSC product has no RSI, so every event after it is unexpected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class RsiVersion:
    """One version of a product's reference safety information: the listed expected terms from a date on."""

    version: str
    effective_from: date
    expected_terms: frozenset[str]  # casefolded MedDRA PT names
    expected_pt_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProductRsi:
    product: str
    versions: tuple[RsiVersion, ...]  # any order; the one in force is chosen by date

    def in_force_on(self, day: date) -> RsiVersion | None:
        current = [v for v in self.versions if v.effective_from <= day]
        return max(current, key=lambda v: v.effective_from, default=None)


@dataclass(frozen=True)
class ExpectednessAssessment:
    product: str
    expected: bool
    rsi_version: str | None  # None: the product has no RSI (or none in force at day 0)
    reason: str


@dataclass(frozen=True)
class ReferenceSafetyInformation:
    """Every product's RSI, looked up by casefolded product name (brand or INN as listed in the file)."""

    products: dict[str, ProductRsi] = field(default_factory=dict)

    @staticmethod
    def of(products: Iterable[ProductRsi]) -> ReferenceSafetyInformation:
        return ReferenceSafetyInformation({p.product.casefold(): p for p in products})

    def assess(self, product: str, term: str, pt_code: str | None, day0: date) -> ExpectednessAssessment:
        rsi = self.products.get(product.casefold())
        if rsi is None:
            return ExpectednessAssessment(product, False, None, "no reference safety information for this product")
        version = rsi.in_force_on(day0)
        if version is None:
            return ExpectednessAssessment(product, False, None, f"no RSI version in force on {day0.isoformat()}")
        listed = (pt_code is not None and pt_code in version.expected_pt_codes) or (
            term.casefold() in version.expected_terms
        )
        reason = "listed in" if listed else "not listed in"
        return ExpectednessAssessment(product, listed, version.version, f"{reason} RSI {version.version}")


def unexpected_suspects(
    rsi: ReferenceSafetyInformation, suspects: Iterable[str], term: str, pt_code: str | None, day0: date
) -> list[ExpectednessAssessment]:
    """Suspect products for which the event is unexpected: a serious event with any of them is a SUSAR."""
    return [a for a in (rsi.assess(s, term, pt_code, day0) for s in suspects) if not a.expected]
