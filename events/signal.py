"""A disproportionality signal: a derived fact published on pv.safety.signal.v1 (docs/signals.md).

It names a product and an event term and carries the statistics that made it a signal; it is about many
reports, never about one patient, so it carries no pseudonym, case id or narrative.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Namespace for deterministic signal ids: recomputing the same store never publishes the same signal twice.
SIGNAL_NAMESPACE = UUID("0f5c7a9e-3b8e-4c61-9d0e-6a2f1c4b7e21")


def signal_id_for(product: str, event: str, method: str, strength: float) -> UUID:
    """One id per (pair, method, strength when detected): a signal strengthened later gets a new id."""
    return uuid5(SIGNAL_NAMESPACE, f"{method}\x1f{product}\x1f{event}\x1f{strength:.6g}")


class SignalDetected(BaseModel):
    """A product-event pair newly meeting a method's threshold, or whose strength grew past the ratio; or, with
    method 'maxsprt', MSC-infusion cases of a term crossing the MaxSPRT boundary (a = cases, expected = the
    background expectation, product = 'MSC infusion')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: ClassVar[str] = "pv.safety.signal.v1"

    signal_id: UUID
    product: str = Field(min_length=1, max_length=200)
    event: str = Field(min_length=1, max_length=200)
    method: Literal["prr", "ebgm", "ic", "maxsprt"]
    kind: Literal["new", "strengthened"]
    strength: float = Field(description="PRR, EB05 or 2^IC025 at detection.")
    previous_strength: float | None = Field(default=None, description="Strength when last published, if ever.")
    a: int = Field(ge=1, description="Distinct reports with the product and the event.")
    expected: float
    prr: float | None = None
    chi2_yates: float | None = None
    ror: float | None = None
    ror_lo95: float | None = None
    ic025: float | None = None
    ebgm: float | None = None
    eb05: float | None = None
    eb95: float | None = None
    llr: float | None = Field(default=None, description="MaxSPRT: log-likelihood ratio when the boundary was crossed.")
    critical_value: float | None = Field(default=None, description="MaxSPRT: the exact critical value crossed.")
    detected_at: AwareDatetime
