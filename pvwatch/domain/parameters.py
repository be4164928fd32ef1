"""Every rule's parameters in one typed value, read once from pvwatch/rules.yaml (see pvwatch.rulebook).

The defaults here are the published values each rule module cites, so an engine built without a rules file
behaves exactly as the shipped rules.yaml says. A rule's version is part of every alert id: an officer who
changes a rule's parameters bumps its version, and a replay then derives the new rule's alerts beside the old.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pvwatch.domain.expectedness import ReferenceSafetyInformation
from pvwatch.domain.expedited import ClockParameters
from pvwatch.domain.flare import FlareParameters, JiaCategory
from pvwatch.domain.hys_law import HysLawParameters
from pvwatch.domain.infusion_temporal import InfusionTemporalParameters
from pvwatch.domain.lot_cluster import LotClusterParameters


@dataclass(frozen=True)
class CtcaeLabParameters:
    alert_from_grade: int = 3  # issue 5: grade 3 or more raises an alert and a derived adverse event


@dataclass(frozen=True)
class DuplicateCaseParameters:
    onset_days: int = 3


@dataclass(frozen=True)
class JiaCategoryParameters:
    """Which ACR 2021 cut-off set each ILAR JIA category uses. Trincianti 2021 validated cut-offs for
    oligoarticular and polyarticular JIA only; the others use the stricter (oligoarticular, lower) set by
    default so a flare is not missed."""

    polyarticular: frozenset[str] = frozenset({"JIA-polyarticular-RF-negative", "JIA-polyarticular-RF-positive"})
    default: JiaCategory = JiaCategory.OLIGOARTICULAR

    def category_of(self, condition: str) -> JiaCategory:
        return JiaCategory.POLYARTICULAR if condition in self.polyarticular else self.default


#: Each rule's version when the rules file does not say (the rules file is the officer's source of truth), and
#: the lowest it may say: the version of the logic this code implements.
DEFAULT_VERSIONS: dict[str, int] = {
    "serious-ae": 1, "duplicate-case": 2, "ctcae-lab": 1, "hys-law": 2, "expedited-clock": 2,
    "expedited-due-soon": 2, "expedited-overdue": 2, "infusion-temporal": 1, "lot-cluster": 2,
    "flare-after-taper": 1, "undocumented-benefit": 1,
}


#: Treatment classes whose taper or stop starts a flare window. The issue names DMARDs and biologics; the
#: glucocorticoid taper is included by default because it is the commonest precipitant of a lupus flare and the
#: SELENA flare index itself reads prednisone changes (Petri 2005).
DEFAULT_TAPERED_CLASSES = frozenset({"csDMARD", "bDMARD", "tsDMARD", "glucocorticoid"})


@dataclass(frozen=True)
class RuleParameters:
    versions: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_VERSIONS))
    disabled: frozenset[str] = frozenset()
    ctcae_lab: CtcaeLabParameters = field(default_factory=CtcaeLabParameters)
    hys_law: HysLawParameters = field(default_factory=HysLawParameters)
    clocks: ClockParameters = field(default_factory=ClockParameters)
    flare: FlareParameters = field(default_factory=FlareParameters)
    jia_categories: JiaCategoryParameters = field(default_factory=JiaCategoryParameters)
    tapered_classes: frozenset[str] = DEFAULT_TAPERED_CLASSES
    infusion_temporal: InfusionTemporalParameters = field(default_factory=InfusionTemporalParameters)
    lot_cluster: LotClusterParameters = field(default_factory=LotClusterParameters)
    duplicate_case: DuplicateCaseParameters = field(default_factory=DuplicateCaseParameters)
    rsi: ReferenceSafetyInformation = field(default_factory=ReferenceSafetyInformation)

    def version(self, rule_id: str) -> int:
        return self.versions.get(rule_id, DEFAULT_VERSIONS.get(rule_id, 1))

    def enabled(self, rule_id: str) -> bool:
        return rule_id not in self.disabled
