"""A footprint from activity data and a versioned emission factor table, in exact decimals; the
built-in model computing it in the sandbox; the low-carbon scheme judging its output."""

import copy

import jsonschema
import orjson
import pytest

from qdsn.compute import package, sandbox
from qdsn.credentials import schemes
from qdsn.errors import InvalidInput
from qdsn.footprint import calc

TABLE = calc.load_table("cn-mee-nbs-2022")
P = "urn:gtin:6901234567892"


def rec(category, source, amount, unit, **kw):
    return {"product": P, "category": category, "source": source, "amount": amount, "unit": unit,
            "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"} | kw  # fmt: skip


RECORDS = [
    rec("energy", "electricity.grid", "12.5", "MWh", region="510100"),  # Sichuan: 0.1404
    rec("energy", "electricity.grid", "1000", "kWh", region="110105"),  # Beijing: not listed, national 0.5366
    rec("energy", "natural-gas", "3.2", "GJ"),  # 0.0561 per MJ
    rec("output", P, "2500", "kilogram"),
    rec("energy", "electricity.grid", "99999", "kWh") | {"product": "urn:gtin:other"},  # another product's
]


def test_the_table_names_its_source_and_year():
    assert TABLE["version"] == "2022.1" and TABLE["sources"][0]["year"] == 2022
    national = next(f for f in TABLE["factors"] if f["source"] == "electricity.grid" and "province" not in f)
    assert national["kgco2e"] == "0.5366" and "生态环境部" in TABLE["sources"][0]["name"]


def test_footprint_per_declared_unit_exactly():
    fp = calc.compute(RECORDS, TABLE, P)
    # 12 500 × 0.1404 + 1000 × 0.5366 + 3 200 × 0.0561 = 1755 + 536.6 + 179.52 = 2471.12 kg over 2500 kg
    assert fp.emissions == "2471.12" and fp.pcf == "0.988448" and fp.output == "2500"
    assert fp.declared_unit == "kilogram" and fp.records == 4 and fp.by_category == {"energy": "2471.12"}
    assert fp.table["id"] == "cn-mee-nbs-2022" and len(fp.table["sha256"]) == 64
    other = copy.deepcopy(TABLE)
    other["factors"][0]["kgco2e"] = "0.6"
    assert calc.table_id(other)["sha256"] != fp.table["sha256"]  # the table's content is named, not its label


@pytest.mark.parametrize(("records", "said"), [
    ([rec("energy", "electricity.grid", "1", "kWh")], "no output of product"),
    ([rec("energy", "solar.thermal", "1", "kWh"), rec("output", P, "1", "piece")],
     "has no factor for energy 'solar.thermal'"),
    ([rec("energy", "natural-gas", "1", "t·km"), rec("output", P, "1", "piece")], "cannot be converted to MJ"),
    ([rec("energy", "natural-gas", "1e3", "MJ"), rec("output", P, "1", "piece")],
     "record 0.amount: '1e3' is not a non-negative decimal"),
    ([rec("output", P, "1", "piece"), rec("output", P, "1", "kilogram")], "declare a product's output in one unit"),
    ([rec("output", "urn:gtin:other", "1", "piece") | {"product": "x"}], "no activity records of product"),
])  # fmt: skip
def test_bad_activity_is_refused_with_the_reason(records, said):
    with pytest.raises(InvalidInput, match=said):
        calc.compute(records, TABLE, P)


def test_a_table_must_name_its_sources_and_versions():
    for broken, said in [({"version": ""}, "no version"), ({"sources": []}, "sources must name"),
                         ({"factors": [{"category": "energy", "source": "x", "unit": "kWh", "kgco2e": 0.5}]}, "kgco2e"),
                         ({"factors": TABLE["factors"][:1] * 2}, "a second factor")]:  # fmt: skip
        with pytest.raises(InvalidInput, match=said):
            calc.check_table(TABLE | broken)


def run_model(parameters, records):
    folder = package.builtin("product-footprint")
    m = package.load(folder)[1]
    job = {"parameters": parameters, "datasets": [{"id": "d", "kind": "activity", "records": records}]}
    r = sandbox.run(folder, m.entrypoint, orjson.dumps(job))
    return r, m


def test_the_model_computes_it_in_the_sandbox_and_the_scheme_judges_it():
    r, m = run_model({"product": P, "table": TABLE, "threshold": "1.0"}, RECORDS)
    assert r.ok, r.stderr
    out = orjson.loads(r.stdout)
    jsonschema.validate(out, m.outputs)
    assert set(out) <= set(m.exports)
    assert out["pass"] is True and out["pcf"] == "0.988448" and out["table"] == calc.compute(RECORDS, TABLE, P).table
    assert schemes.shortfalls("product-footprint", out) == []
    strict = orjson.loads(run_model({"product": P, "table": TABLE, "threshold": "0.9"}, RECORDS)[0].stdout)
    assert strict["pass"] is False
    assert schemes.shortfalls("product-footprint", strict) == [
        "the run did not pass", "footprint 0.988448 exceeds the threshold 0.9"]  # fmt: skip
    lax = out | {"threshold": "5", "pcf": "4.5"}  # a claimed pass is judged again by the scheme
    assert schemes.shortfalls("product-footprint", lax | {"table": {}}) == ["the run names no emission factor table"]
    failed, _ = run_model({"product": P, "table": TABLE, "threshold": "1"}, RECORDS[:1])
    assert not failed.ok  # no output: the run fails rather than certify nothing
