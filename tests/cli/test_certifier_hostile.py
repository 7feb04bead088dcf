"""What another member's node answers a certification body (or a manufacturer) is that organisation's
word: a node that lies is played here by a plain HTTP server on loopback answering whatever it likes,
and what it answers is never shown as terminal control, never believed about itself, and never written
before it is checked against this node's replica of the ledger."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qdsn.credentials import certificate, sdjwt
from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key
from qdsn.node import NodeHome

from ..api.test_transfer_api import market  # noqa: F401 (a fixture)
from .test_cli import PASS, qdsn


@pytest.fixture
def liar():
    """A node that answers every path with what `answers[path]` holds: (status, JSON body)."""
    answers: dict[str, tuple[int, object]] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            status, body = answers.get(self.path.split("?")[0], (404, {"detail": "nothing here"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/problem+json" if status >= 400 else "application/json"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", answers
    server.shutdown()
    server.server_close()


@pytest.fixture
def me(tmp_path):
    return NodeHome.init(tmp_path / "me", "enterprise", "Acme", PASS["QDSN_PASSPHRASE"], scrypt_n=2**4)


ESC = "\x1b]0;owned\x07\x1b[2J\u202e"


def test_what_the_other_node_says_never_acts_on_the_terminal(liar, me):
    url, answers = liar
    answers["/jobs/job-1"] = (200, {"id": "job-1", "state": "done" + ESC, "reason": ESC, "model": ESC})
    answers["/jobs/job-2"] = (404, {"detail": "[bold]no job[/bold] " + ESC, "fix": ESC})
    for job in ("job-1", "job-2"):
        proc = qdsn("jobs", "status", url, job, home=me.path, ok=False)
        out = proc.stdout + proc.stderr
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out, repr(out)
        assert "\\x1b" in out and "Traceback" not in out, out
    assert "[bold]no job[/bold]" in proc.stderr and proc.returncode == 1, proc.stderr


def test_json_from_the_other_node_keeps_its_value_but_never_acts_on_the_terminal(liar, me):
    url, answers = liar
    title = "线缆 " + ESC + "\x9b31m\U000e0041\u2066"
    catalog = {"dspace:participantId": "did:web:liar.example", "dcat:dataset": [{"@id": "urn:qdsn:dataset:line-1",
                                                                              "dct:title": title}]}  # fmt: skip
    answers["/catalog"] = (200, catalog)
    proc = qdsn("catalog", url, "--json", "--anonymous", home=me.path)
    assert json.loads(proc.stdout) == catalog
    assert "线缆" in proc.stdout and not any(ch in proc.stdout for ch in "\x1b\x07\u202e\x9b\U000e0041\u2066")
    assert "\\u009b" in proc.stdout and "\\udb40\\udc41" in proc.stdout, proc.stdout


def test_a_certificate_not_issued_on_the_ledger_is_not_written(liar, me, tmp_path):
    url, answers = liar
    forger = SigningKey.generate()  # a did:key certifies itself: no member of the consortium stands behind it
    iss = did_key_from_public_key(forger.verify_key.raw)
    claims = {"iss": iss, "vct": certificate.VCT, "certificate_number": "CQC-1", "enterprise": {"did": me.did}}
    forged = sdjwt.issue(claims, forger, kid=f"{iss}#0")
    answers["/credentials"] = (200, {"credentials": [forged]})
    out = tmp_path / "cert.sd-jwt"
    proc = qdsn("cert", "fetch", url, "--out", str(out), home=me.path, ok=False)
    said = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 1 and "Traceback" not in said, said
    assert "no member on this node's replica" in said and "checks out as issued to this node" in said, said
    assert not out.exists()


def test_an_agreement_whose_terms_are_not_the_offers_is_refused(liar, me):
    from qdsn.api.client import NodeClient
    from qdsn.errors import IntegrityError
    from qdsn.node.consumer import negotiate
    from qdsn.policy.odrl import agreement

    url, answers = liar
    maker = did_key_from_public_key(SigningKey.generate().verify_key.raw)
    offer = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:o:1",
             "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker, "target": "urn:qdsn:dataset:line-1",
             "permission": [{"action": "compute", "constraint": [
                 {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}]}]}  # fmt: skip
    honest = agreement(offer, me.did, "urn:qdsn:agreement:1")
    client = NodeClient(url, me.key(), me.did)
    for changed in ({"target": "urn:qdsn:dataset:golden-line"}, {"permission": [{"action": "compute"}]},
                    {"assigner": did_key_from_public_key(SigningKey.generate().verify_key.raw)}):  # fmt: skip
        answers["/negotiations/request"] = (200, {"dspace:state": "dspace:AGREED", "dspace:providerPid": "p-1",
                                                  "dspace:agreement": honest | changed})  # fmt: skip
        with pytest.raises(IntegrityError, match="terms are not those of the offer"):
            negotiate(client, offer, me.did)
    nobody = {k: v for k, v in honest.items() if k != "assignee"}
    answers["/negotiations/request"] = (200, {"dspace:state": "dspace:AGREED", "dspace:providerPid": "p-1",
                                              "dspace:agreement": nobody})  # fmt: skip
    with pytest.raises(IntegrityError, match="terms are not those of the offer"):
        negotiate(client, offer)  # granted to nobody: not the offer's terms granted to anyone
    answers["/negotiations/request"] = (200, {"dspace:state": "dspace:AGREED", "dspace:providerPid": "p-1",
                                              "dspace:agreement": honest})  # fmt: skip
    answers["/negotiations/p-1/agreement/verification"] = (200, {})
    assert negotiate(client, offer, me.did) == honest


def test_an_offer_is_negotiated_only_for_data_the_ledger_says_is_its_makers(liar, me):
    url, answers = liar
    offer = {"uid": "urn:o:1", "target": "urn:qdsn:dataset:line-1", "assigner": me.did,
             "permission": [{"action": "compute"}]}  # fmt: skip
    answers["/catalog/request"] = (200, {"dcat:dataset": [{"@id": "urn:qdsn:dataset:line-1",
                                                          "odrl:hasPolicy": [offer]}]})  # fmt: skip
    proc = qdsn("negotiate", url, "line-1", home=me.path, ok=False)
    said = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 1 and "holds no dataset line-1" in said and "Traceback" not in said, said


def test_a_delivery_of_other_records_than_the_transfer_asked_is_refused(market):  # noqa: F811 (the fixture)
    from qdsn.cli.certify import delivered_otherwise
    from qdsn.errors import IntegrityError
    from qdsn.node.consumer import negotiate, receive, transfer

    node, clients, homes = market
    cqc = clients["cqc"]
    other = negotiate(cqc, node.policies.offer("urn:qdsn:offer:line-2:read")[1])["uid"]
    t = transfer(cqc, other, "sealed-delivery", purpose="certification", records={"first": 0, "count": 3})
    d = cqc.call("POST", f"/transfers/{t['dspace:providerPid']}/data")  # line-2's records, handed for line-1's
    with pytest.raises(IntegrityError, match="records of line-2, not of line-1"):
        receive(node.ledger, homes["cqc"].key(), homes["cqc"].did, d, "line-1")
    got = receive(node.ledger, homes["cqc"].key(), homes["cqc"].did, d, "line-2")
    asked = {"key": t["dspace:providerPid"], "agreement": other, "first": 0, "count": 3}
    assert delivered_otherwise(asked, d, got) == []
    assert "not 0–4" in delivered_otherwise(asked | {"count": 5}, d, got)[0]
    assert "of transfer" in delivered_otherwise(asked | {"key": "urn:uuid:another"}, d, got)[0]


def test_fetch_takes_only_a_transfer_this_node_started(liar, me, tmp_path):
    url, _ = liar
    proc = qdsn("fetch", url, "urn:uuid:never", "--out", str(tmp_path / "r.jsonl"), home=me.path, ok=False)
    said = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 1 and "started no transfer" in said and not (tmp_path / "r.jsonl").exists(), said


def test_an_answer_too_large_to_hold_is_not_read(liar, me):
    import gzip

    from qdsn.api.client import NodeClient
    from qdsn.errors import IntegrityError

    url, answers = liar
    answers["/catalog"] = (200, {"dcat:dataset": ["x" * 5000]})
    client = NodeClient(url, me.key(), me.did, max_answer=4096)
    with pytest.raises(IntegrityError, match="answered more than 4,096 bytes to GET /catalog"):
        client.call("GET", "/catalog")
    assert NodeClient(url, me.key(), me.did).call("GET", "/catalog")["dcat:dataset"] == ["x" * 5000]
    bomb = gzip.compress(b"[" + b"0," * 10_000 + b"0]")  # small on the wire, large once decoded
    assert len(bomb) < 4096
    import http.server
    import threading

    class Bomb(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(bomb)))
            self.end_headers()
            self.wfile.write(bomb)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bomb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        there = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(IntegrityError, match="answered more than"):
            NodeClient(there, me.key(), me.did, max_answer=4096).call("GET", "/x")
        assert len(NodeClient(there, me.key(), me.did).call("GET", "/x")) == 10_001  # decoded once, whole
    finally:
        server.shutdown()
        server.server_close()
