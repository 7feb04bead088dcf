"""The code-request flow over the API: a certification body sends a published model to the data, the
owner approves (or its offer pre-approved that code), the run is metered and attested."""

import base64
import random

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.compute import attest, package
from qdsn.errors import Conflict, InvalidInput, PermissionDenied
from qdsn.node import Node, NodeHome
from qdsn.node.consumer import negotiate
from qdsn.node.provider import publish

from ..conftest import LOOPBACK
from .conftest import FAST


def offer(maker, uid, extra=()):
    cons = [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"},
            {"leftOperand": "count", "operator": "lteq", "rightOperand": 2}, *extra]  # fmt: skip
    return {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
            "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:line-1",
            "permission": [{"action": "compute", "constraint": cons}]}  # fmt: skip


@pytest.fixture
def lab(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    homes = {n: NodeHome.init(tmp_path / n, role, n, "pw", ledger_url=shared, scrypt_n=FAST)
             for n, role in (("maker", "enterprise"), ("cqc", "certifier"), ("rival", "certifier"))}  # fmt: skip
    for h in homes.values():
        reg.submit("identity.register", h.registration())
    maker, cqc = homes["maker"], homes["cqc"]
    node = Node(maker, operator=True)
    decl = {"dataset": "line-1", "title": "Line 1", "kind": "measurements", "characteristics": [
        {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}]}  # fmt: skip
    node.submit([maker.sign("dataset.declare", decl)])
    node.vault.create("line-1", "measurements")
    rng = random.Random(3)
    rows = [{"characteristic": "resistance", "value": round(rng.gauss(17.55, 0.08), 3),
             "time": f"2026-03-01T09:{i // 60:02d}:{i % 60:02d}Z"} for i in range(200)]  # fmt: skip
    batch = node.vault.add_batch("line-1", rows)
    node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    blob, m = package.load(package.builtin("process-capability"))
    h = package.code_hash(blob)
    node.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": h,
                                           "manifest": m.model_dump(mode="json")})])  # fmt: skip
    publish(node, "line-1", offer(maker, "urn:qdsn:offer:line-1:compute"))
    named = {"leftOperand": "qdsn:modelHash", "operator": "eq", "rightOperand": h}  # the owner pre-approves this code
    publish(node, "line-1", offer(maker, "urn:qdsn:offer:line-1:pc", [named]))
    http = TestClient(create_app(node), client=LOOPBACK)
    clients = {n: NodeClient(str(http.base_url), k.key(), k.did, http=http) for n, k in homes.items()}
    yield node, clients, blob
    node.close()


def ask(client, agreement, blob, **kw):
    body = {"agreementId": agreement, "archive": base64.b64encode(blob).decode(), "nonce": "nonce-12345",
            "purpose": "certification", "parameters": {"threshold": 1.33},
            "datasets": [{"dataset": "line-1", "first": 0, "count": 200}]} | kw  # fmt: skip
    return client.call("POST", "/jobs", body)


def test_the_owner_approves_and_the_result_is_attested(lab):
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)
    assert job["state"] == "pending" and job["model"] == "process-capability@1.0.2"
    assert [j["id"] for j in c["maker"].call("GET", "/jobs")["jobs"]] == [job["id"]]
    assert c["rival"].call("GET", "/jobs")["jobs"] == []
    with pytest.raises(PermissionDenied, match="only the data's owner"):
        c["cqc"].call("POST", f"/jobs/{job['id']}/approval", {})
    done = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})
    assert done["state"] == "done" and done["result"]["output"]["pass"] is True
    seen = c["cqc"].call("GET", f"/jobs/{job['id']}")
    claims = attest.verify(seen["result"]["attestation"], node.ledger, output=seen["result"]["output"],
                           nonce="nonce-12345")  # fmt: skip
    assert claims["inputs"][0]["count"] == 200
    (m,) = [x for x in c["cqc"].call("GET", f"/usage?agreement={a}")["meters"]]
    assert m["uses"] == 1 and m["records"] == 200 and m["compute_seconds"] > 0
    with pytest.raises(Conflict, match="is done"):
        c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})


def test_a_preapproved_model_runs_at_once_and_counts(lab):
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    assert ask(c["cqc"], a, blob)["state"] == "done"
    assert ask(c["cqc"], a, blob)["state"] == "done"
    with pytest.raises(PermissionDenied, match="count must be lteq 2, was 3"):
        ask(c["cqc"], a, blob)


def test_refusals_and_denials(lab, tmp_path):
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    with pytest.raises(PermissionDenied, match="purpose must be eq 'certification', was 'marketing'"):
        ask(c["cqc"], a, blob, purpose="marketing")
    with pytest.raises(InvalidInput, match="the parameters do not fit process-capability's schema"):
        ask(c["cqc"], a, blob, parameters={"threshold": "high"})
    other = package.archive([(p, d + b"\n# changed" if p == "model.py" else d) for p, d in package.unpack(blob)])
    with pytest.raises(PermissionDenied, match="not published on the ledger"):
        ask(c["cqc"], a, other)
    with pytest.raises(PermissionDenied, match="another consumer"):
        ask(c["rival"], a, blob)
    job = ask(c["cqc"], a, blob)
    denied = c["maker"].call("POST", f"/jobs/{job['id']}/denial", {"reason": "audit pending"})
    assert denied["state"] == "denied" and c["cqc"].call("GET", f"/jobs/{job['id']}")["reason"] == "audit pending"


def test_what_a_certifier_sends_is_checked_before_it_is_read(lab):
    import tracemalloc

    from qdsn.api.app import MAX_JOB_BODY
    from qdsn.errors import InvalidInput, QDSNError

    from ..compute.test_package import gnu_sparse

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match=r"'model\.py' is a GNU sparse file"):
            ask(c["cqc"], a, gnu_sparse("model.py", 129 << 20) + bytes(1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak:,} bytes allocated to refuse a 1,536-byte archive"
    entries = package.unpack(blob)
    with pytest.raises(InvalidInput, match=r"'model\.py' is both a file and a folder"):
        ask(c["cqc"], a, package.archive([*entries, ("model.py/x.py", b"")]))
    with pytest.raises(InvalidInput, match=r"larger than .* a model archive may be"):  # refused before it is decoded
        c["cqc"].call("POST", "/jobs", {"agreementId": a, "archive": "A" * (package.MAX_ARCHIVE_BASE64 + 4),
                                        "nonce": "nonce-12345", "datasets": []})  # fmt: skip
    with pytest.raises(QDSNError, match=f"bodies are limited to {MAX_JOB_BODY} bytes"):
        c["cqc"].call("POST", "/jobs", {"agreementId": a, "archive": "A" * MAX_JOB_BODY})
    assert c["maker"].call("GET", "/jobs")["jobs"] == []  # nothing was kept of any of them


def test_every_failure_of_a_run_ends_the_job_failed_with_its_reason(lab, monkeypatch):
    from qdsn.node import jobs as node_jobs

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    unanchored = ask(c["cqc"], a, blob, datasets=[{"dataset": "line-1", "first": 150, "count": 100}])
    failed = c["maker"].call("POST", f"/jobs/{unanchored['id']}/approval", {})  # execute refuses the range
    assert failed["state"] == "failed" and "records 150–249 of line-1 are not all anchored" in failed["reason"]
    assert c["cqc"].call("GET", f"/jobs/{unanchored['id']}")["reason"] == failed["reason"]  # the requester sees why

    job = ask(c["cqc"], a, blob)

    def ledger_down(*_):
        raise OSError("the ledger's disk is full")

    monkeypatch.setattr(node_jobs, "record", ledger_down)  # the run is fine; putting it on the ledger is not
    failed = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})
    assert failed["state"] == "failed" and "could not be recorded on the ledger" in failed["reason"]
    assert failed["result"] is None  # nothing unrecorded leaves
    with pytest.raises(Conflict, match="is failed"):
        c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})
    assert {j["state"] for j in c["maker"].call("GET", "/jobs")["jobs"]} == {"failed"}


def test_a_run_stopped_in_the_node_itself_is_not_left_approved(lab, monkeypatch):
    from qdsn.node import jobs as node_jobs

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)

    def stopped(*_, **__):
        raise KeyboardInterrupt  # the operator stops the node while the model runs

    monkeypatch.setattr(node_jobs, "execute", stopped)
    with pytest.raises(KeyboardInterrupt):
        node_jobs.approve(node, job["id"])
    seen = c["cqc"].call("GET", f"/jobs/{job['id']}")
    assert seen["state"] == "failed" and seen["reason"].startswith("interrupted")

    other = ask(c["cqc"], a, blob)  # approved by a process that left no trace of itself (an older node)
    stored, _ = node_jobs._store(node).get(other["id"])
    node_jobs._store(node).set(stored, "approved")
    seen = c["cqc"].call("GET", f"/jobs/{other['id']}")
    assert seen["state"] == "failed" and seen["reason"].startswith("interrupted")


def test_a_claimed_job_lives_as_long_as_the_process_that_claimed_it():
    import subprocess
    import time

    from qdsn.node.jobs import RUN_LASTS, _alive, _runner

    me = _runner()
    assert _alive(me)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not _alive(me | {"pid": gone.pid})  # its pid may come back, its start time does not
    assert not _alive(me | {"started": str(int(me["started"]) + 1)})
    assert not _alive(me | {"boot": "another-boot"}) and not _alive(None)
    elsewhere = me | {"pidns": "pid:[1]"}  # another container: taken to live as long as a run may
    assert _alive(elsewhere) and not _alive(elsewhere | {"at": time.time() - RUN_LASTS - 1})


def test_the_run_log_stays_with_the_owner(lab, tmp_path):
    """What a model writes beside its output — a covert channel if it reached the requester — is the owner's."""
    import json

    from qdsn.ledger import tx

    node, c, _ = lab
    folder = tmp_path / "talker"
    folder.mkdir()
    leak = "17.512,17.498,17.533"
    (folder / "m.py").write_text(f"import sys\nsys.stdin.read()\nsys.stderr.write('{leak}')\nsys.exit(3)\n")
    schema = {"type": "object", "additionalProperties": False, "properties": {"pass": {"type": "boolean"}}}
    (folder / "manifest.json").write_text(json.dumps({
        "id": "talker", "version": "1.0.0", "entrypoint": "m.py", "description": "test model",
        "reads": {"kinds": ["measurements"]}, "parameters": {"type": "object"}, "outputs": schema, "exports": ["pass"],
    }))  # fmt: skip
    blob, m = package.load(folder)
    published = {"model": m.id, "version": m.version, "hash": package.code_hash(blob), "manifest": m.model_dump()}
    node.order([tx.sign_tx("model.publish", published, c["cqc"].key, c["cqc"].did)])
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob, parameters={})
    ran = c["maker"].call("POST", f"/jobs/{job['id']}/approval", {})
    assert ran["state"] == "failed" and ran["reason"] == "it exited with an error"
    assert leak in ran["result"]["log"] and "exit code 3" in ran["result"]["log"]  # the owner reads it
    seen = c["cqc"].call("GET", f"/jobs/{job['id']}")
    assert seen["state"] == "failed" and leak not in json.dumps(seen) and "log" not in seen["result"]
    assert all(leak not in json.dumps(j) for j in c["cqc"].call("GET", "/jobs")["jobs"])


def test_one_approval_runs_a_job(lab):
    """Two approvals (or an approval and a denial) of one pending job, from two processes: one wins."""
    from qdsn.node import jobs as node_jobs

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)
    first, second = node_jobs._store(node), node_jobs.JobStore(node.policies.engine)
    pending, _ = second.get(job["id"])
    first.claim(pending)
    with pytest.raises(Conflict, match="is approved"):
        second.claim(pending)  # read while pending, claimed by another meanwhile
    with pytest.raises(Conflict, match="is approved"):
        second.end(pending, "denied", "too late")


def test_a_request_is_authorized_before_anything_is_checked_against_its_schemas(lab):
    """A rival with no agreement sent a `"pattern": "^(a+)+$"` manifest and `"a" * 25 + "!"`: the node
    froze, Python's `re` holding the GIL. Who asks is checked first; such schemas are refused outright."""
    import json
    import time

    from qdsn.errors import NotFound

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]

    def evil(parameters):
        m = {"id": "evil", "version": "1.0.0", "entrypoint": "m.py", "description": "d",
             "reads": {"kinds": ["measurements"]}, "parameters": parameters,
             "outputs": {"type": "object", "additionalProperties": False, "properties": {"pass": {"type": "boolean"}}},
             "exports": ["pass"]}  # fmt: skip
        return package.archive([("manifest.json", json.dumps(m).encode()), ("m.py", b"print(1)\n")])

    redos = evil({"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}})
    slow = {"x": "a" * 40 + "!"}
    t = time.monotonic()
    with pytest.raises(NotFound, match="no agreement"):
        ask(c["rival"], "urn:no-such-agreement", redos, parameters=slow)
    with pytest.raises(PermissionDenied, match="another consumer"):
        ask(c["rival"], a, redos, parameters=slow)
    with pytest.raises(InvalidInput, match=r"parameters\.properties\.x: pattern is not allowed"):
        ask(c["cqc"], a, redos, parameters=slow)
    with pytest.raises(InvalidInput, match=r"parameters: \$ref is not allowed"):  # it recursed into a 500
        ask(c["cqc"], a, evil({"type": "object", "$ref": "#"}), parameters={})
    assert time.monotonic() - t < 5
    with pytest.raises(PermissionDenied, match="not published on the ledger"):  # a schema fit for a manifest
        ask(c["cqc"], a, evil({"type": "object", "properties": {"x": {"type": "string", "maxLength": 8}}}),
            parameters={"x": "a" * 40})  # fmt: skip
    with pytest.raises(InvalidInput, match="the parameters do not fit process-capability's schema at threshold"):
        ask(c["cqc"], a, blob, parameters={"threshold": "a" * 40})
    assert c["maker"].call("GET", "/jobs")["jobs"] == []


def test_other_decisions_do_not_wait_for_a_run(lab, monkeypatch):
    """The node decides one use at a time, but a model's run is not part of the decision: while it runs,
    another decision (a transfer, another job) takes the lock at once."""
    from qdsn.node import jobs as node_jobs

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)
    free, run = [], node_jobs.execute

    def watched(*args, **kw):
        free.append(node.deciding.acquire(blocking=False))
        if free[-1]:
            node.deciding.release()
        return run(*args, **kw)

    monkeypatch.setattr(node_jobs, "execute", watched)
    done = node_jobs.approve(node, job["id"])
    assert free == [True] and done.state == "done"
    (m,) = c["cqc"].call("GET", f"/usage?agreement={a}")["meters"]
    assert m["uses"] == 1 and m["compute_seconds"] > 0  # metered once, with its run's seconds
    steps = []
    again = ask(c["cqc"], a, blob)
    assert node_jobs.approve(node, again["id"], progress=steps.append).state == "done"
    assert steps == ["deciding", "running", "recording"]


def test_runs_that_overlap_never_exceed_the_agreements_count(lab, monkeypatch):
    """Three approvals at once under an agreement of at most two uses: two run, one is denied — a claimed
    run counts as a use before its use is on the ledger."""
    import threading
    import time

    from qdsn.node import jobs as node_jobs

    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    asked = [ask(c["cqc"], a, blob)["id"] for _ in range(3)]
    run = node_jobs.execute

    def slow(*args, **kw):
        time.sleep(0.5)  # the runs overlap
        return run(*args, **kw)

    monkeypatch.setattr(node_jobs, "execute", slow)
    ended = {}
    threads = [threading.Thread(target=lambda j=j: ended.update({j: node_jobs.approve(node, j)})) for j in asked]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    states = sorted(j.state for j in ended.values())
    assert states == ["denied", "done", "done"], [(j.state, j.reason) for j in ended.values()]
    assert "count must be lteq 2, was 3" in next(j.reason for j in ended.values() if j.state == "denied")
    (m,) = c["cqc"].call("GET", f"/usage?agreement={a}")["meters"]
    assert m["uses"] == 2
