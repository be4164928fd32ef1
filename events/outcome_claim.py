"""An outcome or benefit claim: what changed, according to whom, and whether a measure documents it.

"She is so much better since the cells" is a claim; a fall in SLEDAI-2K from 12 to 4 is a documented measure.
pvwatch keeps both and never confuses them: `documented_measure` is None when nothing measured supports the
claim, which is exactly the gap between reported and documented benefit the monitor exists to expose.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.envelope import ShortText
from pvwatch.events.vocabulary import Assessor, Finite


class Direction(StrEnum):
    IMPROVED = "improved"
    WORSENED = "worsened"
    UNCHANGED = "unchanged"


class DocumentedMeasure(BaseModel):
    """The measurement that supports a claim (a score, a lab value), ideally pointing at its own event."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: ShortText = Field(description="e.g. 'SLEDAI-2K', 'active joint count', 'urine protein/creatinine'.")
    before: Finite | None = None
    after: Finite | None = None
    evidence_event_id: UUID | None = Field(default=None, description="The disease-activity or lab-result event.")


class OutcomeClaimReported(ClinicalEvent):
    """A statement that something improved (or worsened) after a treatment, typically after MSC infusions."""

    topic: ClassVar[str] = "pv.clinical.outcome-claim.v1"

    type: Literal["outcome-claim"] = "outcome-claim"
    what: ShortText = Field(description="What changed, in the claimant's words, e.g. 'joint pain', 'energy'.")
    direction: Direction = Field(default=Direction.IMPROVED, description="improved, worsened or unchanged.")
    claimed_by: Assessor = Field(description="clinician, parent or patient.")
    attributed_to: ShortText | None = Field(default=None, description="What the claimant credits, e.g. 'MSC'.")
    documented_measure: DocumentedMeasure | None = Field(
        default=None, description="None when no measure supports the claim.")

    @property
    def is_documented(self) -> bool:
        return self.documented_measure is not None
