"""The certification body's journey in a real browser, on a consortium of three node processes (the
regulator operating the log, the manufacturer, the certification body): read the manufacturer's catalog,
negotiate, ask for a job, see its attested result (Cpk, pass) once the manufacturer approved it, issue the
certificate from it, suspend and reinstate it. Nothing is fetched from outside the node; every page is
saved as a screenshot."""

import os
import subprocess
import sys
import time
from urllib.parse import unquote

from qdsn.api.client import NodeClient
from qdsn.compute import package
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.provider import publish
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..cli.test_certifier_cli import offer, wait_for_cosign
from ..services import free_port
from .conftest import sign_in, start_node, stop

PW = "certifier passphrase"
STAFF = "a long staff password"


def approve(home: NodeHome, job: str) -> None:
    """The manufacturer approves the job at its node, as `qdsn jobs approve` does on its machine."""
    env = {k: v for k, v in os.environ.items() if k != "QDSN_HOME"} | {"QDSN_PASSPHRASE": PW}
    proc = subprocess.run([sys.executable, "-m", "qdsn", "jobs", "approve", job, "--home", str(home.path)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_certifier_asks_for_a_job_and_issues_the_certificate_from_its_result(tmp_path, journey):
    started = time.monotonic()
    reg = NodeHome.init(tmp_path / "reg", "regulator", "Provincial Bureau", PW, scrypt_n=FAST)
    acme = NodeHome.init(tmp_path / "acme", "enterprise", "Acme Cable", PW, origin=reg.origin, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    for m in (acme, cqc):
        reg.submit("identity.register", m.registration())
    ports = {n: free_port() for n in ("reg", "acme", "cqc")}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    procs = [start_node(reg.path, ports["reg"], PW)]
    try:
        blob, m = package.load(package.builtin("process-capability"))
        certifier = Node(cqc, link=NodeClient(url["reg"], cqc.key(), cqc.did))
        certifier.submit([cqc.sign("model.publish", {"model": m.id, "version": m.version,
                                                     "hash": package.code_hash(blob),
                                                     "manifest": m.model_dump(mode="json")})])  # fmt: skip
        certifier.close()
        maker = Node(acme, link=NodeClient(url["reg"], acme.key(), acme.did))
        spec = {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}
        maker.submit([acme.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                                    "characteristics": [spec]})])  # fmt: skip
        maker.vault.create("line-1", "measurements")
        rows = [{"characteristic": "resistance", "value": round(17.5 + ((i * 7) % 11 - 5) / 100, 3),
                 "time": f"2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z"} for i in range(200)]  # fmt: skip
        batch = maker.vault.add_batch("line-1", rows)
        anchor = acme.sign("dataset.anchor", batch.anchor_payload())
        maker.submit([anchor])
        maker.vault.mark_anchored(batch, tx.txid(anchor.leaf()))
        publish(maker, "line-1", offer(acme, cqc))
        maker.close()
        StaffStore(cqc.path).add("wang.fang", "approver", STAFF)
        procs += [start_node(acme.path, ports["acme"], PW, operator=url["reg"]),
                  start_node(cqc.path, ports["cqc"], PW, operator=url["reg"])]  # fmt: skip
        wait_for_cosign(url["reg"], cqc, "dataset.anchor")  # the certifier's replica holds the anchors

        began = time.monotonic()  # the certifier's time in the browser, without the manufacturer's approval
        j = journey(url["cqc"])
        j.add_origin(url["acme"])  # never opened by the browser; the certifier's node calls it
        sign_in(j, "wang.fang", STAFF)
        assert j.page.url.endswith("/console/certifier/overview")
        assert "process-capability@" in j.page.inner_text("#models")
        j.goto(f"/console/certifier/catalog?url={url['acme']}")
        assert "urn:qdsn:offer:line-1:cert" in j.page.inner_text("#catalog")
        j.submit("#catalog form button", "negotiated")
        assert "/console/certifier/jobs" in j.page.url
        j.submit("#ask button", "job-asked")
        assert "/console/certifier/jobs/" in j.page.url and j.page.inner_text("#state") == "pending"
        job = unquote(j.page.url.split("/console/certifier/jobs/")[1].split("?")[0])

        browsing = time.monotonic() - began
        approve(acme, job)
        wait_for_cosign(url["reg"], cqc, "compute.attest")  # issued only under a checkpoint it cosigned
        began = time.monotonic()
        j.goto(j.page.url, "result")
        assert j.page.inner_text("#state") == "done" and "Attestation verified" in j.page.inner_text("main")
        figures = j.page.inner_text("#results")
        assert "resistance cpk" in figures and "pass" in figures
        j.page.fill("input[name=number]", "CQC-1")
        j.page.fill("input[name=standards]", "GB/T 5023")
        j.page.fill("input[name=category]", "cable")
        j.page.fill("input[name=scope]", "BV 2.5")
        j.page.fill("input[name=site]", "Hangzhou")
        j.submit("#issue button", "issued")
        register = j.page.inner_text("#register")
        assert "CQC-1" in register and "Acme Cable" in register and "valid" in register
        j.page.fill("#register input[name=reason]", "audit finding")
        j.submit("#register form button", "suspended")
        assert "suspended" in j.page.inner_text("#register")
        browsing += time.monotonic() - began
        assert browsing < 60, f"the certifier's journey took {browsing:.1f} s in the browser"

        ledger = reg.ledger()  # the regulator's replica: the same transactions the CLI writes
        issued_at = [r.seq for r in ledger.store.rows_of_type("credential.issue")]
        issued = [tx.from_leaf(r.leaf) for r in ledger.store.rows_of_type("credential.issue")]
        status = [tx.from_leaf(r.leaf) for r in ledger.store.rows_of_type("credential.status")]
        ledger.close()
        assert [(e.submitter, e.payload["credential"], e.payload["subject"]) for e in issued] == [
            (cqc.did, "CQC-1", acme.did)
        ]
        assert [(e.payload["status"], e.payload["reason"]) for e in status] == [("suspended", "audit finding")]
        trail = [(t["staff"], t["action"]) for t in StaffStore(cqc.path).trail()]
        for action in ("negotiate", "job.request", "certificate.issue", "certificate.suspend"):
            assert ("wang.fang", action) in trail, trail
        (line,) = StaffStore(cqc.path).trail(action="certificate.issue")  # where its own issue landed
        assert [line["detail"]["entry"]] == issued_at and line["subject"] == "CQC-1"
    finally:
        stop(procs)
    print(f"certifier journey: {browsing:.1f} s in the browser, {time.monotonic() - started:.1f} s in all")
