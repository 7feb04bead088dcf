"""The whole-process data model: good records pass, and each bad value is refused with its field named."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from qdsn.data.model import (
    MODELS,
    Characteristic,
    ComplianceRecord,
    CorrectiveAction,
    Enterprise,
    Inspection,
    Lot,
    Measurement,
    Product,
    export_schemas,
    uscc_check_char,
)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CTX = {"now": NOW}


def refused(model, data, field):
    with pytest.raises(ValidationError) as e:
        model.model_validate(data, context=CTX)
    locs = [".".join(str(p) for p in err["loc"]) for err in e.value.errors()]
    assert any(field in loc or (loc == "" and field == "*") for loc in locs), locs
    return str(e.value)


def test_unified_social_credit_code_check_character():
    # The example code printed in GB 32100-2015 style guides; its check character is 3.
    assert uscc_check_char("91350100M000100Y4") == "3"
    Enterprise(id="e1", name="Zhejiang Cable Works", uscc="91350100M000100Y43", region="330100")
    msg = refused(Enterprise, {"id": "e1", "name": "x", "uscc": "91350100M000100Y44", "region": "330100"}, "uscc")
    assert "check character" in msg
    refused(Enterprise, {"id": "e1", "name": "x", "uscc": "91350100M000100I43", "region": "330100"}, "uscc")


@pytest.mark.parametrize("region", ["33010", "990100", "abcdef"])
def test_region_codes(region):
    refused(Enterprise, {"id": "e1", "name": "x", "uscc": "91350100M000100Y43", "region": region}, "region")


def test_characteristic_limits_and_units():
    c = Characteristic(name="conductor resistance", unit="Ω", lsl=0.0, usl=18.1, target=17.0, critical=True)
    assert c.critical
    assert "greater than lsl" in refused(Characteristic, {"name": "d", "unit": "mm", "lsl": 5.0, "usl": 4.0}, "*")
    assert "unknown unit" in refused(Characteristic, {"name": "d", "unit": "furlong", "usl": 1.0}, "unit")
    refused(Characteristic, {"name": "d", "unit": "mm", "lsl": float("nan"), "usl": 4.0}, "lsl")
    refused(Characteristic, {"name": "d", "unit": "mm", "usl": float("inf")}, "usl")
    refused(Characteristic, {"name": "d", "unit": "mm"}, "*")
    refused(Characteristic, {"name": "d", "unit": "mm", "lsl": 1.0, "usl": 2.0, "target": 3.0}, "*")


def test_measurements_refuse_the_future_beyond_the_tolerance():
    ok = {"characteristic": "diameter", "value": 2.51, "time": (NOW + timedelta(minutes=4)).isoformat()}
    assert Measurement.model_validate(ok, context=CTX).value == 2.51
    late = {**ok, "time": (NOW + timedelta(minutes=6)).isoformat()}
    assert "in the future" in refused(Measurement, late, "time")
    Measurement.model_validate(late, context={"now": NOW, "future_tolerance": timedelta(minutes=10)})
    refused(Measurement, {**ok, "time": "2026-03-01T08:00:00"}, "time")  # no zone
    refused(Measurement, {**ok, "value": float("nan")}, "value")
    refused(Measurement, {**ok, "colour": "red"}, "colour")


def test_inspections_lots_products_capa_compliance():
    Lot.model_validate(
        {"id": "L1", "product": "p1", "line": "l1", "produced": NOW.isoformat(), "quantity": 500}, context=CTX
    )
    Product(id="p1", name="BV 2.5 mm² cable", category="electric wire", standards=("GB/T 5023.3-2008",))
    refused(Product, {"id": "p1", "name": "x", "category": "y", "standards": ["my own rules"]}, "standards")
    insp = {
        "id": "i1",
        "lot": "L1",
        "time": NOW.isoformat(),
        "sampling_plan": "ISO 2859-1 II normal AQL 1.0",
        "sample_size": 80,
        "defects": 2,
        "decision": "accept",
        "inspector": "Li Wei",
    }
    Inspection.model_validate(insp, context=CTX)
    assert "exceed" in refused(Inspection, {**insp, "defects": 81}, "*")
    refused(Inspection, {**insp, "decision": "maybe"}, "decision")
    capa = {
        "id": "c1",
        "nonconformance": "n1",
        "action": "recalibrate gauge",
        "owner": "QA",
        "due": (NOW + timedelta(days=30)).isoformat(),
    }  # a due date may lie ahead
    CorrectiveAction.model_validate(capa, context=CTX)
    refused(CorrectiveAction, {**capa, "effective": True}, "*")
    cert = {
        "id": "r1",
        "kind": "certificate",
        "number": "CQC2026010101",
        "issuer": "CQC",
        "subject": "p1",
        "valid_from": NOW.isoformat(),
        "valid_until": (NOW + timedelta(days=1825)).isoformat(),
    }
    ComplianceRecord.model_validate(cert, context=CTX)
    refused(ComplianceRecord, {**cert, "valid_until": NOW.isoformat()}, "*")


def test_schema_export(tmp_path):
    files = export_schemas(tmp_path)
    assert {f.name for f in files} == {f"{n}.schema.json" for n in MODELS}
    schema = json.loads((tmp_path / "Characteristic.schema.json").read_text())
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"name", "unit"} <= set(schema["required"])
