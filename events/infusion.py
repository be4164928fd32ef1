"""An MSC (mesenchymal stromal/stem cell) infusion: the product, the lot and the dose, as far as they are known.

Infusions given at private clinics are often poorly documented; a parent may know the date and the clinic but
not the lot or the cell dose. Such an infusion is still a fact the rules need (fever within hours, a lot
cluster), so it is ACCEPTED, and flagged `incompletely_documented` so the gap is visible and countable.
Cell-product attributes follow the ISCT minimal criteria (Dominici 2006, Cytotherapy 8:315) and what the
published MSC safety reviews stratify on (Lalu 2012 PLoS One 7:e47559: source tissue, donor type, dose, route).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field, computed_field, model_validator

from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.envelope import ShortText
from pvwatch.events.vocabulary import CountryCode, Finite, LotId, Route


class TissueOrigin(StrEnum):
    UMBILICAL_CORD = "umbilical-cord"
    BONE_MARROW = "bone-marrow"
    ADIPOSE = "adipose"
    OTHER = "other"
    UNKNOWN = "unknown"


class DonorType(StrEnum):
    AUTOLOGOUS = "autologous"
    ALLOGENEIC = "allogeneic"
    UNKNOWN = "unknown"


#: Computed on validation; a value sent by a producer is ignored (it cannot vouch for its own documentation).
_COMPUTED = ("incompletely_documented", "missing_documentation")


class MscInfusionGiven(ClinicalEvent):
    """One MSC infusion given to one patient; occurred_at is the start of the infusion."""

    topic: ClassVar[str] = "pv.clinical.msc-infusion.v1"

    type: Literal["msc-infusion"] = "msc-infusion"
    product_name: ShortText | None = Field(default=None, description="Product name as given by the clinic.")
    clinic: ShortText = Field(description="Clinic or centre that made or supplied the product.")
    manufacturer: ShortText | None = Field(default=None, description="Manufacturer, when not the clinic.")
    tissue_origin: TissueOrigin = Field(default=TissueOrigin.UNKNOWN, description="Tissue the cells came from.")
    donor_type: DonorType = Field(default=DonorType.UNKNOWN, description="The patient's own cells or a donor's.")
    lot_id: LotId | None = Field(default=None, description="Lot/batch id (E2B(R3) G.k.4.r.7); None if unknown.")
    cells_per_kg: Finite | None = Field(default=None, gt=0, le=1e10, description="Viable cells per kg body weight.")
    total_cells: Finite | None = Field(default=None, gt=0, le=1e12, description="Total cells infused.")
    viability_percent: Finite | None = Field(default=None, ge=0, le=100, description="Viable cells, percent.")
    passage: int | None = Field(default=None, ge=0, le=50, description="Culture passage of the cells.")
    route: Route = Field(default=Route.INTRAVENOUS, description="Route of administration.")
    protocol_id: ShortText | None = Field(default=None, description="The clinic's treatment protocol id.")
    infusion_number: int | None = Field(default=None, ge=1, le=100, description="1 for the first infusion, ...")
    premedication: list[ShortText] = Field(default_factory=list, max_length=20,
                                           description="Drugs given before the infusion, e.g. paracetamol.")
    administering_site: ShortText | None = Field(default=None, description="Where the infusion was given.")
    country: CountryCode | None = Field(default=None, description="Where the infusion was given (ISO 3166-1).")

    @model_validator(mode="before")
    @classmethod
    def _ignore_claimed_flags(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(name in data for name in _COMPUTED):
            return {key: value for key, value in data.items() if key not in _COMPUTED}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def missing_documentation(self) -> list[str]:
        """What a complete record would have: the lot (for lot clusters and recalls) and the cell dose."""
        missing = []
        if self.lot_id is None:
            missing.append("lot_id")
        if self.cells_per_kg is None and self.total_cells is None:
            missing.append("cell_dose")
        return missing

    @computed_field  # type: ignore[prop-decorator]
    @property
    def incompletely_documented(self) -> bool:
        """True when the lot or the cell dose is unknown (the same rule as the `infusions` view's column)."""
        return bool(self.missing_documentation)
