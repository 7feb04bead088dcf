"""`qdsn supervise`: a regulator records results, reads the classes with their reasons, commits a plan, draws
it and anyone verifies the draw; an enterprise cannot plan."""

from __future__ import annotations

import json

from qdsn.node import NodeHome

from ..ledger.conftest import member
from .test_errors import FAST, PASSPHRASE, qdsn, refused


def test_the_regulator_plans_draws_and_a_member_verifies(tmp_path, monkeypatch, capsys):
    reg, acme = tmp_path / "reg", tmp_path / "acme"
    regulator = NodeHome.init(reg, "regulator", "Market Bureau", PASSPHRASE, scrypt_n=FAST)
    maker = NodeHome.init(acme, "enterprise", "Zhejiang Cable", PASSPHRASE, scrypt_n=FAST,
                          ledger_url=str(reg / "ledger.db"))  # fmt: skip
    regulator.submit("identity.register", maker.registration())
    firms = [member("enterprise", f"Firm {i}") for i in range(6)]
    for f in firms:
        regulator.submit("identity.register", f.register_payload() | {"region": "330106"})

    def run_(home, words, *args, ok=True):  # type: ignore[no-untyped-def]
        said = qdsn(monkeypatch, capsys, words, [*args, "--home", str(home)], passphrase=PASSPHRASE, home=home)
        if ok:
            assert said.code == 0, said
        return said

    for day in ("2026-01-10", "2026-02-10"):
        out = run_(reg, "supervise inspect", firms[0].did, "--product", "BV 2.5mm²", "--standard", "GB/T 5023.3-2008",
                   "--failed", "--date", day).out  # fmt: skip
        assert "failed (不合格)" in out and "Firm 0" in out
    listed = json.loads(run_(reg, "supervise inspections", firms[0].did, "--json").out)
    assert [r["passed"] for r in listed] == [False, False]

    classes = json.loads(run_(reg, "supervise risk", "--json", "--as-of", "2026-03-31").out)
    assert len(classes) == 7 and classes[0]["enterprise"] == firms[0].did and classes[0]["class"] == "C"
    assert abs(sum(f["contribution"] for f in classes[0]["factors"]) - classes[0]["score"]) < 1e-9
    table = run_(reg, "supervise risk", "--as-of", "2026-03-31").out
    assert "Firm 0" in table and "C 较高风险" in table and firms[0].did in table.replace("\n", "")
    explained = run_(reg, "supervise risk", "--explain", firms[0].did, "--as-of", "2026-03-31").out
    assert "2 of 2 inspections failed" in explained and "监督抽查结果" in explained
    assert json.loads(run_(reg, "supervise risk", "--region", "3301", "--json").out)[0]["name"] == "Firm 0"
    refused(run_(reg, "supervise risk", "--explain", "did:key:z6MkNobody", ok=False))
    refused(run_(reg, "supervise risk", "--as-of", "31.3.2026", ok=False))

    refused(run_(acme, "supervise plan create", "2026-Q1", "--title", "电线电缆", "--count", "2", ok=False))
    out = run_(reg, "supervise plan create", "2026-Q1", "--title", "电线电缆", "--count", "3", "--inspector", "E01",
               "--inspector", "E02", "--inspector", "E03", "--as-of", "2026-03-31").out  # fmt: skip
    assert "committed on the ledger" in out and "7 enterprises" in out
    refused(run_(reg, "supervise plan create", "2026-Q1", "--title", "again", "--count", "1", ok=False))
    refused(run_(reg, "supervise plan create", "p2", "--title", "t", "--count", "1", "--weights", "A=1", ok=False))
    assert run_(acme, "supervise plan verify", "2026-Q1", ok=False).code == 2  # committed, not drawn
    drawn = json.loads(run_(reg, "supervise plan draw", "2026-Q1", "--json").out)
    assert len(drawn["selection"]) == 3 and all(len(t) == 2 for t in drawn["inspectors"])
    refused(run_(reg, "supervise plan draw", "2026-Q1", ok=False))
    assert "is the one the seed gives" in run_(acme, "supervise plan verify", "2026-Q1").out
    plans = json.loads(run_(acme, "supervise plan list", "--json").out)
    assert plans[0]["seed"] == drawn["seed"] and plans[0]["selection"] == drawn["selection"]
    refused(run_(acme, "supervise plan verify", "no-such-plan", ok=False))
    refused(run_(reg, "supervise inspect", firms[0].did, "--product", "x", "--standard", "y", "--passed",
                 "--date", "2026-03-01", "--plan", "no-such-plan", ok=False))  # fmt: skip


def test_a_draw_the_seed_does_not_give_is_named_by_verify(tmp_path, monkeypatch, capsys):
    """A regulator that reveals its real seed with a selection of its own choosing (a raw `ledger append`) gets
    past every replica's fold, which cannot recompute classes, but not past `plan verify` on a member's node."""
    from qdsn.supervision import draw

    reg = tmp_path / "reg"
    regulator = NodeHome.init(reg, "regulator", "Market Bureau", PASSPHRASE, scrypt_n=FAST)
    firms = [member("enterprise", f"Firm {i}") for i in range(5)]
    for f in firms:
        regulator.submit("identity.register", f.register_payload())

    def run_(*words, ok=True):  # type: ignore[no-untyped-def]
        said = qdsn(monkeypatch, capsys, words[0], [*words[1:], "--home", str(reg)], passphrase=PASSPHRASE, home=reg)
        if ok:
            assert said.code == 0, said
        return said

    run_("supervise plan create", "p", "--title", "t", "--count", "2")
    (kept,) = (reg / "inspection-seeds").glob("*.json")
    seed = json.loads(kept.read_text())["seed"]
    ledger = regulator.ledger()
    honest = draw.draw_payload(ledger, "p", seed)
    ledger.close()
    chosen = [f.did for f in firms if f.did not in honest["selection"]][:2]
    run_("ledger append", "inspection.draw", json.dumps({"plan": "p", "seed": seed, "selection": chosen}))
    said = run_("supervise plan verify", "p", ok=False)
    assert said.code == 1 and "selection 1 is" in said.out and "the seed draws" in said.out, said
