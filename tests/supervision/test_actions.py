"""Regulator actions on a whole small consortium: who may act, on what, and what every node and verifier then
refuses — a suspended member's transactions (but answering and housekeeping), a suspended issuer's new
certificates (earlier ones stand unless withdrawn by name), a suspended model's runs."""

import time

import pytest

from qdsn.compute.job import Range, execute
from qdsn.credentials import certificate, sdjwt
from qdsn.crypto.jose import public_jwk
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import Ledger, tx
from qdsn.ledger.audit import audit
from qdsn.node import certify
from qdsn.node.follow import log_key
from qdsn.node.jobs import owner
from qdsn.node.verification import verify_online
from qdsn.supervision import actions

from ..credentials.consortium import build


@pytest.fixture
def c(tmp_path):
    world = build(tmp_path)
    yield world
    world.close()


def act(c, **payload):
    """The regulator's action put on the log (the consortium's operator is the plant's node here)."""
    doc = {"reason": "failed sampling inspection 抽查不合格"} | payload
    return c.plant.order([c.reg.sign("regulator.action", doc)])[0]


def checks(c, presentation):
    return {x.name: x for x in verify_online(c.lab, presentation, aud="did:web:buyer.example", nonce="n-1")}


def forge(c, issued, number):
    """What a suspended certification body can still do with its own key: sign a certificate (the ledger
    will not record it)."""
    v = sdjwt.verify(issued, lambda iss, h: c.cqc.key().verify_key.raw)
    claims = {k: v for k, v in v.claims.items() if k not in ("vct", "cnf", "_sd_alg")}
    claims |= {"certificate_number": number, "iat": int(time.time())}
    return certificate.issue(claims, c.cqc.key(), public_jwk(c.maker.key().verify_key.raw), kid=c.cqc.did)


def test_only_the_regulator_acts_and_bad_actions_are_refused_with_why(c):
    bad = c.cqc.sign("regulator.action", {"action": "suspend", "scope": "member", "subject": c.maker.did,
                                          "reason": "x"})  # fmt: skip
    with pytest.raises(PermissionDenied, match=r"role certifier may not submit regulator.action"):
        c.plant.order([bad])
    with pytest.raises(NotFound, match="not registered"):
        act(c, action="suspend", scope="member", subject="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    with pytest.raises(InvalidInput, match="not a certification body"):
        act(c, action="suspend", scope="issuer", subject=c.maker.did)
    with pytest.raises(PermissionDenied, match="does not suspend a regulator"):
        act(c, action="suspend", scope="member", subject=c.reg.did)
    with pytest.raises(NotFound, match="no model with code hash"):
        act(c, action="suspend", scope="model", subject="ab" * 32)
    with pytest.raises(Conflict, match="not suspended: there is nothing to reinstate"):
        act(c, action="reinstate", scope="member", subject=c.maker.did)
    for payload, field in (({"reason": ""}, "reason"), ({"reason": "   "}, "reason"), ({"scope": "model"}, "code hash"),
                           ({"subject": "CQC"}, "DID"), ({"action": "ban"}, "action"),
                           ({"credentials": ["CQC-1"], "scope": "member"}, "only an issuer")):  # fmt: skip
        doc = {"action": "suspend", "scope": "member", "subject": c.maker.did, "reason": "why"} | payload
        with pytest.raises(InvalidInput, match=field):
            c.reg.sign("regulator.action", doc)
    doc = {"action": "suspend", "scope": "member", "subject": c.maker.did}  # no reason at all
    with pytest.raises(InvalidInput, match="reason"):
        c.reg.sign("regulator.action", doc)
    with pytest.raises(InvalidInput, match="says why"):
        actions.payload(c.plant.ledger.state, "suspend", "member", c.maker.did, "  ")
    assert c.plant.ledger.state.standings == {}


def test_a_suspended_issuers_new_certificates_are_refused_and_earlier_ones_stand(c):
    before = c.issue("CQC-2026-0001")
    shown_before = c.present(before)
    assert all(x.ok for x in checks(c, shown_before).values())
    result = c.run(job="job-2")[0]  # a passing run, ready to back a second certificate

    act(c, action="suspend", scope="issuer", subject=c.cqc.did, notification="urn:uuid:n-1")
    held = c.plant.ledger.state.suspension("issuer", c.cqc.did)
    assert held is not None and held.notification == "urn:uuid:n-1"

    # the certification body's node refuses to issue
    with pytest.raises(PermissionDenied, match="authority to issue is suspended"):
        c.issue("CQC-2026-0002", result=result)
    # the ledger refuses the record whoever builds it
    record = {"credential": "CQC-2026-0002", "vct": certificate.VCT, "subject": c.maker.did, "hash": "0" * 64,
              "status_list": "https://cqc.example/status-lists/1", "index": 77}  # fmt: skip
    with pytest.raises(PermissionDenied, match=r"authority of .* to issue certificates is suspended"):
        c.plant.order([c.cqc.sign("credential.issue", record)])

    # a certificate it signs anyway is refused by every verifier, from the ledger, not from its own claims
    forged = c.present(forge(c, before, "CQC-2026-0003"))
    report = checks(c, forged)
    assert not report["authority"].ok and "suspended by the regulator" in report["authority"].detail
    assert not report["record"].ok
    # the certificate recorded before the suspension stands
    report = checks(c, shown_before)
    assert all(x.ok for x in report.values()) and "before that, and stands" in report["authority"].detail

    # it may still suspend its own certificates, not reinstate them
    certify.set_status(c.lab, "CQC-2026-0001", "suspended", "recheck failed")
    with pytest.raises(PermissionDenied, match="suspended"):
        certify.set_status(c.lab, "CQC-2026-0001", "valid", "recheck passed")

    act(c, action="reinstate", scope="issuer", subject=c.cqc.did, reason="corrective action verified 整改完成")
    assert c.plant.ledger.state.suspension("issuer", c.cqc.did) is None
    certify.set_status(c.lab, "CQC-2026-0001", "valid", "recheck passed")
    assert checks(c, c.present(c.issue("CQC-2026-0004", result=result)))["authority"].ok
    # the one signed while suspended stays refused: it was never recorded
    assert not checks(c, forged)["record"].ok


def test_named_certificates_are_withdrawn_and_restored_by_name(c):
    shown = c.present(c.issue("CQC-2026-0001"))
    with pytest.raises(NotFound, match="no certificate"):
        act(c, action="suspend", scope="issuer", subject=c.cqc.did, credentials=["CQC-404"])
    act(c, action="suspend", scope="issuer", subject=c.cqc.did, credentials=["CQC-2026-0001"])
    report = checks(c, shown)
    assert not report["authority"].ok and "withdrawn by the regulator" in report["authority"].detail
    with pytest.raises(Conflict, match="already withdrawn"):
        act(c, action="suspend", scope="issuer", subject=c.cqc.did, credentials=["CQC-2026-0001"])
    with pytest.raises(Conflict, match="already suspended"):
        act(c, action="suspend", scope="issuer", subject=c.cqc.did)
    act(c, action="reinstate", scope="issuer", subject=c.cqc.did, reason="authority back")
    assert not checks(c, shown)["authority"].ok  # the authority is back; the named certificate stays withdrawn
    act(c, action="reinstate", scope="issuer", subject=c.cqc.did, reason="re-examined", credentials=["CQC-2026-0001"])
    assert checks(c, shown)["authority"].ok
    with pytest.raises(Conflict, match="not withdrawn"):
        act(c, action="reinstate", scope="issuer", subject=c.cqc.did, reason="again", credentials=["CQC-2026-0001"])


def test_a_suspended_member_may_only_answer_and_keep_house(c):
    act(c, action="suspend", scope="member", subject=c.maker.did)
    decl = {"dataset": "line-2", "title": "Line 2", "kind": "measurements"}
    with pytest.raises(PermissionDenied, match=r"suspended by the regulator .* may not submit dataset.declare"):
        c.plant.order([c.maker.sign("dataset.declare", decl)])
    granted = {"dataset": "line-1", "requester": c.cqc.did, "action": "use", "point": "use", "allowed": True,
               "rule": "r", "reason": "ok"}  # fmt: skip
    with pytest.raises(PermissionDenied, match="granting anything"):
        c.plant.order([c.maker.sign("access.decision", granted)])
    c.plant.order([c.maker.sign("access.decision", granted | {"allowed": False, "reason": "suspended"})])
    c.cosign()  # witnessing goes on: the log stays checked by every member
    # the run of its data cannot be attested
    with pytest.raises(PermissionDenied, match="suspended"):
        c.run(job="job-9")
    act(c, action="reinstate", scope="member", subject=c.maker.did, reason="rectified")
    c.plant.order([c.maker.sign("dataset.declare", decl)])


def test_a_suspended_model_is_refused_by_jobs_and_by_the_ledger(c):
    ((name, model),) = c.plant.ledger.state.models.items()
    code = model.hash
    good = c.run(job="job-1")
    act(c, action="suspend", scope="model", subject=code, reason="model defect 模型缺陷")
    with pytest.raises(PermissionDenied, match="suspended by the regulator"):
        execute(owner(c.plant), c.blob, {"threshold": 1.33}, [Range("line-1", 0, 300)], "n", job="job-3")
    env = tx.from_leaf(c.plant.ledger.store.entry(txid=good[1]).leaf)
    replay = c.maker.sign("compute.attest", env.payload | {"job": "job-4"})
    with pytest.raises(PermissionDenied, match="suspended by the regulator"):
        c.plant.order([replay])
    # a model is named by its published id@version too
    doc = actions.payload(c.plant.ledger.state, "reinstate", "model", name, "fixed")
    assert doc["subject"] == code
    c.plant.order([c.reg.sign("regulator.action", doc)])
    c.run(job="job-5")


def test_standings_are_persisted_digested_and_replayed_alike(c, tmp_path):
    act(c, action="suspend", scope="member", subject=c.maker.did)
    act(c, action="suspend", scope="model", subject=next(iter(c.plant.ledger.state.models.values())).hash)
    act(c, action="reinstate", scope="member", subject=c.maker.did, reason="done")
    live = c.plant.ledger.state
    again = Ledger.open(str(tmp_path / "reg" / "ledger.db"))
    try:
        assert again.state.standings == live.standings and again.state.digest() == live.digest()
        report = audit(again.store)
        assert report.ok, report.reason
    finally:
        again.close()
    done = actions.history(c.plant.ledger)
    assert [(a.action, a.scope) for a in done] == [("suspend", "member"), ("suspend", "model"), ("reinstate", "member")]
    assert [s.scope for s in actions.in_force(live)] == ["model"]
    assert log_key(c.plant.ledger)  # the log itself is unchanged in form
