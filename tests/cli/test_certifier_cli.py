"""A certification body certifies a manufacturer from the command line alone, following the README:
the regulator operating the log, the manufacturer and the certification body each run their own node
process from their own home, and every step of the README's certifier section is typed as written
(hosts and placeholders filled from earlier output)."""

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qdsn.api.client import NodeClient
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.provider import publish

from ..api.conftest import FAST, answering
from ..services import free_port

README = Path(__file__).parents[2] / "README.md"
PW = "certifier passphrase"


def certifier_section() -> list[list[str]]:
    """The README's certifier commands, each as its argv (continuation lines joined, comments dropped)."""
    text = README.read_text()
    start = text.index("A certification body certifies a manufacturer")
    blocks = re.findall(r"```sh\n(.*?)```", text[start:], re.S)[:2]  # the commands, then sealed deliveries
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def run(argv, cwd, *, ok=True, passphrase=PW):
    env = {k: v for k, v in os.environ.items() if k != "QDSN_HOME"} | {"QDSN_PASSPHRASE": passphrase,
                                                                       "COLUMNS": "220"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "qdsn", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    if ok:
        assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def serve(home: NodeHome, port: int, operator: str | None = None) -> None:
    """The [service] table of the home's node.toml: a member names its log operator there."""
    with (home.path / "node.toml").open("a") as f:
        f.write(f"\n[service]\nport = {port}\nmonitor = 0.3\n" + (f'operator = "{operator}"\n' if operator else ""))


def start(home: NodeHome, port: int) -> subprocess.Popen:
    env = os.environ | {"QDSN_PASSPHRASE": PW, "QDSN_HOME": str(home.path)}
    proc = subprocess.Popen([sys.executable, "-m", "qdsn", "node", "start"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    return answering(proc, home.name, port)


def offer(maker: NodeHome, certifier: NodeHome) -> dict:
    purpose = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:cert",
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:line-1",
        "permission": [{"action": "compute", "assignee": certifier.did, "constraint": [purpose]},
                       {"action": "read", "assignee": certifier.did, "constraint": [purpose]}],
    }  # fmt: skip


def wait_for_cosign(reg_url: str, cqc: NodeHome, entry_type: str, timeout: float = 60) -> None:
    """Until the certifier's node has followed the log past the newest `entry_type` and cosigned a
    checkpoint that covers it (its own rounds, as `qdsn node start` runs them)."""
    client = NodeClient(reg_url, cqc.key(), cqc.did)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.call("GET", "/ledger/entries?start=0")
        envs = [tx.from_leaf(base64.b64decode(x)) for x in got["entries"]]
        wanted = max((i for i, e in enumerate(envs) if e.type == entry_type), default=None)
        cosigned = [e.payload["size"] for e in envs if e.type == "checkpoint.cosign" and e.submitter == cqc.did]
        if wanted is not None and cosigned and max(cosigned) > wanted:
            return
        time.sleep(0.3)
    pytest.fail(f"the certifier's node did not cosign a checkpoint covering the {entry_type}")


def test_a_certification_body_certifies_a_manufacturer_following_the_readme(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "Provincial Bureau", PW, scrypt_n=FAST)
    acme = NodeHome.init(tmp_path / "acme", "enterprise", "Acme Cable", PW, origin=reg.origin, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    for m in (acme, cqc):
        reg.submit("identity.register", m.registration())
    ports = {n: free_port() for n in ("reg", "acme", "cqc")}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    filled = {"https://acme:8421": url["acme"], "https://cqc:8422": url["cqc"], "https://reg:8420": url["reg"]}
    serve(reg, ports["reg"])
    for name, m in (("acme", acme), ("cqc", cqc)):
        serve(m, ports[name], url["reg"])
    procs = [start(reg, ports["reg"])]
    try:
        node = Node(acme, link=NodeClient(url["reg"], acme.key(), acme.did))  # the manufacturer's anchored data
        spec = {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}
        node.submit([acme.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                                   "characteristics": [spec]})])  # fmt: skip
        node.vault.create("line-1", "measurements")
        rows = [{"characteristic": "resistance", "value": round(17.5 + ((i * 7) % 11 - 5) / 100, 3),
                 "time": f"2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z"} for i in range(200)]  # fmt: skip
        batch = node.vault.add_batch("line-1", rows)
        anchor = acme.sign("dataset.anchor", batch.anchor_payload())
        node.submit([anchor])
        node.vault.mark_anchored(batch, tx.txid(anchor.leaf()))
        publish(node, "line-1", offer(acme, cqc))
        node.close()

        steps = [argv for argv in certifier_section() if argv[1:3] != ["model", "pack"]]
        said: dict[str, str] = {"N": "buyer-nonce-9"}
        outputs: dict[str, str] = {}

        def step(*prefix: str, ok: bool = True) -> subprocess.CompletedProcess:
            """Run the README's next command that starts with `prefix`, its placeholders filled."""
            i = next((n for n, a in enumerate(steps) if a[1 : 1 + len(prefix)] == list(prefix)), None)
            assert i is not None, f"the README's certifier section has no `qdsn {' '.join(prefix)}` left"
            argv = steps.pop(i)
            to = None
            if ">" in argv:
                argv, to = argv[: argv.index(">")], argv[argv.index(">") + 1]
            for host, real in filled.items():
                argv = [a.replace(host, real) for a in argv]
            argv = [said.get(a, a) for a in argv]
            proc = run(argv, tmp_path, ok=ok)
            if to:
                (tmp_path / to).write_text(proc.stdout)
            outputs[" ".join(prefix)] = proc.stdout
            return proc

        # the model is published while only the operator runs; then the two members start their nodes
        step("model", "publish")
        procs += [start(acme, ports["acme"]), start(cqc, ports["cqc"])]

        anonymous = run(["qdsn", "catalog", url["acme"], "--home", "./cqc"], tmp_path, passphrase="")
        assert "offers no dataset to anyone" in anonymous.stdout and "anonymously" in anonymous.stderr
        shown = step("catalog").stdout  # as the certifier: the offer addressed to it shows
        assert "line-1" in shown and "200" in shown and "urn:qdsn:offer:line-1:cert" in shown
        assert "compute to" in shown and "purpose eq certification" in shown

        said["AGREEMENT"] = re.search(r"agreement (urn:qdsn:agreement:\S+)", step("negotiate").stdout)[1]
        # records, sealed to the certifier under the same agreement
        said["TRANSFER"] = re.search(r"transfer (\S+) started", step("transfer").stdout)[1]
        wait_for_cosign(url["reg"], cqc, "dataset.anchor")  # the certifier's replica holds the anchors
        assert "200 records (records 0–199) opened" in step("fetch").stdout
        got = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
        assert [r["seq"] for r in got] == list(range(200)) and got[0]["record"]["value"] == rows[0]["value"]

        said["JOB"] = re.search(r"job (\S+) asked of", step("jobs", "request").stdout)[1]
        assert said["JOB"] in step("jobs", "list").stdout
        assert "def main()" in step("jobs", "show").stdout
        assert "done" in step("jobs", "approve").stdout
        wait_for_cosign(url["reg"], cqc, "compute.attest")
        assert step("jobs", "status").stdout.startswith("done")
        result = step("jobs", "result").stdout
        assert "attestation verified" in result and "attested results" in result
        assert re.search(r"resistance cpk\s+│\s+\d", result) and re.search(r"overall\s+│\s+│\s+pass", result)
        doc = json.loads((tmp_path / "result.json").read_text())
        assert doc["job"] == said["JOB"] and doc["output"]["pass"] is True and doc["nonce"]
        again = step("attest", "verify").stdout
        assert "attestation verified" in again and "resistance cpk" in again

        assert "certificate CQC-1 issued to Acme Cable" in step("cert", "issue").stdout
        register = step("cert", "list").stdout
        assert "CQC-1" in register and "Acme Cable" in register and "valid" in register
        step("cert", "fetch")
        step("cert", "present")
        assert (tmp_path / "shown.txt").read_text().count("~") >= 2
        report = step("verify").stdout  # on the regulator's node; the status list fetched from the certifier's
        assert "attestation" in report and "status" in report and "✗" not in report

        step("cert", "schedule")
        (row,) = json.loads(run(["qdsn", "cert", "list", "--json", "--home", "./cqc"], tmp_path).stdout)["issued"]
        assert row["certificate"] == "CQC-1" and row["holder"] == acme.did and row["status"] == "valid"
        assert row["valid_until"] and row["next_run"] and row["every_seconds"] == 86_400

        step("cert", "suspend")
        assert "suspended" in run(["qdsn", "cert", "list", "--home", "./cqc"], tmp_path).stdout
        left = [a[1:3] for a in steps]  # trust files, offline bundles and verifying without a node are tested in
        # test_jobs_cli and test_verify_cli
        assert left == [
            ["trust", "export"],
            ["verify", "shown.txt"],
            ["bundle", "shown.txt"],
            ["verify", "bundle.json"],
        ], left
    finally:
        for p in procs:
            p.terminate()
        for p in procs:  # a node finishes the round it is in first; on a loaded machine that can take a while
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
