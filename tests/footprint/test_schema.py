"""PACT v3 footprints and events checked against the specification's own OpenAPI schemas: the spec's
examples pass, and each kind of bad input is refused with the field named."""

import copy
import json
import time
from pathlib import Path

import pytest

from qdsn.data import pact
from qdsn.data.model import Activity
from qdsn.errors import InvalidInput

EXAMPLES = Path("/work/shared/standards/pact-v3/examples")
EXAMPLE = json.loads((Path(__file__).parent / "example-footprint.json").read_text())


def pf(**changes):
    doc = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        at = doc
        for p in parents:
            at = at[p]
        if value is None:
            del at[last]
        else:
            at[last] = value
    return doc


def test_the_specs_examples_are_valid():
    assert pact.validate_footprint(EXAMPLE, lifecycle=True) is EXAMPLE
    if EXAMPLES.is_dir():  # the copy in the standards folder, where the machine has it
        for name in ("example-1.json", "example-2.json"):
            pact.validate_footprint(json.loads((EXAMPLES / name).read_text()))
        event = json.loads((EXAMPLES / "pf-response-event.json").read_text())
        assert pact.validate_event(event) == "RequestFulfilledEvent"


def test_the_schema_is_the_specs_own():
    assert pact.SPEC.read_text().startswith("openapi:") and "3.0.3" in pact.openapi()["info"]["version"]
    assert "kilogram" in pact.units() and "kg" not in pact.units()
    assert pact.schema("Decimal")["pattern"] == pact.decimal_pattern().pattern


@pytest.mark.parametrize(("changes", "said"), [
    ({"pcf__declaredUnitAmount": 1.5},
     "pcf.declaredUnitAmount: 1.5 is a JSON number: PACT writes numbers as decimal strings"),
    ({"pcf__fossilGhgEmissions": "1e5"}, "pcf.fossilGhgEmissions: '1e5' is not a decimal string"),
    ({"pcf__declaredUnitAmount": "1e5"}, "pcf.declaredUnitAmount: '1e5' is not a decimal string"),
    ({"pcf__primaryDataShare": "12,9"}, "pcf.primaryDataShare: '12,9' is not a decimal string"),
    ({"pcf__declaredUnitOfMeasurement": "kg"},
     "pcf.declaredUnitOfMeasurement: 'kg' is not a unit PACT allows; use one of: liter, kilogram"),
    ({"pcf__fossilGhgEmissions": None}, "pcf: 'fossilGhgEmissions' is required"),
    ({"id": "not-a-uuid"}, "id: 'not-a-uuid' does not match the schema's format 'uuid'"),
    ({"companyIds": ["company1"]}, "companyIds[0]: 'company1'"),
    ({"status": "Retired"}, "status: 'Retired' does not match the schema's enum"),
    ({"created": "yesterday"}, "created: 'yesterday' does not match the schema's format 'date-time'"),
])  # fmt: skip
def test_a_bad_footprint_is_refused_naming_the_field(changes, said):
    with pytest.raises(InvalidInput, match="not a PACT v3 ProductFootprint") as e:
        pact.validate_footprint(pf(**changes))
    assert said in str(e.value)


def test_a_long_run_of_zeros_is_refused_at_once():
    t = time.monotonic()
    with pytest.raises(InvalidInput, match="declaredUnitAmount: '0000"):
        pact.validate_footprint(pf(pcf__declaredUnitAmount="0" * 200_000 + "x"))
    assert time.monotonic() - t < 1
    with pytest.raises(InvalidInput) as e:
        pact.validate_footprint(pf(pcf__declaredUnitAmount="0" * 200_000 + "x"))
    assert len(str(e.value)) < 1000  # the value is quoted, not echoed whole


def test_the_validity_period_rules():
    with pytest.raises(InvalidInput, match=r"validityPeriodEnd .* more than three years"):
        pact.validate_footprint(pf(validityPeriodEnd="2030-01-01T00:00:00Z"))
    with pytest.raises(InvalidInput, match=r"validityPeriodStart .* before pcf\.referencePeriodEnd"):
        pact.validate_footprint(pf(validityPeriodStart="2024-06-01T00:00:00Z"))
    with pytest.raises(InvalidInput, match="referencePeriodEnd must come after"):
        pact.validate_footprint(pf(pcf__referencePeriodStart="2025-06-01T00:00:00Z"))
    pact.validate_footprint(pf(validityPeriodEnd="2030-01-01T00:00:00Z"), lifecycle=False)  # as received
    start, end = pact.validity(pf(validityPeriodStart=None, validityPeriodEnd=None))
    assert (start.year, end.year) == (2024, 2027)  # three years from the reference period's end


def test_events_are_checked_by_their_type():
    created = {"type": "org.wbcsd.pact.ProductFootprint.RequestCreatedEvent.3", "specversion": "1.0",
               "id": "e1", "source": "//buyer.example/3/events", "time": "2025-03-05T17:31:00Z",
               "data": {"productId": ["urn:gtin:4712345060507"]}}  # fmt: skip
    assert pact.validate_event(created) == "RequestCreatedEvent"
    with pytest.raises(InvalidInput, match=r"data\.productId\[0\]: 'gtin:1'"):
        pact.validate_event(created | {"data": {"productId": ["gtin:1"]}})
    with pytest.raises(InvalidInput, match="is not a PACT v3 event type"):
        pact.validate_event(created | {"type": "org.example.Other"})
    with pytest.raises(InvalidInput, match="'time' is required"):
        pact.validate_event({k: v for k, v in created.items() if k != "time"})
    with pytest.raises(InvalidInput, match="could not be checked"):  # a "$ref" field meets a non-schema in the file
        pact.validate_event(created | {"$ref": 1})


def activity(**kw):
    base = {"product": "urn:gtin:6901234567892", "category": "energy", "source": "electricity.grid",
            "amount": "1250.5", "unit": "kWh", "start": "2025-01-01T00:00:00Z",
            "end": "2025-02-01T00:00:00Z"}  # fmt: skip
    return base | kw


def test_activity_records():
    assert Activity.model_validate(activity()).amount == "1250.5"
    Activity.model_validate(activity(category="output", source="cable", unit="kilogram", amount="800"))
    for bad, said in [({"amount": 1250.5}, "string"), ({"amount": "1.2e3"}, "not a non-negative decimal"),
                      ({"amount": "-3"}, "not a non-negative decimal"), ({"unit": "kg"}, "not one for energy"),
                      ({"category": "output", "unit": "kg"}, "use one of: liter, kilogram"),
                      ({"end": "2024-12-01T00:00:00Z"}, "end must come after start"),
                      ({"region": "999999"}, "region")]:  # fmt: skip
        with pytest.raises(ValueError, match=said):
            Activity.model_validate(activity(**bad))
