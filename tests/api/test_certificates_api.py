"""Certificates over the API: issued from an attested run, fetched by the holder, presented with
selective disclosure, verified by POST /verify down to the evidence, suspended by a failing re-run
and reinstated by a passing one (continuous certification)."""

import time

from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.credentials import sdjwt
from qdsn.credentials.issuers import metadata_key
from qdsn.crypto.jose import public_jwk
from qdsn.node import Node, NodeHome, certify
from qdsn.node.consumer import negotiate
from qdsn.node.follow import log_key

from ..conftest import LOOPBACK
from .test_jobs_api import ask, lab  # noqa: F401 — the fixture: a plant, a published model, offers


def test_issue_present_verify_and_follow_the_process(lab):  # noqa: F811
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    passed = ask(c["cqc"], a, blob)["result"]
    homes = {h: NodeHome.open(node.home.path.parent / h, "pw", scrypt_n=2**4) for h in ("reg", "cqc")}
    note = node.ledger.sign_checkpoint(homes["reg"].log_signer())
    note = node.ledger.witness(note, log_key(node.ledger), homes["cqc"].cosigner(), int(time.time()))
    lab_node = Node(homes["cqc"], operator=True, ledger=node.ledger)  # the certification body, one machine
    uri = "https://testserver/status-lists/1"
    certify.status_lists(lab_node).create(uri)
    subject = certify.Subject("CQC-2026-0007", ["GB/T 5023.3-2008"], "PVC-insulated cable", "BV 2.5 mm²",
                              "Hangzhou plant 1", credit_code="91330100MA2B3C4D5E")  # fmt: skip
    certify.issue(lab_node, passed, subject, uri, note=note)
    http = TestClient(create_app(lab_node), client=LOOPBACK)
    holder = NodeClient(str(http.base_url), node.home.key(), node.did, http=http)
    (sd,) = holder.call("GET", "/credentials")["credentials"]
    jwk = metadata_key(str(http.base_url).rstrip("/"), homes["cqc"].did, http)  # as an HTTPS issuer's verifier finds it
    assert jwk["x"] == public_jwk(homes["cqc"].key())["x"]
    token = http.get("/status-lists/1")
    assert token.headers["content-type"].startswith("application/statuslist+jwt")

    shown = sdjwt.present(sd, ["indicators"], node.home.key(), aud="did:web:buyer.example", nonce="q-1")
    report = http.post("/verify", json={"presentation": shown, "aud": "did:web:buyer.example", "nonce": "q-1",
                                        "quorum": 1}).json()  # fmt: skip
    assert report["ok"], report
    assert [x["name"] for x in report["checks"]] == ["issuer", "signature", "disclosures", "key binding", "status",
                                                     "record", "authority", "checkpoint", "attestation",
                                                     "criteria"]  # fmt: skip
    assert report["checks"][-1]["checked"] is False  # the run's output stayed hidden: "not shown", not a pass
    assert "site" not in report["checks"][2]["detail"] and "indicators" in report["checks"][2]["detail"]

    failed = ask(c["cqc"], a, blob, parameters={"threshold": 5.0})["result"]  # a run on the same data, stricter
    assert certify.recheck(lab_node, "CQC-2026-0007", failed) == "suspended"
    report = http.post("/verify", json={"presentation": shown}).json()
    assert not report["ok"] and next(x for x in report["checks"] if x["name"] == "status")["detail"].startswith(
        "suspended")  # fmt: skip
    assert lab_node.ledger.state.credentials["CQC-2026-0007"].status == "suspended"
    a2 = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]  # a fresh count
    job = ask(c["cqc"], a2, blob)
    again = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})["result"]
    assert certify.recheck(lab_node, "CQC-2026-0007", again) == "valid"
    assert http.post("/verify", json={"presentation": shown}).json()["ok"]
    assert http.post("/verify", json={"presentation": "not-a-presentation"}).json()["ok"] is False

    # on a schedule: new readings arrive; the certification body's round asks for a run on them
    rows = [
        {"characteristic": "resistance", "value": 17.5 + (i % 7) / 100, "time": f"2026-03-02T09:00:{i:02d}Z"}
        for i in range(50)
    ]
    batch = node.vault.add_batch("line-1", rows)
    node.vault.mark_anchored(batch, node.order([node.home.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    a3 = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    certify.schedule(lab_node, "CQC-2026-0007", "http://maker", a3, blob, {"threshold": 20.0}, every=3600)
    (done,) = certify.run_due(lab_node, lambda url: c["cqc"])
    assert done == ("CQC-2026-0007", "suspended")  # judged against a threshold no process meets
    assert certify.run_due(lab_node, lambda url: c["cqc"]) == []  # not due again for an hour
    assert certify.run_due(lab_node, lambda url: c["cqc"], now=int(time.time()) + 7200) == [
        ("CQC-2026-0007", "suspended")]  # due, but nothing new was anchored: no job  # fmt: skip

    class Replaying:  # the holder's node answers the next round with an old passing run, or another job's
        def __init__(self, answer):
            self.answer = answer

        def call(self, method, path, payload=None, **kw):
            return self.answer(payload)

    batch = node.vault.add_batch("line-1", rows)
    node.vault.mark_anchored(batch, node.order([node.home.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    later = int(time.time()) + 3 * 3600
    for answer in (lambda p: {"id": "urn:uuid:replayed", "state": "done", "result": again},
                   lambda p: c["cqc"].call("POST", "/jobs", p | {"parameters": {"threshold": 1.0}})):  # fmt: skip
        assert certify.run_due(lab_node, lambda url, answer=answer: Replaying(answer), now=later) == [
            ("CQC-2026-0007", "suspended")]  # fmt: skip
        later += 7200
    assert lab_node.ledger.state.credentials["CQC-2026-0007"].status == "suspended"


def test_any_member_serves_the_consortium_trust_file(tmp_path):
    from qdsn.node import trust

    from ..credentials.consortium import build

    c = build(tmp_path)
    try:
        got = TestClient(create_app(c.lab), client=LOOPBACK).get("/.well-known/qdsn-trust.json")
        assert got.status_code == 200
        anchor = trust.load(got.json())  # a complete, self-consistent trust file
        assert anchor.fingerprint == trust.export(c.plant.ledger)["fingerprint"]
        assert anchor.log_key.text() == log_key(c.plant.ledger).text() and anchor.regulator == c.reg.did
        assert {v.name for v in anchor.cosigners} == {c.cqc.did, c.maker.did} and anchor.quorum == 2
    finally:
        c.close()
