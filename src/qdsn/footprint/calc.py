"""A product's carbon footprint from its activity data and a versioned emission factor table: pure
functions in exact decimal arithmetic, so the same records and table give the same figure anywhere
(the certification model runs this in the sandbox; a verifier can run it again).

A table is JSON: `id`, `version`, `sources` (who published the figures, when, for which year) and
`factors`, each `{category, source, unit, kgco2e, ref, province?}` — kg CO2e per unit of activity.
An activity record (`data.model.Activity`) is matched to the factor of its category and source, and
for electricity to its province's factor when the table has one (the region's first two digits),
else the source's own; amounts in another unit of the same quantity are converted (MWh → kWh, GJ →
MJ, t → kg). The footprint per declared unit is the emissions over the output the same records
declare, rounded half-even to `PLACES` decimals, as a PACT decimal string.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from qdsn.crypto import canonical_json, sha256
from qdsn.errors import InvalidInput

TABLES = Path(__file__).with_name("factors")
PLACES = Decimal("0.000001")
# (from, to) → how many `to` one `from` is
CONVERSIONS = {("MWh", "kWh"): Decimal(1000), ("GJ", "MJ"): Decimal(1000), ("kWh", "MJ"): Decimal("3.6"),
               ("MWh", "MJ"): Decimal(3600), ("t", "kg"): Decimal(1000), ("kg", "t"): Decimal("0.001")}  # fmt: skip
_DECIMAL_CHARS = set("0123456789.")


@dataclass(frozen=True)
class Footprint:
    """What a computation found: kg CO2e per declared unit and how it was reached."""

    product: str
    declared_unit: str
    pcf: str  # kg CO2e per declared unit, a PACT decimal string
    emissions: str  # kg CO2e in all
    output: str  # declared units made
    by_category: dict[str, str]
    records: int
    table: dict[str, str]  # id, version, sha256 of its canonical JSON

    def as_dict(self) -> dict[str, Any]:
        return {"product": self.product, "declared_unit": self.declared_unit, "pcf": self.pcf,
                "emissions": self.emissions, "output": self.output, "by_category": self.by_category,
                "records": self.records, "table": self.table}  # fmt: skip


def decimal_of(value: Any, where: str) -> Decimal:
    """A non-negative decimal string as a Decimal; InvalidInput naming `where` otherwise."""
    return _dec(value, where)


def _dec(value: Any, where: str) -> Decimal:
    if not isinstance(value, str) or not value or len(value) > 32 or not set(value) <= _DECIMAL_CHARS \
            or value.count(".") > 1 or value.startswith(".") or value.endswith("."):  # fmt: skip
        raise InvalidInput(f"{where}: {str(value)[:40]!r} is not a non-negative decimal string", 'e.g. "0.5366"')
    return Decimal(value)


def check_table(table: Any) -> dict[str, Any]:
    """`table` if it is an emission factor table (named, versioned, its sources given, each factor a
    decimal string); InvalidInput naming what is wrong otherwise."""
    if not isinstance(table, dict):
        raise InvalidInput("an emission factor table is a JSON object")
    for key in ("id", "version"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise InvalidInput(f"the emission factor table has no {key}", "name and version every table")
    sources = table.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, dict) and s.get("name") for s in sources):
        raise InvalidInput(f"table {table['id']}: sources must name who published its figures",
                           'e.g. "sources": [{"name": "...", "published": "2024-12-20", "year": 2022}]')  # fmt: skip
    factors = table.get("factors")
    if not isinstance(factors, list) or not factors:
        raise InvalidInput(f"table {table['id']} has no factors")
    seen = set()
    for i, f in enumerate(factors):
        where = f"table {table['id']} factors[{i}]"
        if not isinstance(f, dict) or not all(isinstance(f.get(k), str) for k in ("category", "source", "unit")):
            raise InvalidInput(f"{where}: a factor has category, source and unit (strings) and kgco2e")
        _dec(f.get("kgco2e"), f"{where}.kgco2e")
        key = (f["category"], f["source"], f.get("province"))
        if key in seen:
            raise InvalidInput(f"{where}: a second factor for {'/'.join(str(k) for k in key if k)}")
        seen.add(key)
    return table


def table_id(table: dict[str, Any]) -> dict[str, str]:
    """How a computation names its table: id, version and the SHA-256 of its canonical JSON."""
    return {"id": table["id"], "version": table["version"], "sha256": sha256(canonical_json(table)).hex()}


@functools.cache
def _builtin(name: str) -> str:
    return (TABLES / f"{name}.json").read_text(encoding="utf-8")


def builtin_tables() -> list[str]:
    """The names of the tables QDSN ships."""
    return sorted(p.stem for p in TABLES.glob("*.json"))


def load_table(name_or_path: str) -> dict[str, Any]:
    """A table QDSN ships (by name) or one from a file."""
    if name_or_path in builtin_tables():
        return check_table(json.loads(_builtin(name_or_path)))
    p = Path(name_or_path)
    if not p.is_file():
        raise InvalidInput(f"no emission factor table {name_or_path!r}",
                           f"give a file, or one of: {', '.join(builtin_tables())}")  # fmt: skip
    return check_table(json.loads(p.read_text(encoding="utf-8")))


def _factor(table: dict[str, Any], r: dict[str, Any], where: str) -> tuple[Decimal, str]:
    """(kg CO2e per factor unit, the factor's unit) for activity record `r`."""
    province = str(r.get("region") or "")[:2] or None
    match = [f for f in table["factors"] if f["category"] == r["category"] and f["source"] == r["source"]]
    chosen = next((f for f in match if province and f.get("province") == province), None)
    chosen = chosen or next((f for f in match if f.get("province") is None), None)
    if chosen is None:
        raise InvalidInput(f"{where}: table {table['id']} {table['version']} has no factor for {r['category']} "
                           f"{r['source']!r}", "use a table that covers it, or a source it names")  # fmt: skip
    return Decimal(chosen["kgco2e"]), chosen["unit"]


def _in(amount: Decimal, unit: str, wanted: str, where: str) -> Decimal:
    if unit == wanted:
        return amount
    if (unit, wanted) not in CONVERSIONS:
        raise InvalidInput(f"{where}: an amount in {unit} cannot be converted to {wanted}, the factor's unit")
    return amount * CONVERSIONS[(unit, wanted)]


def compute(records: list[dict[str, Any]], table: dict[str, Any], product: str) -> Footprint:
    """The footprint of `product` per declared unit from its activity `records` (other products'
    records are left out), with the factors of `table`."""
    check_table(table)
    with localcontext() as ctx:
        ctx.prec = 50  # exact for every sum of 15-digit amounts and factors
        total, by_cat = Decimal(0), {}
        output, unit, n = Decimal(0), None, 0
        for i, r in enumerate(records):
            if not isinstance(r, dict) or r.get("product") != product:
                continue
            where = f"record {i}"
            n += 1
            amount = _dec(r.get("amount"), f"{where}.amount")
            if r.get("category") == "output":
                if unit not in (None, r.get("unit")):
                    raise InvalidInput(f"{where}: output in {r.get('unit')}, earlier output in {unit}",
                                       "declare a product's output in one unit")  # fmt: skip
                unit, output = r.get("unit"), output + amount
                continue
            factor, per = _factor(table, r, where)
            kg = _in(amount, str(r.get("unit")), per, where) * factor
            total += kg
            by_cat[r["category"]] = by_cat.get(r["category"], Decimal(0)) + kg
        if n == 0:
            raise InvalidInput(f"no activity records of product {product!r}", "anchor its activity data first")
        if output <= 0 or unit is None:
            raise InvalidInput(f"no output of product {product!r} among its records",
                               'add a record with category "output": how many declared units were made')  # fmt: skip
        pcf = (total / output).quantize(PLACES)
    parts = {k: _plain(v.quantize(PLACES)) for k, v in sorted(by_cat.items())}
    return Footprint(product, unit, _plain(pcf), _plain(total.quantize(PLACES)), _plain(output), parts, n,
                     table_id(table))  # fmt: skip


def _plain(d: Decimal) -> str:
    """A Decimal as a PACT decimal string: no exponent, no trailing zeros past the point."""
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
