"""Usage policies as ODRL 2.2 offers and agreements, in QDSN's profile (`profile.schema.json`).

A policy is plain ODRL JSON-LD. Anything the profile does not name — an action, a left operand, an
operator, a property — is refused, never ignored: a constraint the evaluator skipped would grant
what its author meant to withhold. An agreement names its offer by uid and by the SHA-256 of the
offer's RFC 8785 canonical form, so "is this the offer we agreed to?" is one hash comparison,
never a structural one.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from qdsn.crypto import canonical_json
from qdsn.errors import IntegrityError, InvalidInput

CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "urn:qdsn:odrl:profile:v1"
ORDERED = {"dateTime", "count", "elapsedTime"}  # operands lt, lteq, gt, gteq make sense for
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("qdsn.policy").joinpath("profile.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def profile_schema() -> dict[str, Any]:
    """The profile's JSON Schema, as published."""
    return _validator().schema


def load(policy: Any) -> dict[str, Any]:
    """`policy` checked against the profile, with every right operand of the type its left operand
    needs; raises InvalidInput naming the first problem."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(policy))
    if error is not None:
        where = error.json_path
        if error.validator == "enum" and where.endswith(("leftOperand", "operator", "action")):
            what = f"{where.rsplit('.', 1)[-1]} {error.instance!r} is not in QDSN's ODRL profile"
        elif error.validator == "additionalProperties":
            what = error.message.replace("Additional properties are not allowed", "unknown property")
        else:
            what = error.message
        raise InvalidInput(f"not a valid usage policy: at {where}: {what}", "see the profile in qdsn/policy")
    for where, c in constraints(policy):
        _check_operand(where, c)
    return policy


def constraints(policy: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every atomic constraint of a policy with where it sits (for messages)."""
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(where: str, items: list[dict[str, Any]]) -> None:
        for i, c in enumerate(items):
            logic = next((op for op in ("and", "or") if op in c), None)
            if logic:
                walk(f"{where}[{i}].{logic}", c[logic])
            else:
                out.append((f"{where}[{i}]", c))

    for kind in ("permission", "prohibition"):
        for i, rule in enumerate(policy.get(kind, [])):
            walk(f"{kind}[{i}].constraint", rule.get("constraint", []))
    return out


def _check_operand(where: str, c: dict[str, Any]) -> None:
    left, op, right = c["leftOperand"], c["operator"], c["rightOperand"]
    if op in ("lt", "lteq", "gt", "gteq") and left not in ORDERED:
        raise InvalidInput(f"at {where}: {left} cannot be compared with {op}", "use eq, neq or isAnyOf")
    values = right if op == "isAnyOf" else [right]
    if op == "isAnyOf" and (not isinstance(right, list) or not right):
        raise InvalidInput(f"at {where}: isAnyOf needs a non-empty list of values")
    for v in values:
        try:
            operand(left, v)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"at {where}: {left} cannot be {v!r}: {e}") from None


_TYPES = {"dateTime": "xsd:dateTime", "count": "xsd:integer", "elapsedTime": "xsd:duration"}


def operand(left: str, value: Any) -> Any:
    """A right operand as the value it compares as: a datetime, an int, a timedelta or a string.
    JSON-LD typed literals ({"@value": …, "@type": "xsd:…"}) are read when the type is the one the
    left operand needs."""
    if isinstance(value, dict):
        if set(value) != {"@value", "@type"} or value["@type"] != _TYPES.get(left, "xsd:string"):
            raise TypeError(f"a typed {left} value is {{'@value': …, '@type': '{_TYPES.get(left, 'xsd:string')}'}}")
        value = value["@value"]
    if left == "dateTime":
        if not isinstance(value, str):
            raise TypeError("a date-time is an RFC 3339 string")
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if t.tzinfo is None:
            raise ValueError("a date-time needs its UTC offset")
        return t
    if left == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError("a count is a whole number ≥ 0")
        return value
    if left == "elapsedTime":
        m = _DURATION.match(value) if isinstance(value, str) else None
        if m is None or value in ("P", "PT"):
            raise ValueError("an elapsed time is an xsd:duration in days, hours, minutes or seconds, e.g. P30D")
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    if left == "qdsn:modelHash" and not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("a model code hash is 64 lowercase hex digits")
    return value


def offer_hash(offer: dict[str, Any]) -> str:
    """SHA-256 of the offer's canonical JSON, lowercase hex."""
    return hashlib.sha256(canonical_json(offer)).hexdigest()


def agreement(offer: dict[str, Any], assignee: str, uid: str) -> dict[str, Any]:
    """The agreement that grants `offer`'s rules to `assignee`, naming the offer by uid and hash."""
    load(offer)
    if offer["@type"] != "Offer":
        raise InvalidInput("an agreement is made from an Offer")
    body = {k: v for k, v in offer.items() if k not in ("uid", "@type")}
    return load(
        body
        | {
            "@type": "Agreement",
            "uid": uid,
            "assignee": assignee,
            "offer": {"uid": offer["uid"], "hash": offer_hash(offer)},
        }
    )


def check_agreement(agreed: dict[str, Any], offer: dict[str, Any]) -> None:
    """Refuse an agreement that does not name exactly this offer."""
    load(agreed)
    ref = agreed.get("offer")
    if agreed["@type"] != "Agreement" or ref is None:
        raise InvalidInput("not an agreement: it names no offer")
    if ref["uid"] != offer.get("uid"):
        raise IntegrityError(f"the agreement is for offer {ref['uid']}, not {offer.get('uid')}")
    if ref["hash"] != offer_hash(offer):
        raise IntegrityError(
            f"the agreement's offer hash {ref['hash'][:16]}… does not match offer {offer['uid']} "
            f"({offer_hash(offer)[:16]}…): the offer was changed after it was agreed",
            "negotiate again against the offer as it stands",
        )
