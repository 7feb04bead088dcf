"""The regulator's private statistics of declared footprints: each maker's measurement per product
category, computed at its node, and the region's totals through Prio3SumVec between two aggregators."""

from datetime import UTC, datetime

import pytest

from qdsn.errors import InvalidInput, NotFound
from qdsn.privacy import Prio3SumVec, indicators

from ..privacy.test_prio3 import collect, report
from .conftest import footprint

CABLE, MOTOR = "urn:pact:cpc:46340", "urn:pact:cpc:44110"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_footprints_by_category_in_grams():
    old = footprint("urn:gtin:1", pcf="9.9") | {"status": "Deprecated"}
    pfs = [
        footprint("urn:gtin:1", pcf="1.2345"),
        footprint("urn:gtin:2", pcf="0.5"),
        old,
        footprint("urn:gtin:3", classification=MOTOR, pcf="12"),
        footprint("urn:gtin:4", pcf="3", start="2021-01-01T00:00:00Z", end="2021-12-31T00:00:00Z"),
    ]  # expired
    assert indicators.footprints(pfs, [CABLE, MOTOR], NOW) == [1734, 2, 12000, 1]  # 1234.5 → 1234 + 500
    assert indicators.footprints(pfs, [MOTOR.upper()], NOW) == [12000, 1]
    with pytest.raises(NotFound, match="no active footprint per kilogram"):
        indicators.footprints(pfs, ["urn:pact:cpc:1"], NOW)
    with pytest.raises(InvalidInput, match="product categories"):
        indicators.footprints(pfs, [], NOW)


def test_a_regions_totals_through_prio3_sumvec():
    makers = [[footprint("urn:gtin:1", pcf="1.2")],
              [footprint("urn:gtin:2", pcf="0.8"), footprint("urn:gtin:3", classification=MOTOR, pcf="15")],
              [footprint("urn:gtin:4", pcf="1.0")]]  # fmt: skip
    vdaf = Prio3SumVec(2, 4, 100_000, 2)  # [g CO2e cable, n cable, g CO2e motor, n motor], each ≤ 100 kg
    measured = [indicators.footprints(pfs, [CABLE, MOTOR], NOW) for pfs in makers]
    total, accepted, refused = collect(vdaf, [report(vdaf, m) for m in measured])
    assert (total, accepted, refused) == ([3000, 3, 15000, 1], 3, 0)  # a mean of 1 kg CO2e per kg of cable
    too_big = indicators.footprints([footprint("urn:gtin:5", pcf="250")], [CABLE, MOTOR], NOW)
    with pytest.raises(InvalidInput):  # past the task's bound: the client cannot even shard it
        report(vdaf, too_big)
