"""GS1 EPCIS 2.0 (JSON / JSON-LD): check documents against GS1's JSON Schema, read quality records out of
their events, and write measurements and inspections back as events.

Reading: every sensor report with a numeric `value` becomes a Measurement; an ObjectEvent carrying a
`qdsn:inspection` extension becomes an Inspection; each embedded `gs1:CertificationDetails` of a
`certificationInfo` becomes a ComplianceRecord. What a document holds but cannot become a record of the
dataset's kind is reported as skipped, with the reason. QDSN's own identifiers travel as `urn:qdsn:` URIs,
so an exported document reads back into the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT7

from qdsn.clock import system_clock
from qdsn.data.rows import BadRow
from qdsn.errors import InvalidInput

SCHEMA_DIR = Path(__file__).with_name("epcis_schema")
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
NS = "urn:qdsn:"
KINDS = ("measurements", "inspections", "compliance")

# UN/ECE Recommendation 20 codes (EPCIS `uom`) for the units of qdsn.data.model.UNITS that have one.
UNECE = {
    "C62": "1", "P1": "%", "59": "ppm", "MMT": "mm", "CMT": "cm", "MTR": "m", "KMT": "km", "4H": "µm",
    "C45": "nm", "INH": "in", "GRM": "g", "KGM": "kg", "MGM": "mg", "TNE": "t", "NEW": "N", "B47": "kN",
    "NU": "N·m", "MPA": "MPa", "KPA": "kPa", "PAL": "Pa", "BAR": "bar", "CEL": "°C", "KEL": "K", "VLT": "V",
    "KVT": "kV", "2Z": "mV", "AMP": "A", "4K": "mA", "B22": "kA", "WTT": "W", "KWT": "kW", "OHM": "Ω",
    "B49": "kΩ", "B75": "MΩ", "HTZ": "Hz", "KHZ": "kHz", "SEC": "s", "C26": "ms", "MIN": "min", "HUR": "h",
    "MTS": "m/s", "KMH": "km/h", "LTR": "L", "MLT": "mL", "LUX": "lx", "CDL": "cd", "2N": "dB", "MMK": "mm²",
    "MTK": "m²", "GM": "g/m²", "KMQ": "kg/m³", "A93": "g/m³",
}  # fmt: skip
UNIT_CODES = {unit: code for code, unit in UNECE.items()}


@dataclass
class Extract:
    """The records of one kind read from a document, and what was left out."""

    events: int = 0
    rows: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (event, where, fields)
    refused: list[BadRow] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (event, where, why)


@cache
def _validator() -> Draft7Validator:
    main = orjson.loads((SCHEMA_DIR / "epcis-json-schema.json").read_bytes())
    details = orjson.loads((SCHEMA_DIR / "certificationDetails-schema.json").read_bytes())
    # The schema's base URI has a scheme urljoin treats as opaque, so its relative reference to the
    # companion schema is looked up as written.
    registry = Registry().with_resources(
        [
            (main["$id"], DRAFT7.create_resource(main)),
            ("./certificationDetails-schema.json", DRAFT7.create_resource(details)),
        ]
    )
    return Draft7Validator(main, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    for e in errors:
        if e.context:
            yield from _leaves(e.context)
        else:
            yield e


def check(doc: Any) -> None:
    """Refuse `doc` unless it is valid under GS1's EPCIS 2.0 JSON Schema; the error names where and why."""
    errors = list(_leaves(_validator().iter_errors(doc)))
    if errors:
        # The deepest failure names the field; the schema's anyOf/if-then wrappers only say "somewhere here".
        error = max(errors, key=lambda e: len(e.absolute_path))
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        raise InvalidInput(
            f"not a valid EPCIS 2.0 document: at {error.json_path}: {message}",
            "fix that field; the document must validate against GS1's EPCIS 2.0 JSON Schema",
        )


def load(path: Path) -> dict[str, Any]:
    """Read and check an EPCIS 2.0 JSON / JSON-LD document."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise InvalidInput(f"{path}: cannot be read as JSON: {e}") from None
    try:
        check(doc)
    except InvalidInput as e:
        raise InvalidInput(f"{path}: {e.what}", e.fix) from None
    return doc


def events(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of an EPCISDocument, an EPCISQueryDocument, or a single event."""
    if doc.get("type") == "EPCISDocument":
        return doc["epcisBody"]["eventList"]
    if doc.get("type") == "EPCISQueryDocument":
        return doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return [dict(doc)]


def extract(doc: Mapping[str, Any], kind: str, units: Mapping[str, str] | None = None) -> Extract:
    """The records of dataset `kind` in a checked document; `units` (characteristic → unit) are the
    dataset's declared units, which measurements must be reported in."""
    if kind not in KINDS:
        raise InvalidInput(f"EPCIS events carry no {kind}", f"ingest EPCIS into a dataset of kind {', '.join(KINDS)}")
    out = Extract()
    read = {"measurements": _measurements, "inspections": _inspection, "compliance": _compliance}[kind]
    for n, event in enumerate(events(doc), start=1):
        out.events += 1
        read(n, event, out, units or {})
    return out


def _local(uri: str, what: str) -> str:
    prefix = f"{NS}{what}:"
    return unquote(uri[len(prefix) :]) if uri.startswith(prefix) else uri


def _lot(event: Mapping[str, Any]) -> str | None:
    classes = [
        q["epcClass"] for key in ("quantityList", "childQuantityList", "outputQuantityList") for q in event.get(key, ())
    ]
    ours = [c for c in classes if c.startswith(f"{NS}lot:")]
    lots = ours or [c for c in classes if c.startswith("urn:epc:class:lgtin:")]
    return _local(lots[0], "lot") if len(lots) == 1 else None


def _characteristic(report: Mapping[str, Any]) -> str:
    name = _local(report["type"], "characteristic").removeprefix("gs1:")
    return f"{name}/{report['component']}" if "component" in report else name


def _measurements(n: int, event: dict[str, Any], out: Extract, units: Mapping[str, str]) -> None:
    lot = _lot(event)
    if not event.get("sensorElementList"):
        out.skipped.append((n, "", f"a {event['type']} without sensor reports"))
    for i, element in enumerate(event.get("sensorElementList", ())):
        meta = element.get("sensorMetadata", {})
        for j, report in enumerate(element["sensorReport"]):
            where = f"sensorElementList[{i}].sensorReport[{j}]"
            if "value" not in report:
                out.skipped.append((n, where, "no numeric value (an alarm, an error or a non-numeric reading)"))
                continue
            fields: dict[str, Any] = {
                "characteristic": _characteristic(report),
                "value": report["value"],
                "time": report.get("time") or meta.get("time") or event["eventTime"],
            }
            if device := report.get("deviceID") or meta.get("deviceID"):
                fields["device"] = _local(device, "device")
            if lot:
                fields["lot"] = lot
            if "qdsn:subgroup" in report:
                fields["subgroup"] = report["qdsn:subgroup"]
            if reason := _unit_problem(report.get("uom"), units.get(fields["characteristic"])):
                out.refused.append(BadRow(n, "uom", reason, report, where, "event"))
                continue
            out.rows.append((n, where, fields))


def _unit_problem(code: str | None, declared: str | None) -> str | None:
    if code is None:
        return None
    unit = UNECE.get(code)
    if unit is None:
        return f"unit code {code!r} (UN/ECE Rec. 20) is not one QDSN knows"
    if declared is not None and unit != declared:
        return f"reported in {unit} ({code}) but the dataset declares {declared}"
    return None


def _inspection(n: int, event: dict[str, Any], out: Extract, units: Mapping[str, str]) -> None:
    if "qdsn:inspection" in event:
        fields = {**event["qdsn:inspection"], "time": event["eventTime"]}
        if lot := _lot(event):
            fields["lot"] = lot
        out.rows.append((n, "", fields))
    elif event.get("bizStep") in ("inspecting", "sampling"):
        why = "an inspecting event without sampling plan, sample size and defects"
        out.refused.append(BadRow(n, "qdsn:inspection", why, {}, "", "event"))
    else:
        out.skipped.append((n, "", f"a {event.get('bizStep', event['type'])} event, not an inspection"))


def _date(value: str | None) -> str | None:
    # gs1:CertificationDetails dates are calendar dates; the model keeps instants, so midnight UTC.
    return f"{value}T00:00:00Z" if value else None


def _compliance(n: int, event: dict[str, Any], out: Extract, units: Mapping[str, str]) -> None:
    info = event.get("certificationInfo")
    if info is None:
        out.skipped.append((n, "", "no certificationInfo"))
        return
    subject = next(iter(event.get("epcList", ())), None) or event.get("parentID") or _lot(event)
    for i, item in enumerate(info if isinstance(info, list) else [info]):
        where = f"certificationInfo[{i}]"
        if isinstance(item, str):
            out.skipped.append((n, where, f"a link ({item}); fetch the certificate and ingest it as a record"))
            continue
        details = item["gs1:CertificationDetails"]
        number = details.get("gs1:certificationIdentification")
        fields = {
            "id": number,
            "kind": "certificate",
            "number": number,
            "issuer": details.get("gs1:certificationAgency"),
            "subject": subject,
            "valid_from": _date(details.get("gs1:certificationStartDate")),
            "valid_until": _date(details.get("gs1:certificationEndDate")),
            "standards": [details["gs1:certificationStandard"]] if "gs1:certificationStandard" in details else None,
        }
        out.rows.append((n, where, {k: v for k, v in fields.items() if v is not None}))


# -- writing ------------------------------------------------------------------------------------------------


def _when(time: str) -> tuple[datetime, str]:
    t = datetime.fromisoformat(time)
    minutes = int(t.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    return t, f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _uri(what: str, value: str) -> str:
    return f"{NS}{what}:{quote(value, safe='')}"


def measurement_events(records: Iterable[Mapping[str, Any]], dataset: str, units: Mapping[str, str]) -> list[dict]:
    """ObjectEvents for measurements: one per lot and subgroup, each reading a sensor report."""
    groups: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r.get("lot"), r.get("subgroup")), []).append(r)
    out = []
    for (lot, _), group in groups.items():
        reports = []
        for r in group:
            report: dict[str, Any] = {"type": _uri("characteristic", r["characteristic"]), "value": r["value"]}
            report["time"] = r["time"]
            if "device" in r:
                report["deviceID"] = _uri("device", r["device"])
            if code := UNIT_CODES.get(units.get(r["characteristic"], "")):
                report["uom"] = code
            if "subgroup" in r:
                report["qdsn:subgroup"] = r["subgroup"]
            reports.append(report)
        last = max(group, key=lambda r: _when(r["time"])[0])["time"]
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventTime": last,
            "eventTimeZoneOffset": _when(last)[1],
            "action": "OBSERVE",
            "bizStep": "sensor_reporting",
            "readPoint": {"id": _uri("dataset", dataset)},
            "sensorElementList": [{"sensorReport": reports}],
        }
        if lot is not None:
            event["quantityList"] = [{"epcClass": _uri("lot", lot)}]
        out.append(event)
    return out


def inspection_events(records: Iterable[Mapping[str, Any]], dataset: str) -> list[dict]:
    """One ObjectEvent (bizStep inspecting) per inspection, its details in a `qdsn:inspection` extension."""
    out = []
    for r in records:
        details = {k: v for k, v in r.items() if k not in ("time", "lot")}
        out.append(
            {
                "type": "ObjectEvent",
                "eventID": _uri("inspection", r["id"]),
                "eventTime": r["time"],
                "eventTimeZoneOffset": _when(r["time"])[1],
                "action": "OBSERVE",
                "bizStep": "inspecting",
                "disposition": "conformant" if r["decision"] == "accept" else "non_conformant",
                "readPoint": {"id": _uri("dataset", dataset)},
                "quantityList": [{"epcClass": _uri("lot", r["lot"]), "quantity": r["sample_size"]}],
                "qdsn:inspection": details,
            }
        )
    return out


def export(
    records: Iterable[Mapping[str, Any]],
    kind: str,
    dataset: str,
    *,
    units: Mapping[str, str] | None = None,
    sender: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An EPCISDocument of a dataset's measurements or inspections, checked against the schema."""
    if kind == "measurements":
        event_list = measurement_events(records, dataset, units or {})
    elif kind == "inspections":
        event_list = inspection_events(records, dataset)
    else:
        raise InvalidInput(f"a {kind} dataset has no EPCIS form", "export a measurements or inspections dataset")
    doc: dict[str, Any] = {
        "@context": [CONTEXT, {"qdsn": f"{NS}ns:"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": (now or system_clock()).isoformat().replace("+00:00", "Z"),
        "epcisBody": {"eventList": event_list},
    }
    if sender:
        doc["sender"] = sender
    check(doc)
    return doc
