"""A computed footprint as a PACT v3 ProductFootprint, checked against the spec's schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from qdsn.data import pact
from qdsn.errors import InvalidInput
from qdsn.footprint.calc import Footprint


def product_footprint(fp: Footprint, table: dict[str, Any], *, company_name: str, company_id: str, description: str,
                      start: str, end: str, mass: str | None = None, fossil_carbon: str = "0",
                      now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """The ProductFootprint of `fp`: per one declared unit, its emissions fossil (energy CO2), the
    table named among the secondary emission factor sources. `mass` is kg of product per declared unit
    (1 for kilogram); `fossil_carbon` the fossil carbon content, kg C per declared unit."""
    if mass is None:
        if fp.declared_unit != "kilogram":
            raise InvalidInput(f"the product's mass per {fp.declared_unit} is needed", "give it in kg (--mass)")
        mass = "1"
    at = (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    doc = {
        "id": str(uuid.uuid4()), "specVersion": "3.0.0", "created": at, "status": "Active",
        "companyName": company_name, "companyIds": [company_id], "productDescription": description,
        "productIds": [fp.product], "productNameCompany": fp.product,
        "comment": f"Computed by QDSN from {fp.records} anchored activity records with emission factor table "
                   f"{fp.table['id']} {fp.table['version']} (sha256 {fp.table['sha256']}).",
        "pcf": {
            "declaredUnitOfMeasurement": fp.declared_unit, "declaredUnitAmount": "1",
            "productMassPerDeclaredUnit": mass,
            "referencePeriodStart": start, "referencePeriodEnd": end,
            "pcfExcludingBiogenicUptake": fp.pcf, "pcfIncludingBiogenicUptake": fp.pcf, "fossilGhgEmissions": fp.pcf,
            "fossilCarbonContent": fossil_carbon, "ipccCharacterizationFactors": ["AR6"],
            "crossSectoralStandards": ["ISO14067", "GHGP-Product"], "exemptedEmissionsPercent": "0",
            "packagingEmissionsIncluded": False,
            "secondaryEmissionFactorSources": [{"name": table["id"], "version": table["version"]}],
        },
    }  # fmt: skip
    return pact.validate_footprint(doc)
