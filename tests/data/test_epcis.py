"""EPCIS 2.0: GS1's published examples pass GS1's JSON Schema and read into the data model; broken
documents are refused with the place named; exported measurements and inspections are valid EPCIS and
read back into the same records."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qdsn.data import epcis
from qdsn.data.ingest import ingest_epcis, validate
from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput

from .test_ingest import anchors
from .test_vault import Keys

FIXTURES = Path(__file__).parent.parent / "fixtures" / "epcis"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def gs1(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def measurements(doc, units=None):
    found = epcis.extract(doc, "measurements", units)
    good, bad = validate(found.rows, "measurements", now=NOW, unit="event")
    assert bad == []
    return good, found


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonld")))
def test_gs1_examples_pass_the_gs1_schema(name):
    epcis.load(FIXTURES / name)


@pytest.mark.parametrize(
    ("mangle", "where"),
    [
        (lambda e: e.pop("eventTimeZoneOffset"), "eventTimeZoneOffset"),
        (lambda e: e.update(action="LOOK"), "action"),
        (lambda e: e.update(eventTime="yesterday"), "eventTime"),
        (lambda e: e["sensorElementList"][0]["sensorReport"][0].update(value="26"), "value"),
        (lambda e: e["sensorElementList"][0]["sensorReport"][0].pop("type"), "type"),
        (lambda e: e["quantityList"][0].update(uom="kilogram"), "uom"),
    ],
)
def test_documents_breaking_the_schema_are_refused_with_the_place_named(mangle, where):
    doc = gs1("SensorDataExample4.jsonld")
    mangle(doc["epcisBody"]["eventList"][0])
    with pytest.raises(InvalidInput, match=r"not a valid EPCIS 2\.0 document") as e:
        epcis.check(doc)
    assert "$.epcisBody.eventList[0]" in e.value.what and where in e.value.what


def test_a_file_that_is_not_json_is_refused(tmp_path):
    (tmp_path / "x.jsonld").write_text("{ not json")
    with pytest.raises(InvalidInput, match="cannot be read as JSON"):
        epcis.load(tmp_path / "x.jsonld")


def test_sensor_reports_become_measurements():
    good, found = measurements(gs1("SensorDataExample1.jsonld"))
    assert (found.events, len(good), found.skipped) == (1, 12, [])
    assert good[0] == {
        "characteristic": "Temperature",
        "value": 26.0,
        "time": "2019-04-02T14:05:00+01:00",
        "device": "urn:epc:id:giai:4000001.111",
    }
    assert [m["value"] for m in good if m["characteristic"] == "Illuminance"] == [800.0, 801.0, 802.0]


def test_the_lot_comes_from_the_lgtin_class_and_report_fields_beat_metadata():
    good, _ = measurements(gs1("SensorDataExample4.jsonld"))
    assert {m["lot"] for m in good} == {"urn:epc:class:lgtin:4023333.002000.2019-10-07"}
    assert [m["device"] for m in good][:2] == ["urn:epc:id:giai:4000001.111", "urn:epc:id:giai:4000001.222"]
    assert good[0]["time"] == "2019-04-02T14:55:00+01:00"  # from sensorMetadata: the report has none


def test_non_numeric_reports_and_alarms_are_skipped_with_a_reason():
    good, found = measurements(gs1("SensorDataExample7.jsonld"))
    assert len(good) == 1 and len(found.skipped) == 5
    good, found = measurements(gs1("SensorDataExample9.jsonld"))
    assert good == [] and [where for _, where, _ in found.skipped] == [
        "sensorElementList[0].sensorReport[0]",
        "sensorElementList[0].sensorReport[1]",
    ]
    assert "no numeric value" in found.skipped[0][2]


def test_units_must_be_known_and_match_what_the_dataset_declares():
    doc = gs1("SensorDataExample4.jsonld")
    found = epcis.extract(doc, "measurements", {"Temperature": "K"})
    assert [(b.place(), b.field) for b in found.refused] == [("event 1, sensorElementList[0].sensorReport[0]", "uom")]
    assert "reported in °C (CEL) but the dataset declares K" in found.refused[0].reason
    doc["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorReport"][1]["uom"] = "ZZ9"
    found = epcis.extract(doc, "measurements")
    assert "'ZZ9'" in found.refused[0].reason and len(found.rows) == 3


def with_sensor(doc: dict) -> dict:
    """A GS1 example event given a sensor element (the published AggregationEvent and TransformationEvent
    examples carry none)."""
    doc = copy.deepcopy(doc)
    doc["epcisBody"]["eventList"][0]["sensorElementList"] = [
        {
            "sensorMetadata": {"time": "2013-06-08T14:50:00.000Z", "deviceID": "urn:epc:id:giai:4000001.111"},
            "sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"}],
        }
    ]
    epcis.check(doc)
    return doc


def test_aggregation_and_transformation_events_with_sensors():
    good, _ = measurements(with_sensor(gs1("Example_9.6.3-AggregationEvent.jsonld")))
    assert good == [
        {
            "characteristic": "Temperature",
            "value": 4.5,
            "time": "2013-06-08T14:50:00Z",
            "device": "urn:epc:id:giai:4000001.111",
            "lot": "urn:epc:class:lgtin:4012345.012345.998877",
        }
    ]
    good, _ = measurements(with_sensor(gs1("Example_9.6.4-TransformationEvent.jsonld")))
    assert [m["value"] for m in good] == [4.5] and "lot" not in good[0]
    _, found = measurements(gs1("Example_9.6.4-TransformationEvent.jsonld"))
    assert found.skipped == [(1, "", "a TransformationEvent without sensor reports")]


def test_certification_details_become_compliance_records_and_links_are_skipped():
    doc = gs1("Example_9.6.3-AggregationEvent.jsonld")
    doc["epcisBody"]["eventList"][0]["certificationInfo"] = [
        {
            "gs1:CertificationDetails": {
                "gs1:certificationAgency": "CQC China Quality Certification Centre",
                "gs1:certificationStandard": "GB/T 5023.3-2008",
                "gs1:certificationIdentification": "CQC-2026-0042",
                "gs1:certificationStartDate": "2026-01-15",
                "gs1:certificationEndDate": "2029-01-14",
            }
        }
    ]
    epcis.check(doc)
    found = epcis.extract(doc, "compliance")
    good, bad = validate(found.rows, "compliance", unit="event")
    assert bad == [] and good == [
        {
            "id": "CQC-2026-0042",
            "kind": "certificate",
            "number": "CQC-2026-0042",
            "issuer": "CQC China Quality Certification Centre",
            "subject": "urn:epc:id:sscc:0614141.1234567890",
            "valid_from": "2026-01-15T00:00:00Z",
            "valid_until": "2029-01-14T00:00:00Z",
            "standards": ["GB/T 5023.3-2008"],
        }
    ]
    doc["epcisBody"]["eventList"][0]["certificationInfo"] = "https://cert.example.org/CQC-2026-0042"
    epcis.check(doc)
    found = epcis.extract(doc, "compliance")
    assert found.rows == [] and "fetch the certificate" in found.skipped[0][2]


def test_inspecting_events_without_our_details_are_refused_not_guessed():
    found = epcis.extract(gs1("SensorDataExample1.jsonld"), "inspections")
    assert found.rows == [] and found.refused[0].field == "qdsn:inspection"
    found = epcis.extract(gs1("Example_9.6.3-AggregationEvent.jsonld"), "inspections")
    assert found.refused == [] and "receiving" in found.skipped[0][2]


MEASURED = [
    {"characteristic": "conductor resistance", "value": 17.61, "time": "2026-03-01T08:00:00+08:00", "lot": "L1",
     "device": "ohm-3", "subgroup": 0},
    {"characteristic": "conductor resistance", "value": 17.58, "time": "2026-03-01T08:01:00+08:00", "lot": "L1",
     "device": "ohm-3", "subgroup": 0},
    {"characteristic": "insulation thickness", "value": 0.71, "time": "2026-03-01T08:01:30Z", "lot": "L1",
     "subgroup": 1},
    {"characteristic": "outer diameter", "value": 9.2, "time": "2026-03-01T09:00:00Z"},
]  # fmt: skip
INSPECTED = [
    {"id": "insp-1", "lot": "L1", "time": "2026-03-01T10:00:00Z", "sampling_plan": "ISO 2859-1 II normal AQL 1.0",
     "sample_size": 80, "defects": 1, "decision": "accept", "inspector": "王工"},
    {"id": "insp-2", "lot": "L2", "time": "2026-03-01T11:00:00-05:00", "sampling_plan": "ISO 2859-1 II normal AQL 1.0",
     "sample_size": 80, "defects": 4, "decision": "reject", "inspector": "Li"},
]  # fmt: skip


def canonical(kind, records):
    good, bad = validate(((i, "", r) for i, r in enumerate(records)), kind, now=NOW)
    assert bad == []
    return good


@pytest.mark.parametrize(("kind", "records"), [("measurements", MEASURED), ("inspections", INSPECTED)])
def test_exported_events_are_valid_epcis_and_read_back_into_the_same_records(kind, records):
    records = canonical(kind, records)
    units = {"conductor resistance": "Ω/km", "insulation thickness": "mm"}
    doc = epcis.export(records, kind, "line-1", units=units, sender="did:key:z6Mk", now=NOW)
    epcis.check(json.loads(json.dumps(doc)))
    found = epcis.extract(doc, kind, units)
    assert found.refused == [] and found.skipped == []
    assert validate(found.rows, kind, now=NOW)[0] == records


def test_export_groups_readings_by_lot_and_subgroup_and_carries_units():
    doc = epcis.export(
        canonical("measurements", MEASURED), "measurements", "line-1", units={"insulation thickness": "mm"}
    )
    events = doc["epcisBody"]["eventList"]
    assert [len(e["sensorElementList"][0]["sensorReport"]) for e in events] == [2, 1, 1]
    assert events[0]["eventTime"] == "2026-03-01T08:01:00+08:00" and events[0]["eventTimeZoneOffset"] == "+08:00"
    assert events[1]["sensorElementList"][0]["sensorReport"][0]["uom"] == "MMT"
    assert events[0]["quantityList"] == [{"epcClass": "urn:qdsn:lot:L1"}] and "quantityList" not in events[2]
    report = events[0]["sensorElementList"][0]["sensorReport"][0]
    assert report["type"] == "urn:qdsn:characteristic:conductor%20resistance"
    assert report["deviceID"] == "urn:qdsn:device:ohm-3"


def test_datasets_without_an_epcis_form_are_refused():
    with pytest.raises(InvalidInput, match="no EPCIS form"):
        epcis.export([], "compliance", "d")
    with pytest.raises(InvalidInput, match="EPCIS events carry no nonconformances"):
        epcis.extract(gs1("SensorDataExample1.jsonld"), "nonconformances")


def test_an_epcis_file_is_sealed_and_anchored_or_refused_whole(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    made, anchor = anchors()
    bad_units = {"Speed": "m/s"}
    with pytest.raises(InvalidInput, match=r"event 1, sensorElementList\[0\]\.sensorReport\[2\], field 'uom'"):
        ingest_epcis(FIXTURES / "SensorDataExample1.jsonld", vault, "d", "measurements", anchor, units=bad_units)
    assert made == [] and vault.records("d") == []

    quarantine = tmp_path / "q.jsonl"
    summary = ingest_epcis(
        FIXTURES / "SensorDataExample1.jsonld", vault, "d", "measurements", anchor, units=bad_units,
        quarantine=quarantine, batch_size=5,
    )  # fmt: skip
    assert (summary.accepted, summary.quarantined, len(summary.batches)) == (9, 3, 2)
    assert json.loads(quarantine.read_text().splitlines()[0])["at"] == "event 1, sensorElementList[0].sensorReport[2]"
    assert [r["characteristic"] for r in vault.records("d")][:3] == ["Temperature", "AbsoluteHumidity", "Illuminance"]
