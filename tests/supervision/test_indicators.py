"""Evaluation indicators: each factor on plain records, the capability level with the criteria that decide it,
and the readers over a real ledger (notifications and inspections read as their published payloads, and
nothing when the log holds none)."""

from datetime import UTC, datetime, timedelta

import pytest

from qdsn.errors import InvalidInput, NotFound
from qdsn.supervision import indicators as ind
from qdsn.supervision.indicators import Certificate, Facts, Run

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


def capable(cpk: float, seq: int = 10, datasets=("line-1",)) -> Run:
    out = {"pass": True, "threshold": 1.33, "characteristics": [{"name": "resistance", "cpk": cpk},
                                                                {"name": "diameter", "cpk": cpk + 0.2}]}  # fmt: skip
    return Run(f"t{seq}", seq, "process-capability@1.0.0", days(2), tuple(datasets), out)


def excellent() -> Facts:
    """A maker that meets every criterion of every level."""
    return Facts(
        did="did:key:maker", name="Maker", region="330106",
        declared={"line-1": ("resistance", "diameter"), "inspections": ("defects",)},
        anchors={"line-1": [days(40), days(3)], "inspections": [days(1)]},
        runs=[capable(1.8, seq=10, datasets=("line-1", "inspections")),
              Run("t11", 11, "defect-rate@1.0.0", days(2), ("inspections",), {"pass": True, "ppm": 40.0}),
              Run("t12", 12, "data-integrity@1.0.1", days(2), ("line-1",), {"pass": True, "signed": 0.97}),
              capable(1.9, seq=30)],
        certificates=[Certificate("C-1", "valid", 20, days(30), ("process-capability",))],
        notifications=[{"id": "n-1", "history": [("CREATED", days(5)), ("SENT", days(5)),
                                                 ("RECEIVED", days(5)), ("ACKNOWLEDGED", days(4.5))]}],
        inspections=[{"enterprise": "did:key:maker", "passed": True, "date": "2026-05-01"}],
    )  # fmt: skip


def test_each_factor_on_plain_records():
    f = excellent()
    assert ind.coverage(f.declared, f.runs) == (1.0, 3, 3)
    assert ind.coverage({"a": ("x", "y"), "b": ("z",)}, [Run("t", 1, "m@1.0.0", NOW, ("b",))]) == (1 / 3, 1, 3)
    newest, fresh = ind.freshness(f.anchors, ["line-1", "inspections"], NOW)
    assert newest == pytest.approx(1.0) and fresh == 1.0
    assert ind.freshness({"a": [days(31)]}, ["a", "b"], NOW) == (pytest.approx(31.0), 0.0)
    assert ind.share_anchored(["a", "b"], {"a": [NOW]}) == 0.5 and ind.share_anchored([], {}) is None
    assert ind.share_signed(f.runs) == 0.97 and ind.ppm(f.runs) == 40.0
    assert ind.cpks(f.runs) == {"resistance": 1.9, "diameter": pytest.approx(2.1)}  # the newest run wins
    unknown = [Run("t", 1, "process-capability@1.0.0", NOW, ("a",))]  # output not held here
    assert ind.cpks(unknown) == {} and ind.ppm(unknown) is None and ind.share_signed(unknown) is None
    cert = ind.certification(f.certificates, f.runs, NOW)
    assert cert["valid"] == 1 and cert["continuous"] == 1.0 and cert["suspended_in_year"] == 0
    stale = [Certificate("C-2", "valid", 50, days(1), ("process-capability",))]
    assert ind.certification(stale, f.runs, NOW)["continuous"] == 0.0  # no run of its model since issue
    hours, answered, waiting = ind.response_hours(f.notifications, NOW)
    assert hours == pytest.approx(12.0) and (answered, waiting) == (1, 0)
    open_ = [{"history": [("SENT", days(3)), ("RECEIVED", days(3))]}, {"history": [("CREATED", days(1))]}]
    assert ind.response_hours(open_, NOW) == (None, 0, 1)  # received is delivery, not an answer; unsent: none
    rows = [{"passed": False, "date": "2026-01-02"}, {"passed": True, "date": "2024-01-02"}, {"passed": True}]
    assert ind.hit_rate(rows) == (1 / 3, 1, 3)
    assert ind.hit_rate(rows, NOW - ind.YEAR) == (1.0, 1, 1)  # undated or old results are not recent


def test_the_levels_and_why():
    top = ind.assess(excellent(), NOW)
    assert top.level == "卓越级" and all(c.met for c in top.criteria)

    f = excellent()
    f.runs = [Run(r.txid, r.seq, r.model, r.at, r.datasets, None) for r in f.runs]  # outputs not held here
    a = ind.assess(f, NOW)
    assert a.level == "预防级"  # a valid capability certificate stands in for the attested Cpk
    missed = {c.key: c for c in a.criteria if c.met is not True}
    assert set(missed) == {"cpk", "ppm", "signed"} and all(c.met is None for c in missed.values())
    assert "judged the process capable" in next(c.detail for c in a.criteria if c.key == "capable")

    f = excellent()
    f.anchors["line-1"] = [days(45)]
    a = ind.assess(f, NOW)
    assert a.level == "保证级" and [c.key for c in a.criteria if c.met is False] == ["fresh"]

    f = excellent()
    f.inspections.append({"enterprise": f.did, "passed": False, "date": "2026-03-01"})
    assert ind.assess(f, NOW).level == "检验级"

    f = excellent()
    f.suspended = "抽查不合格"
    a = ind.assess(f, NOW)
    assert a.level == "检验级" and "抽查不合格" in next(c.detail for c in a.criteria if c.key == "standing")

    f = excellent()
    f.notifications.append({"id": "n-2", "history": [("SENT", days(10))]})
    a = ind.assess(f, NOW)
    assert a.level == "预防级" and [c.key for c in a.criteria if c.met is False] == ["responsive"]

    assert ind.assess(Facts("did:key:new", "New"), NOW).level is None
    levels = ind.region_summary([top, a, ind.assess(Facts("did:key:new", "New"), NOW)])
    assert levels["levels"] == {"检验级": 0, "保证级": 0, "预防级": 1, "卓越级": 1, "—": 1}
    assert levels["medians"]["coverage"] == {"median": 1.0, "known": 2}


def test_regions_by_gb_t_2260_prefix():
    assert ind.in_region("33", "330106") and ind.in_region("330000", "330106") and ind.in_region("3301", "330106")
    assert ind.in_region("330100", "330106") and not ind.in_region("330200", "330106")
    assert not ind.in_region("33", None)
    for bad in ("3", "33010", "abc", "3301067"):
        with pytest.raises(InvalidInput, match="GB/T 2260"):
            ind.region_code(bad)


def test_read_from_a_ledger(tmp_path, monkeypatch):
    from ..credentials.consortium import build

    c = build(tmp_path)
    try:
        c.issue("CQC-2026-0001")
        ledger = c.plant.ledger
        assert ind.notifications(ledger) == []  # no notification.transition on this log: nothing, no error
        facts = ind.read_facts(ledger)
        assert list(facts) == [c.maker.did]  # enterprises only
        f = facts[c.maker.did]
        assert f.declared == {"line-1": ("resistance",)} and len(f.anchors["line-1"]) == 2
        assert [r.model_id for r in f.runs] == ["process-capability"] and f.runs[0].output is None
        assert [(x.id, x.status, x.models) for x in f.certificates] == [("CQC-2026-0001", "valid",
                                                                         ("process-capability",))]  # fmt: skip
        assert f.inspections == [] and f.notifications == []
        now = datetime.now(UTC)
        a = ind.enterprise(ledger, c.maker.did, now)
        by = {i.key: i.value for i in a.indicators}
        assert by["coverage"] == 1.0 and by["anchored"] == 1.0 and by["valid"] == 1 and by["cpk_min"] is None
        assert by["continuous"] == 0.0  # not re-checked since issue: continuous certification has not run
        assert a.level == "保证级", [c for c in a.criteria if not c.met]

        # the maker's own node holds the attested outputs; each counts only once verified against its attestation
        result, _ = c.run(job="job-7")
        bent = {**result["output"], "pass": not result["output"]["pass"]}
        outputs = ind.verified_outputs(ledger, [result, {"attestation": result["attestation"], "output": bent},
                                                {"attestation": "x.y.z", "output": {}}, {"output": 3}])  # fmt: skip
        assert list(outputs.values()) == [result["output"]]
        a = ind.enterprise(ledger, c.maker.did, now, outputs)
        by = {i.key: i.value for i in a.indicators}
        assert by["cpk_min"] is not None and by["continuous"] == 1.0
        assert a.level in ("预防级", "卓越级") and next(x for x in a.criteria if x.key == "capable").met is not None
        # A page's few enterprises are read from their own entries and their certificates' runs; many, from
        # each type's entries once: the same facts either way.
        paged = ind.read_facts(ledger, [c.maker.did, c.cqc.did], outputs)
        monkeypatch.setattr(ind, "FEW", 0)
        assert ind.read_facts(ledger, [c.maker.did, c.cqc.did], outputs) == paged and paged[c.maker.did].certificates
        assert paged[c.maker.did].runs and paged[c.maker.did].certificates[0].models == ("process-capability",)

        with pytest.raises(NotFound):
            ind.enterprise(ledger, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", now)
        with pytest.raises(InvalidInput, match="certifier"):
            ind.enterprise(ledger, c.cqc.did, now)
    finally:
        c.close()


def test_the_commands_show_indicators_level_and_why(tmp_path, monkeypatch, capsys):
    import json

    from ..credentials.consortium import build
    from .test_supervise_cli import here

    c = build(tmp_path / "real")
    maker, reg = str(tmp_path / "real" / "maker"), str(tmp_path / "real" / "reg")
    try:
        c.issue("CQC-2026-0001")
        code, said = here(monkeypatch, capsys, "indicators", "enterprise", c.maker.did, "--home", reg)
        assert code == 0 and "capability level 质量管理能力等级: 保证级 (assurance)" in said
        assert "特性覆盖率" in said and "characteristics covered by attested runs" in said and "✗" in said
        code, said = here(monkeypatch, capsys, "indicators", "enterprise", c.maker.did, "--json", "--home", maker)
        doc = json.loads(said)
        assert doc["level"] == "保证级" and doc["level_en"] == "assurance"
        assert {x["key"]: x["met"] for x in doc["criteria"]}["continuous"] is False
        code, said = here(monkeypatch, capsys, "indicators", "enterprise", c.cqc.did, "--home", reg)
        assert code == 1 and "is a certifier" in said

        (tmp_path / "fig.json").write_text(
            json.dumps(
                {
                    "task": "zj-cpk",
                    "period": 0,
                    "vdaf": "Prio3Count",
                    "result": 7,
                    "count": 9,
                    "epsilon": 1.0,
                    "root": "ab",
                }
            )
        )
        (tmp_path / "bad.json").write_text(json.dumps({"task": "zj-cpk"}))
        code, said = here(monkeypatch, capsys, "indicators", "region", "330000", "--figure", str(tmp_path / "fig.json"),
                          "--json", "--home", reg)  # fmt: skip
        doc = json.loads(said)
        assert doc["summary"]["enterprises"] == 0 and doc["private_figures"][0]["result"] == 7  # no region recorded
        code, said = here(monkeypatch, capsys, "indicators", "region", "33", "--figure", str(tmp_path / "bad.json"),
                          "--home", reg)  # fmt: skip
        assert code == 1 and "not a released figure" in said
        code, said = here(monkeypatch, capsys, "indicators", "region", "zj", "--home", reg)
        assert code == 1 and "GB/T 2260" in said
    finally:
        c.close()
