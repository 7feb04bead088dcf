"""PACT Technical Specifications v3 product carbon footprints: ProductFootprint, CarbonFootprint and
the REST API's CloudEvents, validated against the schemas of the specification's own OpenAPI file
(`pact_schema/openapi.yaml`, PACT API 3.0.3, from wbcsd/data-exchange-protocol `spec/v3/`), never a
copy typed again.

The schemas are read as JSON Schema 2020-12 (OpenAPI 3.1's dialect) by `jsonschema`, with three
things the file leaves to its implementers made strict:

- `format: decimal` is the spec's own `Decimal` pattern, so the looser alternation in
  `PositiveNonZeroDecimal` ("1e5" matched its first branch) cannot let a non-decimal through;
- `format: urn` is RFC 8141's `urn:NID:NSS` and `format: uuid` / `date-time` are checked;
- a string longer than `MAX_PATTERN_INPUT` is refused before any pattern runs: Python's `re`
  backtracks, and `PositiveNonZeroDecimal` is quadratic on a long run of zeros.

What the schema cannot say is checked after it (`validate_footprint`): the validity period within
the reference period's end and three years after it (the spec's "Validity Period" section), and a
reference period that ends after it starts. Every refusal names the field.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from qdsn.errors import InvalidInput

SPEC = Path(__file__).with_name("pact_schema") / "openapi.yaml"
SPEC_URI = "urn:qdsn:pact:openapi:3"
MAX_PATTERN_INPUT = 1024
MAX_ERRORS = 8  # named in one refusal; the rest follow once these are fixed
_URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$", re.IGNORECASE)
EVENT_TYPES = {
    "org.wbcsd.pact.ProductFootprint.RequestCreatedEvent.3": "RequestCreatedEvent",
    "org.wbcsd.pact.ProductFootprint.RequestFulfilledEvent.3": "RequestFulfilledEvent",
    "org.wbcsd.pact.ProductFootprint.RequestRejectedEvent.3": "RequestRejectedEvent",
    "org.wbcsd.pact.ProductFootprint.PublishedEvent.3": "PublishedEvent",
}


@functools.cache
def openapi() -> dict[str, Any]:
    """The PACT v3 OpenAPI document, as published."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC.read_text(encoding="utf-8"), Loader=loader)


def schema(name: str) -> dict[str, Any]:
    """The spec's schema `name` (ProductFootprint, CarbonFootprint, PublishedEvent, ...)."""
    return openapi()["components"]["schemas"][name]


def decimal_pattern() -> re.Pattern[str]:
    """The syntax of a PACT decimal string, as the spec's `Decimal` schema writes it."""
    return re.compile(schema("Decimal")["pattern"])


def units() -> list[str]:
    """The declared units a CarbonFootprint may use (`declaredUnitOfMeasurement`)."""
    return list(schema("CarbonFootprint")["properties"]["declaredUnitOfMeasurement"]["enum"])


def _bounded_pattern(validator: Any, pattern: str, instance: Any, sch: dict[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str) and len(instance) > MAX_PATTERN_INPUT:
        yield ValidationError(f"is {len(instance)} characters long; at most {MAX_PATTERN_INPUT} are read here")
        return
    yield from jsonschema._keywords.pattern(validator, pattern, instance, sch)


def _formats() -> jsonschema.FormatChecker:
    checker = Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(list(checker.checkers))
    syntax = decimal_pattern()

    @checker.checks("decimal")
    def _decimal(value: object) -> bool:
        return not isinstance(value, str) or (len(value) <= MAX_PATTERN_INPUT and bool(syntax.match(value)))

    @checker.checks("urn")
    def _urn(value: object) -> bool:
        return not isinstance(value, str) or bool(_URN.match(value))

    return checker


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    resource = Resource(contents=openapi(), specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    cls = jsonschema.validators.extend(Draft202012Validator, {"pattern": _bounded_pattern})
    return cls({"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=registry, format_checker=_formats())


def _where(e: ValidationError, prefix: str) -> str:
    path = prefix
    for p in e.absolute_path:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    return path or "the document"


def shown(value: Any, limit: int = 60) -> str:
    """A value as a refusal quotes it: its repr, cut to `limit` characters."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 1] + "…"


def _said(e: ValidationError) -> str:
    """One schema error in words a person filling in a footprint can act on."""
    value = e.instance
    if e.validator == "type" and e.validator_value == "string" and isinstance(value, int | float):
        return f'{shown(value)} is a JSON number: PACT writes numbers as decimal strings, e.g. "{shown(value)}"'
    if e.validator in ("format", "pattern") and isinstance(value, str) and e.schema.get("format") == "decimal":
        return f'{shown(value)} is not a decimal string (digits, an optional sign and fraction, no exponent: "0.384")'
    if e.validator == "enum" and isinstance(value, str) and list(e.absolute_path)[-1:] == ["declaredUnitOfMeasurement"]:
        return f"{shown(value)} is not a unit PACT allows; use one of: {', '.join(e.validator_value)}"
    if e.validator == "required":
        return e.message.replace(" is a required property", " is required")
    if e.validator in ("type", "enum", "const", "format", "pattern", "minLength", "minItems", "uniqueItems"):
        return f"{shown(value)} does not match the schema's {e.validator} {shown(e.validator_value, 120)}"
    return e.message if len(e.message) <= 200 else e.message[:200] + "…"


def check(doc: Any, name: str, *, prefix: str = "") -> None:
    """Raise InvalidInput naming each field of `doc` that the spec's schema `name` refuses."""
    try:
        errors = list(itertools.islice(_validator(name).iter_errors(doc), MAX_ERRORS))
    except Exception as e:  # the published schema has a few nodes that are not schemas ("$ref" as a property)
        raise InvalidInput(
            f"not a PACT v3 {name}: a field could not be checked ({type(e).__name__})",
            "send only the fields the PACT v3 schema defines",
        ) from None
    if errors:
        errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
        said = dict.fromkeys(f"{_where(e, prefix)}: {_said(e)}" for e in errors)  # one line each, in order
        what = "; ".join(said)
        raise InvalidInput(f"not a PACT v3 {name}: {what}", "correct the fields named (see the PACT v3 OpenAPI schema)")


def _time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def validity(pf: dict[str, Any]) -> tuple[datetime, datetime]:
    """The footprint's validity period [start, end): as given, or three years from the end of its
    reference period (the spec's default)."""
    ref_end = _time(pf["pcf"]["referencePeriodEnd"])
    start = _time(pf["validityPeriodStart"]) if pf.get("validityPeriodStart") else ref_end
    end = _time(pf["validityPeriodEnd"]) if pf.get("validityPeriodEnd") else _plus_years(ref_end, 3)
    return start, end


def _plus_years(t: datetime, years: int) -> datetime:
    try:
        return t.replace(year=t.year + years)
    except ValueError:  # 29 February
        return t.replace(year=t.year + years, day=28)


def validate_footprint(pf: Any, *, lifecycle: bool = True) -> dict[str, Any]:
    """`pf` if it is a valid PACT v3 ProductFootprint; InvalidInput naming the fields otherwise.
    `lifecycle` adds the spec's validity-period rules, which its OpenAPI schema cannot express: on for
    what this node publishes, off for what it receives (the interchange is governed by the schema
    alone, and the spec's own examples break the rule)."""
    check(pf, "ProductFootprint")
    if not lifecycle:
        return pf
    pcf = pf["pcf"]
    if _time(pcf["referencePeriodStart"]) >= _time(pcf["referencePeriodEnd"]):
        raise InvalidInput("pcf.referencePeriodEnd must come after pcf.referencePeriodStart")
    ref_end = _time(pcf["referencePeriodEnd"])
    start, end = validity(pf)
    if start < ref_end:
        raise InvalidInput(f"validityPeriodStart {pf['validityPeriodStart']} lies before pcf.referencePeriodEnd",
                           "a footprint is valid from the end of its reference period on")  # fmt: skip
    if end > _plus_years(ref_end, 3):
        raise InvalidInput(f"validityPeriodEnd {pf['validityPeriodEnd']} lies more than three years after "
                           "pcf.referencePeriodEnd",
                           "end the validity period at most three years after it")  # fmt: skip
    if end <= start:
        raise InvalidInput("validityPeriodEnd must come after validityPeriodStart")
    return pf


def validate_event(event: Any) -> str:
    """The schema name of a valid PACT v3 event (RequestCreatedEvent, ...); InvalidInput otherwise."""
    check(event, "BaseEvent")
    kind = EVENT_TYPES.get(event["type"])
    if kind is None:
        raise InvalidInput(f"type: {str(event['type'])[:200]!r} is not a PACT v3 event type",
                           f"use one of: {', '.join(EVENT_TYPES)}")  # fmt: skip
    check(event, kind)
    return kind


def decimal(value: str, field: str) -> Decimal:
    """A PACT decimal string as a Decimal, or InvalidInput naming `field`."""
    if not isinstance(value, str) or len(value) > MAX_PATTERN_INPUT or not decimal_pattern().match(value):
        raise InvalidInput(f"{field}: {value!r} is not a decimal string", 'write it as digits, e.g. "0.5366"')
    try:
        return Decimal(value)
    except InvalidOperation:  # the pattern admits nothing Decimal refuses; kept for safety's sake
        raise InvalidInput(f"{field}: {value!r} is not a decimal string") from None
