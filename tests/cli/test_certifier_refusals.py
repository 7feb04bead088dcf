"""What a certification body is handed is checked before it is believed, and anything of the wrong kind
— the raw job document, a truncated or empty file, an attestation without its output, a node that
cannot be reached — gets a message that says what it is and what to do, never a traceback."""

import json
import time
from pathlib import Path

import pytest

from qdsn.compute.results import read, rows
from qdsn.errors import InvalidInput, NotFound
from qdsn.node import NodeHome, requested
from qdsn.node.follow import log_key

from .test_cli import PASS, qdsn
from .test_jobs_cli import lab

MODEL = "import json, sys\nsys.stdin.read()\nprint(json.dumps({'pass': True}))\n"


def refused(*args, home, says):
    proc = qdsn(*args, home=home, ok=False)
    out = " ".join((proc.stdout + proc.stderr).split())  # as said, whatever the terminal's width
    assert proc.returncode != 0 and "Traceback" not in out, out
    for s in says if isinstance(says, tuple) else (says,):
        assert s in out, out
    return out


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A certifier's home and a manufacturer's job that ran: (certifier's home, the job as GET /jobs/ID gives it,
    the same job while it was pending)."""
    tmp = tmp_path_factory.mktemp("ran")
    maker, job = lab(tmp, MODEL)
    (pending,) = json.loads(qdsn("jobs", "list", "--json", home=maker).stdout)
    cosign(tmp)  # a checkpoint from before the run
    qdsn("jobs", "approve", job, "--isolation", "process", home=maker)
    (done,) = json.loads(qdsn("jobs", "list", "--json", home=maker).stdout)
    requested.record(tmp / "cqc", "http://acme.example", job, "cli-nonce-1", dataset="line-1", first=0, count=1)
    return tmp / "cqc", done, pending


def cosign(tmp: Path) -> None:
    """The certifier cosigns the log as it stands (what its node's rounds do)."""
    reg, cqc = (NodeHome.open(tmp / name, PASS["QDSN_PASSPHRASE"]) for name in ("reg", "cqc"))
    ledger = reg.ledger()
    ledger.witness(ledger.sign_checkpoint(reg.log_signer()), log_key(ledger), cqc.cosigner(), int(time.time()))
    ledger.close()


def test_a_run_not_yet_under_a_cosigned_checkpoint_is_not_certified_yet(ran, tmp_path):
    cqc, done, _ = ran
    (tmp_path / "job.json").write_text(json.dumps(done))  # the job as GET /jobs/ID gives it
    issue = ["cert", "issue", str(tmp_path / "job.json"), "--number", "CQC-9", "--standard", "S", "--category", "c",
             "--scope", "s", "--site", "h", "--status-list", "https://cqc.example/status-lists/9"]  # fmt: skip
    refused(*issue, home=cqc, says=("not yet under a checkpoint this node cosigned", "witness round"))
    cosign(cqc.parent)  # now it is; this test model is no certification scheme, which is said as plainly
    refused(*issue, home=cqc, says="'tiny' is not a scheme that model runs are judged by")
    assert "No certificates yet" in qdsn("cert", "list", home=cqc).stdout
    assert json.loads(qdsn("cert", "list", "--json", home=cqc).stdout) == {"issued": [], "held": []}


def test_a_replayed_run_certifies_nothing_whatever_its_file_says(ran, tmp_path):
    cqc, done, _ = ran
    issue = ["--number", "CQC-7", "--standard", "S", "--category", "c", "--scope", "s", "--site", "h",
             "--status-list", "https://cqc.example/status-lists/7"]  # fmt: skip
    bare = {"output": done["result"]["output"], "attestation": done["result"]["attestation"]}
    (tmp_path / "bare.json").write_text(json.dumps(bare))  # a result file that names no job, node or nonce
    other = tmp_path / "other"  # a certifier that never asked for this run is handed it
    other.mkdir()
    requested.record(other, "http://acme.example", done["id"], "its-own-fresh-nonce")
    (other / requested.FOLDER).rename(cqc.parent / "asked-anew")
    (cqc / requested.FOLDER).rename(cqc.parent / "asked-before")
    (cqc.parent / "asked-anew").rename(cqc / requested.FOLDER)  # the same job id asked again, with a new nonce
    try:
        says = ("answers no job this node asked for", "qdsn jobs request")
        refused("cert", "issue", str(tmp_path / "bare.json"), *issue, home=cqc, says=says)
        lying = bare | {"job": done["id"], "node": "http://acme.example", "nonce": "its-own-fresh-nonce"}
        (tmp_path / "lying.json").write_text(json.dumps(lying))
        refused("cert", "issue", str(tmp_path / "lying.json"), *issue, home=cqc, says=says)
        shown = qdsn("attest", "verify", str(tmp_path / "bare.json"), home=cqc).stdout
        assert "not checked for freshness" in " ".join(shown.split())
    finally:
        (cqc / requested.FOLDER).rename(cqc.parent / "asked-anew")
        (cqc.parent / "asked-before").rename(cqc / requested.FOLDER)
    fresh = qdsn("attest", "verify", str(tmp_path / "bare.json"), home=cqc).stdout
    assert "which this node asked of http://acme.example" in " ".join(fresh.split())


def test_the_raw_job_document_verifies_and_shows_its_results(ran, tmp_path):
    cqc, done, _ = ran
    (tmp_path / "job.json").write_text(json.dumps(done))
    out = qdsn("attest", "verify", str(tmp_path / "job.json"), "--nonce", "cli-nonce-1", home=cqc).stdout
    assert "attestation verified" in out and "matches the output shown" in out
    assert "attested results" in out and "overall" in out and "pass" in out
    (tmp_path / "bare.jws").write_text(done["result"]["attestation"])
    bare = qdsn("attest", "verify", str(tmp_path / "bare.jws"), home=cqc).stdout
    assert "attestation verified" in bare and "known by their hash alone" in bare


@pytest.mark.parametrize(("content", "says"), [
    ("", "is empty"),
    ('{"id": "x", "state": "done", "result": {"output": {"pa', "not whole JSON"),
    ("[1, 2]", "not an object"),
    ("hello, world", "neither JSON nor an attestation"),
    ('{"output": {"pass": true}}', "holds no attestation"),
    ('{"output": [1], "attestation": "a.b.c"}', "the output is not a JSON object"),
])  # fmt: skip
def test_wrong_documents_are_named_not_tracebacks(ran, tmp_path, content, says):
    cqc, _, _ = ran
    (tmp_path / "doc").write_text(content)
    refused("attest", "verify", str(tmp_path / "doc"), home=cqc, says=(says, "qdsn jobs result"))
    refused("cert", "issue", str(tmp_path / "doc"), "--number", "X-1", "--standard", "S", "--category", "c",
            "--scope", "s", "--site", "h", "--status-list", "https://cqc.example/status-lists/1", home=cqc,
            says=says)  # fmt: skip


def test_a_pending_job_a_missing_file_and_an_attestation_alone(ran, tmp_path):
    cqc, done, pending = ran
    (tmp_path / "pending.json").write_text(json.dumps(pending))
    refused("attest", "verify", str(tmp_path / "pending.json"), home=cqc, says=("pending", "no attested result"))
    refused("attest", "verify", str(tmp_path / "nowhere.json"), home=cqc, says="no file")
    (tmp_path / "bare.jws").write_text(done["result"]["attestation"])
    issue = ["--number", "X-1", "--standard", "S", "--category", "c", "--scope", "s", "--site", "h",
             "--status-list", "https://cqc.example/status-lists/1"]  # fmt: skip
    refused("cert", "issue", str(tmp_path / "bare.jws"), *issue, home=cqc, says="not the attestation alone")
    refused("cert", "issue", "--job", "urn:uuid:never-asked", *issue, home=cqc, says="asked for no job")
    refused("cert", "issue", *issue, home=cqc, says="one of them")
    forged = json.loads(json.dumps(done))
    forged["result"]["output"]["pass"] = False
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused("attest", "verify", str(tmp_path / "forged.json"), home=cqc, says="output: the result shown is not")
    refused("attest", "verify", str(tmp_path / "bare.jws"), "--nonce", "another-nonce", home=cqc,
            says="nonce: the attestation answers another request")  # fmt: skip


def test_nodes_that_cannot_be_reached_or_jobs_never_asked(ran):
    cqc, _, _ = ran
    for args in (("catalog", "http://127.0.0.1:9"), ("negotiate", "http://127.0.0.1:9", "line-1"),
                 ("jobs", "status", "http://127.0.0.1:9", "job-1")):  # fmt: skip
        refused(*args, home=cqc, says=("cannot reach http://127.0.0.1:9", "qdsn node start"))
    refused("jobs", "result", "http://127.0.0.1:9", "job-1", home=cqc, says=("did not ask", "--nonce"))
    refused("transfer", "http://127.0.0.1:9", "--agreement", "a", "--records", "5", home=cqc, says="FIRST:COUNT")


def test_result_documents_and_their_figures():
    out = {"pass": False, "threshold": 1.33, "characteristics": [
        {"name": "resistance", "n": 200, "cpk": 1.2345, "cpk_lower": 1.1, "pass": False},
        {"name": "diameter", "n": 200, "cpk": 2.0, "cpk_lower": 1.8, "pass": True}]}  # fmt: skip
    table = rows(out)
    assert table[0] == ("overall", "", "fail")
    assert ("resistance n", "200", "fail") in table and ("resistance cpk", "1.234", "") in table
    assert ("diameter n", "200", "pass") in table and ("threshold", "1.33", "") in table
    doc = read(json.dumps({"job": "j", "node": "http://x", "nonce": "n", "output": out, "attestation": "a.b.c"}))
    assert (doc.job, doc.node, doc.nonce, doc.output) == ("j", "http://x", "n", out)
    assert read(json.dumps(doc.to_json())) == doc
    with pytest.raises(InvalidInput, match="denied: not today"):
        read(json.dumps({"id": "j", "state": "denied", "reason": "not today"}))


def test_the_register_of_jobs_asked(tmp_path):
    requested.record(tmp_path, "http://a:1/", "job-1", "nonce-a", model="m@1")
    requested.record(tmp_path, "http://b:1", "job-1", "nonce-b")
    assert requested.find(tmp_path, "job-1", "http://a:1")["nonce"] == "nonce-a"
    with pytest.raises(InvalidInput, match="given by 2 nodes"):
        requested.find(tmp_path, "job-1")
    with pytest.raises(NotFound):
        requested.find(tmp_path, "job-2")
    (tmp_path / requested.FOLDER / "junk.json").write_text("{")
    with pytest.raises(InvalidInput, match="damaged"):
        requested.entries(tmp_path)
    assert not list((tmp_path / requested.FOLDER).glob(".new-*"))


def test_choosing_an_offer_from_a_catalog_the_other_side_wrote():
    from qdsn.cli.certify import choose, terms

    purpose = [{"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["certification", "audit"]}]
    line = "urn:qdsn:dataset:line-1"
    cert = {"uid": "urn:o:cert", "target": line, "permission": [{"action": "compute", "constraint": purpose}]}
    market = {"uid": "urn:o:market", "target": line, "permission": [{"action": "read", "constraint": [
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"}]}]}  # fmt: skip
    elsewhere = cert | {"uid": "urn:o:elsewhere", "target": "urn:qdsn:dataset:golden-line"}
    catalog = {"dcat:dataset": [
        "junk", {"@id": line, "odrl:hasPolicy": [cert, market, 7, elsewhere]},
        {"@id": "urn:qdsn:dataset:line-2", "odrl:hasPolicy": "not a list"}]}  # fmt: skip
    assert choose(catalog, "line-1", "certification", None) is cert
    assert choose(catalog, "urn:qdsn:dataset:line-1", None, "urn:o:market") is market
    with pytest.raises(InvalidInput, match="2 offers that fit: urn:o:cert, urn:o:market"):
        choose(catalog, "line-1", None, None)
    with pytest.raises(NotFound, match="has no offer urn:o:elsewhere"):  # listed under line-1, an offer of another
        choose(catalog, "line-1", None, "urn:o:elsewhere")
    with pytest.raises(NotFound, match="has no offer for purpose 'resale'"):
        choose(catalog, "line-1", "resale", None)
    with pytest.raises(NotFound, match="has: line-1, line-2"):
        choose(catalog, "line-9", None, None)
    with pytest.raises(NotFound, match="its offers: none"):
        choose(catalog, "line-2", None, None)
    assert terms(cert) == "compute to anyone if purpose isAnyOf [certification, audit]"
    assert terms({"permission": "x"}) == "(no permission)"
    hashes = [{"leftOperand": "qdsn:modelHash", "operator": "isAnyOf", "rightOperand": ["ab" * 32, "cd" * 32]}]
    named = terms({"permission": [{"action": "compute", "assignee": "did:x", "constraint": hashes}]},
                  {"ab" * 32: "process-capability@1.0.2"})  # fmt: skip
    assert named == f"compute to did:x if qdsn:modelHash isAnyOf [process-capability@1.0.2 ({'ab' * 6}…), {'cd' * 8}…]"


def test_a_run_other_than_the_one_asked_for_is_named():
    from qdsn.compute.attest import digest

    entry = {"url": "http://a", "job": "j", "nonce": "n", "code_hash": "ab" * 32, "parameters": {"threshold": 1.33},
             "dataset": "line-1", "first": 0, "count": 200}  # fmt: skip
    honest = {"measurements": {"code_hash": "ab" * 32}, "params_hash": digest({"threshold": 1.33}),
              "inputs": [{"dataset": "line-1", "first": 0, "count": 200, "batches": []}]}  # fmt: skip
    assert requested.mismatches(entry, honest) == []
    cherry = honest | {"inputs": [{"dataset": "line-1", "first": 50, "count": 100, "batches": []}]}
    assert requested.mismatches(entry, cherry)[0].startswith("records:")
    other = honest | {"measurements": {"code_hash": "cd" * 32}, "params_hash": digest({"threshold": 0.5})}
    assert [w.split(":")[0] for w in requested.mismatches(entry, other)] == ["code", "parameters"]
