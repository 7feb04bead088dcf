"""The whole-process quality data model (pydantic v2): who makes what where, what was measured and
inspected, what went wrong and what was done about it, and what the product is certified against.

Every model refuses bad values with the field named: a USL not above the LSL, NaN or infinite
numbers, units outside `UNITS`, malformed unified social credit codes and region codes, and times
further in the future than a tolerance of the clock given in the validation context
(`Model.model_validate(data, context={"now": datetime, "future_tolerance": timedelta})`).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from qdsn.clock import system_clock

FUTURE_TOLERANCE = timedelta(minutes=5)

# Units of measure a characteristic may use (SI and the customary units of Chinese quality practice).
UNITS = frozenset(
    (  # noqa: SIM905 - a word list reads best as words
        "1 % ppm mm cm m km um µm nm in g kg mg t N kN N·m MPa kPa Pa bar °C K V kV mV A mA kA W kW "
        "Ω mΩ kΩ MΩ Ω/km Hz kHz s ms min h rpm m/s mm/s km/h L mL lx cd dB HV HRC HB mm² m² g/m² g/m³ kg/m³ pH"
    ).split()
)

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_PROVINCES = {
    11,
    12,
    13,
    14,
    15,
    21,
    22,
    23,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    41,
    42,
    43,
    44,
    45,
    46,
    50,
    51,
    52,
    53,
    54,
    61,
    62,
    63,
    64,
    65,
    71,
    81,
    82,
}
_STANDARD = re.compile(r"^(GB|GB/T|GB/Z|JB/T|QB/T|SN/T|YY|YY/T|HG/T|ISO|IEC|ISO/IEC|EN|ASTM) [A-Z0-9.\-]+([-:]\d{4})?$")


def uscc_check_char(first17: str) -> str:
    """The check character of a unified social credit code (GB 32100-2015)."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def _uscc(value: str) -> str:
    if len(value) != 18 or any(c not in _USCC_CHARS for c in value):
        raise ValueError("a unified social credit code is 18 characters of 0-9 and A-Y without I, O, S, V, Z")
    if uscc_check_char(value[:17]) != value[17]:
        raise ValueError(
            f"check character is {value[17]!r}, the code's first 17 characters give {uscc_check_char(value[:17])!r}"
        )
    return value


def _region(value: str) -> str:
    if not re.fullmatch(r"\d{6}", value) or int(value[:2]) not in _PROVINCES:
        raise ValueError("a GB/T 2260 region code is six digits starting with a province code, e.g. 330100")
    return value


def _unit(value: str) -> str:
    if value not in UNITS:
        raise ValueError(f"unknown unit {value!r}; known units: {' '.join(sorted(UNITS))}")
    return value


def _standard(value: str) -> str:
    if not _STANDARD.match(value):
        raise ValueError(f"{value!r} is not a standard number like 'GB/T 5023.3-2008' or 'ISO 2859-1'")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number, not NaN or infinity")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times need a zone offset, e.g. 2026-03-01T08:00:00+08:00")
    return value


def _happened(value: datetime, info: ValidationInfo) -> datetime:
    ctx = info.context or {}
    now = ctx.get("now") or system_clock()
    if _aware(value) > now + ctx.get("future_tolerance", FUTURE_TOLERANCE):
        raise ValueError(f"{value.isoformat()} is in the future")
    return value


Time = Annotated[datetime, AfterValidator(_aware)]  # any time, e.g. a due date or an expiry
Happened = Annotated[datetime, AfterValidator(_happened)]  # something observed: not in the future
USCC = Annotated[str, AfterValidator(_uscc)]
Region = Annotated[str, AfterValidator(_region)]
Unit = Annotated[str, AfterValidator(_unit)]
Standard = Annotated[str, AfterValidator(_standard)]
Finite = Annotated[float, AfterValidator(_finite)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Record(BaseModel):
    """Base of every model: unknown fields refused, values frozen once valid."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Enterprise(Record):
    """A manufacturer: its unified social credit code and the region it is registered in."""

    id: Id
    name: Name
    uscc: USCC = Field(description="unified social credit code (统一社会信用代码), GB 32100-2015")
    region: Region = Field(description="GB/T 2260 administrative division code")


class Site(Record):
    """A plant of an enterprise."""

    id: Id
    enterprise: Id
    name: Name
    region: Region
    address: str = Field(default="", max_length=300)


class ProductionLine(Record):
    """A line of a site, where lots are produced and measured."""

    id: Id
    site: Id
    name: Name


class Device(Record):
    """An instrument or gateway on a line; `did` when it signs what it reports."""

    id: Id
    line: Id
    kind: Literal["sensor", "gateway", "gauge", "tester"]
    model: str = Field(default="", max_length=100)
    did: str | None = Field(default=None, pattern=r"^did:(key|web):[A-Za-z0-9._%:\-]+$")


class Product(Record):
    """A product, its category and the standards it is made to."""

    id: Id
    name: Name
    category: Name
    standards: tuple[Standard, ...] = Field(default=(), description="standards the product is made to")


class Lot(Record):
    """A lot (batch) of a product made on a line."""

    id: Id
    product: Id
    line: Id
    produced: Happened
    quantity: int = Field(gt=0)


class Characteristic(Record):
    """A quality characteristic: unit, specification limits, target, and whether it is critical."""

    name: Name
    unit: Unit
    lsl: Finite | None = None
    usl: Finite | None = None
    target: Finite | None = None
    critical: bool = False

    @model_validator(mode="after")
    def _limits(self) -> Characteristic:
        if self.lsl is None and self.usl is None:
            raise ValueError("a characteristic needs at least one specification limit (lsl or usl)")
        if self.lsl is not None and self.usl is not None and not self.usl > self.lsl:
            raise ValueError(f"usl {self.usl} must be greater than lsl {self.lsl}")
        if self.target is not None and not (
            (self.lsl is None or self.target >= self.lsl) and (self.usl is None or self.target <= self.usl)
        ):
            raise ValueError(f"target {self.target} lies outside the specification limits")
        return self


class Measurement(Record):
    """One reading of a characteristic, from a device, of a lot, in a rational subgroup."""

    characteristic: Name
    value: Finite
    time: Happened
    device: Id | None = None
    lot: Id | None = None
    subgroup: int | None = Field(default=None, ge=0)
    seq: int | None = Field(
        default=None,
        ge=1,
        lt=2**53,
        description="the device's count of its readings, from 1: a missing number is a lost reading",
    )
    boot: Id | None = Field(default=None, description="names a device's count that starts again at 1 when it restarts")


# The units activity data behind a product footprint may be in, per category; `output` is in the
# declared units PACT v3 allows (data/pact.py), so a footprint per declared unit follows from them.
ACTIVITY_UNITS = {
    "energy": ("kWh", "MWh", "MJ", "GJ"),
    "material": ("kg", "t"),
    "transport": ("t·km",),
}
_DECIMAL = re.compile(r"^\d{1,15}(\.\d{1,12})?$")  # a non-negative PACT decimal string, of a sane size


class Activity(Record):
    """Activity data behind a product's carbon footprint, over a period: energy by source (grid
    electricity of a region, natural gas, ...), materials, transport, and the product output they made.
    The amount is a decimal string, as PACT writes numbers, so sums are exact."""

    product: Id
    category: Literal["energy", "material", "transport", "output"]
    source: Id = Field(description="what was used: electricity.grid, natural-gas, steel, road.truck; "
                                   "for output, the product itself")  # fmt: skip
    amount: str = Field(max_length=32, description='a non-negative decimal string, e.g. "1250.5"')
    unit: str = Field(max_length=32)
    start: Happened
    end: Happened
    region: Region | None = Field(default=None, description="GB/T 2260 code, for a grid's emission factor")

    @model_validator(mode="after")
    def _consistent(self) -> Activity:
        if not _DECIMAL.match(self.amount):
            raise ValueError(f'amount {self.amount[:40]!r} is not a non-negative decimal string like "1250.5"')
        if self.category == "output":
            from qdsn.data.pact import units  # the declared units of the spec's own schema

            allowed: tuple[str, ...] = tuple(units())
        else:
            allowed = ACTIVITY_UNITS[self.category]
        if self.unit not in allowed:
            raise ValueError(f"unit {self.unit[:40]!r} is not one for {self.category}; "
                             f"use one of: {', '.join(allowed)}")  # fmt: skip
        if self.end <= self.start:
            raise ValueError("end must come after start")
        return self


class Inspection(Record):
    """An acceptance inspection of a lot under a sampling plan, and its decision."""

    id: Id
    lot: Id
    time: Happened
    sampling_plan: str = Field(min_length=1, max_length=100, description="e.g. 'ISO 2859-1 II normal AQL 1.0'")
    sample_size: int = Field(gt=0)
    defects: int = Field(ge=0)
    decision: Literal["accept", "reject"]
    inspector: Name

    @model_validator(mode="after")
    def _defects_fit(self) -> Inspection:
        if self.defects > self.sample_size:
            raise ValueError(f"defects {self.defects} exceed the sample size {self.sample_size}")
        return self


class NonConformance(Record):
    """A nonconformity found in a lot or a characteristic."""

    id: Id
    lot: Id | None = None
    characteristic: Name | None = None
    severity: Literal["critical", "major", "minor"]
    description: str = Field(min_length=1, max_length=2000)
    detected: Happened


class CorrectiveAction(Record):
    """A corrective action (CAPA) taken on a nonconformity, and whether it worked."""

    id: Id
    nonconformance: Id
    action: str = Field(min_length=1, max_length=2000)
    owner: Name
    due: Time
    closed: Happened | None = None
    effective: bool | None = None

    @model_validator(mode="after")
    def _effectiveness_after_closing(self) -> CorrectiveAction:
        if self.effective is not None and self.closed is None:
            raise ValueError("effectiveness is judged after the action is closed")
        return self


class ComplianceRecord(Record):
    """A licence, test report or certificate held for an enterprise, product or lot."""

    id: Id
    kind: Literal["licence", "test_report", "certificate"]
    number: str = Field(min_length=1, max_length=100)
    issuer: Name
    subject: Id = Field(description="the enterprise, product or lot it covers")
    valid_from: Time
    valid_until: Time | None = None
    standards: tuple[Standard, ...] = ()

    @model_validator(mode="after")
    def _validity(self) -> ComplianceRecord:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


MODELS: dict[str, type[Record]] = {
    m.__name__: m
    for m in (
        Enterprise,
        Site,
        ProductionLine,
        Device,
        Product,
        Lot,
        Characteristic,
        Measurement,
        Activity,
        Inspection,
        NonConformance,
        CorrectiveAction,
        ComplianceRecord,
    )
}


def export_schemas(folder: Path) -> list[Path]:
    """Write each model's JSON Schema (draft 2020-12) to `folder`; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in MODELS.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"qdsn:{name}",
            **model.model_json_schema(),
        }
        path = folder / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
