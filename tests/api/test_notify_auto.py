"""A certificate suspended by continuous certification raises a quality notification to its holder,
which is delivered to the holder's node, answered there and closed by the certification body."""

import time

import pytest

from qdsn.compute import attest, package
from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import Conflict
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import Checkpoint, cosigned_message
from qdsn.node import Node, NodeHome, certify, notify
from qdsn.node.consumer import negotiate
from qdsn.node.follow import log_key
from qdsn.supervision import notifications as qn

from .test_jobs_api import ask, lab  # noqa: F401 — the fixture: a plant, a published model, offers


def test_a_suspension_raises_an_investigation_the_maker_answers(lab):  # noqa: F811
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    passed = ask(c["cqc"], a, blob)["result"]
    homes = {h: NodeHome.open(node.home.path.parent / h, "pw", scrypt_n=2**4) for h in ("reg", "cqc")}
    note = node.ledger.sign_checkpoint(homes["reg"].log_signer())
    note = node.ledger.witness(note, log_key(node.ledger), homes["cqc"].cosigner(), int(time.time()))
    lab_node = Node(homes["cqc"], operator=True, ledger=node.ledger)
    uri = "https://testserver/status-lists/1"
    certify.status_lists(lab_node).create(uri)
    subject = certify.Subject("CQC-2026-0009", ["GB/T 5023.3-2008"], "PVC-insulated cable", "BV 2.5 mm²",
                              "Hangzhou plant 1")  # fmt: skip
    certify.issue(lab_node, passed, subject, uri, note=note)
    assert node.ledger.state.notices == {}

    failed = ask(c["cqc"], a, blob, parameters={"threshold": 5.0})["result"]
    assert certify.recheck(lab_node, "CQC-2026-0009", failed) == "suspended"
    (n,) = node.ledger.state.notices.values()
    assert (n.sender, n.recipient, n.classification, n.severity, n.state) == (
        lab_node.did, node.did, "investigation", "MAJOR", "CREATED")  # fmt: skip
    body = notify.content(lab_node, n.id)
    assert body.affected.certificates == ["CQC-2026-0009"] and body.affected.batches == ["line-1#0+200"]
    assert "suspended by continuous certification" in body.description and "Cpk" in body.description
    assert notify.content(node, n.id) is None  # not delivered yet

    assert notify.send(lab_node, n.id, c["cqc"])["state"] == "RECEIVED"
    assert notify.content(node, n.id) == body  # stored at the maker's node before RECEIVED was recorded
    for state in ("ACKNOWLEDGED", "ACCEPTED"):
        assert c["maker"].call("POST", f"/notifications/{n.id}/transitions", {"state": state})["state"] == state
    notify.answer(lab_node, n.id, "CLOSED", "corrective action seen in the next passing run")
    assert [h["state"] for h in notify.show(node, n.id)["history"]] == [
        "CREATED", "SENT", "RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "CLOSED"]  # fmt: skip

    a2 = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a2, blob)
    again = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})["result"]
    assert certify.recheck(lab_node, "CQC-2026-0009", again) == "valid"
    assert len(node.ledger.state.notices) == 1  # a reinstatement raises nothing

    # On a schedule, the round knows the holder's API: the notification is delivered by the next round.
    rows = [{"characteristic": "resistance", "value": 17.5 + (i % 7) / 100, "time": f"2026-03-02T09:00:{i:02d}Z"}
            for i in range(50)]  # fmt: skip
    batch = node.vault.add_batch("line-1", rows)
    node.vault.mark_anchored(batch, node.order([node.home.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    a3 = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    certify.schedule(lab_node, "CQC-2026-0009", "http://maker", a3, blob, {"threshold": 20.0}, every=3600)
    assert certify.run_due(lab_node, lambda url: c["cqc"]) == [("CQC-2026-0009", "suspended")]
    (second,) = [x for x in node.ledger.state.notices.values() if x.state == "CREATED"]
    assert notify.content(lab_node, second.id).affected.batches == ["line-1#200+50"]
    asked = []
    assert notify.deliver_due(lab_node, lambda url: asked.append(url) or c["cqc"]) == [second.id]
    assert asked == ["http://maker"] and node.ledger.state.notices[second.id].state == "RECEIVED"
    assert notify.deliver_due(lab_node, lambda url: c["cqc"]) == []  # delivered: not again


def test_an_spc_run_out_of_control_raises_an_investigation_once(lab):  # noqa: F811
    node, c, blob = lab
    spc, m = package.load(package.builtin("spc-stability"))
    cqc = NodeHome.open(node.home.path.parent / "cqc", "pw", scrypt_n=2**4)
    node.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(spc),
                                           "manifest": m.model_dump(mode="json")})])  # fmt: skip
    shifted = [{"characteristic": "resistance", "value": 17.95 + (i % 3) / 100, "time": f"2026-03-01T10:00:{i:02d}Z"}
               for i in range(50)]  # fmt: skip
    batch = node.vault.add_batch("line-1", shifted)
    node.vault.mark_anchored(batch, node.order([node.home.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, spc, parameters={}, datasets=[{"dataset": "line-1", "first": 0, "count": 250}])
    result = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})["result"]
    assert result["output"]["pass"] is False
    lab_node = Node(cqc, operator=True, ledger=node.ledger)
    claims = attest.verify(result["attestation"], node.ledger, output=result["output"])
    n = notify.on_run(lab_node, claims, result["output"], result["attestation"], url="http://maker")
    assert (n.recipient, n.classification, n.severity) == (node.did, "investigation", "MAJOR")
    assert "resistance: nelson1" in n.description and n.affected.batches == ["line-1#0+250"]
    assert notify.on_run(lab_node, claims, result["output"], result["attestation"]) is None  # once per run
    assert notify.deliver_due(lab_node, lambda url: c["cqc"]) == [n.id]
    assert node.ledger.state.notices[n.id].state == "RECEIVED"

    passed = ask(c["cqc"], negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"], blob)
    pc_claims = attest.verify(passed["result"]["attestation"], node.ledger)
    assert notify.on_run(lab_node, pc_claims, passed["result"]["output"], passed["result"]["attestation"]) is None


def test_a_split_view_this_node_recorded_alerts_the_other_side_once(lab):  # noqa: F811
    node, _, _ = lab
    cqc = NodeHome.open(node.home.path.parent / "cqc", "pw", scrypt_n=2**4)
    lab_node = Node(cqc, operator=True, ledger=node.ledger)
    size = node.ledger.size
    origin, root = node.ledger.origin, node.ledger.root_at(size)

    def claim(key, did, r):
        msg = cosigned_message(Checkpoint(origin, size, r).text(), 7)
        return {"signer": did, "root": r.hex(), "timestamp": 7, "signature": b64url_encode(key.sign(msg))}

    forked = claim(node.home.key(), node.did, bytes(32))  # the maker's node claims another root
    alert = cqc.sign("alert.raise", {"kind": "split-view", "origin": origin, "size": size,
                                     "claims": [claim(cqc.key(), cqc.did, root), forked]})  # fmt: skip
    lab_node.submit([alert])
    (n,) = notify.on_split_views(lab_node)
    assert (n.recipient, n.classification, n.severity) == (node.did, "alert", "CRITICAL")
    assert tx.txid(alert.leaf()) in n.description and bytes(32).hex() in n.description
    assert notify.on_split_views(lab_node) == []
    notify._scanned.clear()  # as after a restart: the whole log is read again, and nothing raised twice
    assert notify.on_split_views(lab_node) == []
    assert len(node.ledger.state.notices) == 1
    # Two rounds sending it at once: the second finds SENT recorded by the first and goes on delivering.
    body = notify.content(lab_node, n.id)
    lab_node.submit([cqc.sign("notification.transition", body.transition("SENT"))])
    notify._record(lab_node, n.id, body.transition("SENT"), done=("SENT",))
    with pytest.raises(Conflict, match="cannot move to SENT"):
        notify._record(lab_node, n.id, body.transition("SENT"), done=())
    assert [h[0] for h in qn.fold(node.ledger.store.rows_of_type("notification.transition"))[n.id].history] == [
        "CREATED", "SENT"]  # fmt: skip
