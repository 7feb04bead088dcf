"""The `qdsn` command as a user runs it: a real process, a real home folder."""

import json
import os
import subprocess
import sys

import pytest

from ..services import fresh_database

PASS = {"QDSN_PASSPHRASE": "test passphrase"}


def qdsn(*args, home=None, ok=True, passphrase=PASS["QDSN_PASSPHRASE"]):
    env = {**os.environ, "QDSN_PASSPHRASE": passphrase, "COLUMNS": "200"}
    if home is not None:
        env["QDSN_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_help_teaches():
    out = qdsn("--help").stdout
    assert "demo" in out and "init" in out and "ledger" in out
    assert "inclusion" in qdsn("ledger", "prove", "--help").stdout


def test_a_regulator_node_end_to_end(tmp_path):
    home = tmp_path / "reg"
    out = qdsn("init", "--role", "regulator", "--name", "Test Bureau", home=home).stdout
    assert "did:key:z6Mk" in out
    doc = json.loads(qdsn("did", "show", home=home).stdout)
    assert doc["id"].startswith("did:key:z6Mk")
    member = {
        "did": "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "role": "enterprise",
        "name": "Acme",
        "key": "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    }
    qdsn("ledger", "append", "identity.register", json.dumps(member), home=home)
    again = qdsn("ledger", "append", "identity.register", json.dumps(member), home=home, ok=False)
    assert again.returncode == 1 and "already registered" in again.stderr
    bad = qdsn("ledger", "append", "identity.register", "{not json", home=home, ok=False)
    assert bad.returncode == 1 and "not JSON" in bad.stderr
    assert "identity.register" in qdsn("ledger", "show", home=home).stdout
    proof = json.loads(qdsn("ledger", "prove", "--index", "1", home=home).stdout)
    assert proof["verified"] and proof["size"] == 2
    assert json.loads(qdsn("ledger", "prove", "--old-size", "1", home=home).stdout)["verified"]
    note = qdsn("ledger", "checkpoint", home=home).stdout
    assert note.startswith("qdsn.local/test-bureau\n2\n")
    qdsn("did", "rotate", home=home)
    assert "verified 3 entries" in qdsn("ledger", "verify", home=home).stdout


def test_a_node_whose_ledger_is_in_postgresql(tmp_path, postgres_url):
    url = fresh_database(postgres_url, "cli_node")
    home = tmp_path / "reg"
    qdsn("init", "--role", "regulator", "--name", "Bureau", "--ledger", url, home=home)
    assert not (home / "ledger.db").exists()
    qdsn("did", "rotate", home=home)
    assert "verified 2 entries" in qdsn("ledger", "verify", home=home).stdout
    secret = qdsn(
        "init",
        "--role",
        "regulator",
        "--name",
        "B",
        "--ledger",
        url.replace("postgres@", "postgres:pw@"),
        home=tmp_path / "other",
        ok=False,
    )
    assert secret.returncode == 1 and "PGPASSWORD" in secret.stderr


def test_wrong_passphrase_and_missing_home(tmp_path):
    home = tmp_path / "n"
    qdsn("init", "--role", "enterprise", "--name", "Acme", home=home)
    env = {**os.environ, "QDSN_PASSPHRASE": "wrong", "QDSN_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "qdsn", "ledger", "append", "identity.register", "{}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and "passphrase" in proc.stderr
    missing = qdsn("did", "show", home=tmp_path / "nowhere", ok=False)
    assert missing.returncode == 1 and "qdsn init" in missing.stderr


@pytest.mark.slow
def test_demo_tells_the_story():
    out = qdsn("demo").stdout
    steps = ("Identities", "Refusals", "Key rotation", "Quality data stays home", "Usage policy", "Checkpoints")
    for step in (*steps, "split view", "Audit", "consortium verified", "400 anchored quality records"):
        assert step in out, step
    assert "[red]" not in out and "?!" not in out
    assert "was 'marketing'" in out and "2 uses, 2 denied" in out and "240 CNY due" in out
    flat = " ".join(out.split())  # the console wraps long lines
    assert "'17.6' appears 0 times on the wire" in flat and "proved each against the batch roots" in flat
    assert "count must be lteq 1, was 2" in flat and "same figures (✓)" in flat and "300 CNY due" in flat
    assert "job pending" in flat and "no reading left the plant" in flat and "output and nonce ✓" in flat
    assert flat.count("✓ verified") >= 8  # two pre-approved runs attested, six replicas audited
    assert "a buyer now sees: ✗ suspended" in flat and "a buyer now sees: ✓ valid" in flat
    assert (
        "a quality notification (质量通知)" in flat
        and "the manufacturer's node stored it, then recorded RECEIVED" in flat
    )
    assert "suspended by continuous certification" in flat and "sees the counts: {'CLOSED': 1}" in flat
    # etcd is installed where the tests run: the consortium survives losing its etcd leader
    assert "the leader, is killed" in flat and "a new leader is elected" in flat
    assert "each on every replica exactly once ✓" in flat and "same size and root ✓" in flat
    assert "root ✓ matches" in flat and "dataset names in the file: 0" in flat
    assert "tries to open it: ✓ refused" in flat and "records readable ✓" in flat
    assert "last year, 1,051,200 readings: I-MR with all eight Nelson rules" in flat
    assert "forges an out-of-range report: ✓ refused by both aggregators" in flat and "validity proof" in flat
    assert "nonconforming units from 3 makers" in flat and "none of them a maker's value" in flat
    assert "Green and low-carbon" in flat and "kg CO2e per kilogram" in flat and "≤ 0.60: pass" in flat
    assert "discloses only indicators.pcf and indicators.declared_unit — a buyer verifies it ✓" in flat
    assert "> 0.60 → certificate suspended" in flat and "the January footprint as PACT v3" in flat
    assert "proves its report is leaf" in flat
    assert "its node tries to issue CQC-2026-0002: ✓ refused" in flat and "a buyer now sees: ✗ issued while" in flat
    assert "recorded before the suspension: ✓ stands" in flat and "capability level 质量管理能力等级:" in flat
    assert "Risk-based inspection" in flat and "✓ refused a reveal of another seed" in flat
    assert "✓ a member re-runs the draw on its own replica" in flat and "re-draws of the same plan" in flat
    assert "recall of Jiangsu Valve Co.'s batch: 2 makers" in flat and "regional-quality-map.svg" in flat
    assert "A T² model trained across makers" in flat and "from 3 makers: UCL" in flat
    assert "a signal no single-variable chart gives ✓" in flat
    gap = float(flat.split("from the model of the pooled rows ")[1].split()[0])
    assert gap < 1e-9


def test_schema_export(tmp_path):
    out = qdsn("schema", "export", str(tmp_path / "schemas")).stdout
    assert "Measurement.schema.json" in out
    assert json.loads((tmp_path / "schemas" / "Inspection.schema.json").read_text())["title"] == "Inspection"


def manufacturer(tmp_path):
    """A regulator and a manufacturer admitted by it, sharing its log file on one machine, with dataset line-1."""
    reg, acme = tmp_path / "reg", tmp_path / "acme"
    qdsn("init", "--role", "regulator", "--name", "Bureau", home=reg)
    qdsn("init", "--role", "enterprise", "--name", "Acme", "--ledger", str(reg / "ledger.db"), home=acme)
    did = json.loads(qdsn("did", "show", home=acme).stdout)["id"]
    payload = {"did": did, "role": "enterprise", "name": "Acme", "key": did.removeprefix("did:key:")}
    qdsn("ledger", "append", "identity.register", json.dumps(payload), home=reg)
    qdsn("dataset", "create", "line-1", "--title", "Line 1", "--characteristic", "conductor resistance:Ω/km::18.1",
         home=acme)  # fmt: skip
    return reg, acme


def test_a_manufacturer_ingests_a_file_and_verifies_its_vault(tmp_path):
    reg, acme = manufacturer(tmp_path)
    rows = ["characteristic,value,time,lot"] + [
        f"conductor resistance,{17.5 + i / 100},2026-03-01T08:00:00Z,L1" for i in range(30)
    ]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    out = qdsn("ingest", "csv", str(tmp_path / "r.csv"), "--dataset", "line-1", "--batch-size", "10", home=acme).stdout
    assert "30" in out and "3" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("characteristic,value,time\nconductor resistance,oops,2026-03-01T08:00:00Z\n")
    refused = qdsn("ingest", "csv", str(bad), "--dataset", "line-1", home=acme, ok=False)
    assert refused.returncode == 1 and "row 2, field 'value'" in refused.stderr
    assert "verified" in qdsn("vault", "verify", home=acme).stdout

    # out as GS1 EPCIS 2.0, and back in to a second dataset: the same records
    qdsn(
        "dataset",
        "create",
        "line-1b",
        "--title",
        "Copy",
        "--characteristic",
        "conductor resistance:Ω/km::18.1",
        home=acme,
    )
    events = tmp_path / "line-1.jsonld"
    assert "30 records" in qdsn("dataset", "export", "line-1", "--out", str(events), home=acme).stdout
    assert json.loads(events.read_text())["type"] == "EPCISDocument"
    assert "30" in qdsn("ingest", "epcis", str(events), "--dataset", "line-1b", home=acme).stdout
    copies = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for name, out in zip(("line-1", "line-1b"), copies, strict=True):
        qdsn("dataset", "export", name, "--format", "jsonl", "--out", str(out), home=acme)
    assert copies[0].read_text() == copies[1].read_text()
    assert "verified 8 entries" in qdsn("ledger", "verify", home=reg).stdout

    # backups: the vault sealed for safekeeping elsewhere, the ledger exported and restored on a new node
    sealed = tmp_path / "acme.vault"
    qdsn("vault", "backup", str(sealed), home=acme)
    assert b"line-1" not in sealed.read_bytes()
    (acme / "vault.db").rename(tmp_path / "lost.db")
    assert "restored" in qdsn("vault", "restore", str(sealed), home=acme).stdout
    assert "verified" in qdsn("vault", "verify", home=acme).stdout
    other = tmp_path / "other"
    qdsn("init", "--role", "enterprise", "--name", "Other", "--origin", "qdsn.local/bureau", home=other)
    refused = qdsn("vault", "restore", str(sealed), home=other, ok=False)
    assert refused.returncode == 1 and "belongs to" in refused.stderr
    export = tmp_path / "ledger.gz"
    assert "8 entries" in qdsn("ledger", "export", str(export), home=reg).stdout
    assert "restored 8 entries, every one validated" in qdsn("ledger", "import", str(export), home=other).stdout
    status = qdsn("ledger", "status", home=other).stdout
    assert "embedded" in status and "alerts" in status and "none" in status
    again = qdsn("ledger", "import", str(export), home=other, ok=False)
    assert again.returncode == 1 and "holds 8 entries" in again.stderr


def test_simulate_to_a_file(tmp_path):
    out = tmp_path / "line.jsonl"
    qdsn("simulate", "--to", str(out), "--subgroups", "4", "--shift-at", "2", "--shift", "1.5", "--seed", "9")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 * 5 * 3 and rows[0]["characteristic"] == "conductor resistance"


def test_a_manufacturer_publishes_a_usage_policy(tmp_path):
    reg, acme = tmp_path / "reg", tmp_path / "acme"
    qdsn("init", "--role", "regulator", "--name", "Bureau", home=reg)
    qdsn("init", "--role", "enterprise", "--name", "Acme", "--ledger", str(reg / "ledger.db"), home=acme)
    did = json.loads(qdsn("did", "show", home=acme).stdout)["id"]
    payload = {"did": did, "role": "enterprise", "name": "Acme", "key": did.removeprefix("did:key:")}
    qdsn("ledger", "append", "identity.register", json.dumps(payload), home=reg)
    qdsn("dataset", "create", "line-1", "--title", "Line 1", home=acme)
    purpose = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}
    offer = {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:1",
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": did, "target": "urn:qdsn:dataset:line-1",
        "permission": [{"action": "compute", "constraint": [purpose]}],
    }  # fmt: skip
    (tmp_path / "offer.json").write_text(json.dumps(offer))
    out = qdsn("policy", "publish", "line-1", str(tmp_path / "offer.json"), home=acme).stdout
    assert "urn:qdsn:offer:line-1:1 offered for line-1" in out
    assert "policy.set" in qdsn("ledger", "show", home=acme).stdout
    offer["permission"][0]["constraint"][0]["leftOperand"] = "spatial"
    (tmp_path / "bad.json").write_text(json.dumps(offer))
    bad = qdsn("policy", "publish", "line-1", str(tmp_path / "bad.json"), home=acme, ok=False)
    assert bad.returncode == 1 and "leftOperand 'spatial' is not in QDSN's ODRL profile" in bad.stderr
    assert "urn:qdsn:odrl:profile:v1" in qdsn("policy", "profile").stdout
    use = {"dataset": "line-1", "requester": did, "action": "read", "point": "use", "allowed": True,
           "rule": "permission[0]", "reason": "permission[0] allows read", "agreement": "urn:qdsn:agreement:a-1",
           "records": 120, "price": 15, "currency": "CNY"}  # fmt: skip
    for _ in range(2):
        qdsn("ledger", "append", "access.decision", json.dumps(use), home=acme)
    report = qdsn("usage", "report", home=acme).stdout
    assert "urn:qdsn:agreement:a-1" in report and "240" in report and "due: 30.00 CNY" in report
    doc = json.loads(qdsn("usage", "report", "--json", "--agreement", "urn:qdsn:agreement:a-1", home=acme).stdout)
    assert doc["meters"][0]["uses"] == 2 and doc["invoice"]["totals"] == {"CNY": 30.0}
    assert (
        json.loads(qdsn("usage", "report", "--json", "--since", "2999-01-01T00:00:00Z", home=acme).stdout)["meters"]
        == []
    )
    bad = qdsn("usage", "report", "--since", "yesterday", home=acme, ok=False)
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr
    # A regulator's report holds the agreements it is a party to, like an invoice; --all, the consortium's.
    assert json.loads(qdsn("usage", "report", "--json", home=reg).stdout)["meters"] == []
    assert json.loads(qdsn("usage", "report", "--json", "--all", home=reg).stdout)["meters"][0]["uses"] == 2
    everyone = qdsn("usage", "report", "--all", home=reg).stdout
    assert "Acme" in everyone and did in everyone  # named, the DID whole
    assert "only a regulator" in qdsn("usage", "report", "--all", home=acme, ok=False).stderr
