"""What a node fetches when it verifies or bundles a certificate is never chosen by the thing under
verification: `POST /bundle` takes the certificate's record from the ledger by number, refuses one whose
recorded issuer is not the presentation's, fetches only the recorded status list, and hands on its
token only once it verifies under the issuer's key; a certifier cannot record a status list the node
would fetch inside its own network either. An internal service stands at 127.0.0.2 (a cloud metadata
service, say): the tests allow the nodes 127.0.0.1 alone."""

import http.server
import threading
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.credentials import sdjwt
from qdsn.errors import IntegrityError, InvalidInput, Unavailable
from qdsn.ledger import tx
from qdsn.node import verification

from .consortium import URI, build

SECRET = b'{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG","Token":"IQoJb3JpZ2lu..."}'


class Internal(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    body = SECRET

    def do_GET(self):
        Internal.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def serve(host: str, body: bytes = SECRET):
    handler = type("Handler", (Internal,), {"body": body})
    srv = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://{host}:{srv.server_address[1]}"


@pytest.fixture
def internal():
    Internal.hits = []
    srv, base = serve("127.0.0.2")
    yield base + "/latest/meta-data/iam/security-credentials/node-role"
    srv.shutdown()


@pytest.fixture
def c(tmp_path):
    c = build(tmp_path / "c")
    yield c
    c.close()


def forge(c, key, number: str, uri: str) -> str:
    return sdjwt.issue({"iss": key.did, "vct": "urn:x", "certificate_number": number,
                        "evidence": {"checkpoint": {"size": 1}},
                        "status": {"status_list": {"idx": 0, "uri": uri}}}, key.key())  # fmt: skip


def test_a_member_cannot_bundle_another_issuers_certificate_with_a_status_uri_of_its_choice(c, internal):
    issued = {"credential": "CQC-2026-0001", "vct": "urn:x", "subject": c.maker.did, "hash": "00" * 32,
              "status_list": "https://cqc.example/sl/1", "index": 0}  # fmt: skip
    c.plant.order([c.cqc.sign("credential.issue", issued)])
    c.cosign()
    forged = forge(c, c.maker, "CQC-2026-0001", internal)  # the MANUFACTURER signs, naming CQC's number
    r = TestClient(create_app(c.lab)).post("/bundle", json={"presentation": forged})  # anonymous
    assert r.status_code == 403, r.text
    assert "issued by" in r.json()["detail"] and "not by the presentation's issuer" in r.json()["detail"]
    assert "SecretAccessKey" not in r.text and Internal.hits == []


def test_the_issuers_own_presentation_cannot_choose_the_status_list_fetched(c, internal):
    c.issue()  # recorded with the lab's own status list URI
    forged = forge(c, c.cqc, "CQC-2026-0001", internal)  # the issuer's key, another URI in the claims
    r = TestClient(create_app(c.lab)).post("/bundle", json={"presentation": forged})
    assert r.status_code == 200, r.text
    assert r.json()["status_list"]["uri"] == URI and r.json()["status_list"]["token"].startswith("eyJ")
    assert Internal.hits == []


@pytest.mark.parametrize("uri", [
    "http://169.254.169.254/latest/meta-data/", "http://cqc.example/status-lists/1", "https://u@cqc.example/sl",
    "https://cqc.example/sl?x=1", "https://cqc.example/sl#1", "file:///etc/passwd", "gopher://cqc.example/1",
    "https://cqc.example/a/../sl", "cqc.example/sl", "https://cqc.example", "http://127.0.0.1.evil.example/sl",
])  # fmt: skip
def test_a_status_list_that_is_not_an_https_url_is_refused_on_the_ledger(uri):
    payload = {"credential": "C-1", "vct": "urn:x", "subject": "did:key:z6Mk", "hash": "00" * 32, "status_list": uri,
               "index": 0}  # fmt: skip
    with pytest.raises(InvalidInput, match="status list is an https URL"):
        tx.check_payload("credential.issue", payload)


@pytest.mark.parametrize("uri", ["https://cqc.example/status-lists/1", "https://[2001:db8::1]:8443/sl/1",
                                 "http://127.0.0.1:8080/status-lists/1", "http://localhost/sl"])  # fmt: skip
def test_an_https_status_list_is_taken(uri):
    tx.check_payload("credential.issue", {"credential": "C-1", "vct": "urn:x", "subject": "did:key:z6Mk",
                                          "hash": "00" * 32, "status_list": uri, "index": 0})  # fmt: skip


def test_a_certifier_cannot_make_every_node_fetch_an_internal_address(c, internal):
    sd = c.issue(uri=internal.replace("/latest/meta-data/iam/security-credentials/node-role", "/status-lists/1"))
    shown = c.present(sd)
    by = {x.name: x for x in verification.verify_online(c.plant, shown, aud="did:web:buyer.example", nonce="n-1")}
    assert not by["status"].ok and "not a public address" in by["status"].detail, by["status"].detail
    r = TestClient(create_app(c.plant)).post("/bundle", json={"presentation": shown})
    assert r.status_code == 503 and "SecretAccessKey" not in r.text
    assert Internal.hits == []


def test_a_bundled_status_token_is_verified_under_the_issuers_key(c):
    srv, base = serve("127.0.0.1", b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA")  # not the issuer's token
    try:
        sd = c.issue(uri=f"{base}/status-lists/1")
        with pytest.raises(IntegrityError, match="does not hold"):
            verification.bundle(c.plant, c.present(sd))  # the plant has no copy of the lab's list: it fetches
        r = TestClient(create_app(c.plant)).post("/bundle", json={"presentation": c.present(sd)})
        assert r.status_code == 422, r.text
    finally:
        srv.shutdown()


def test_a_status_list_is_fetched_only_from_the_issuers_recorded_node(c):
    srv, base = serve("127.0.0.1", b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA")
    try:
        sd = c.issue(uri=f"{base}/status-lists/1")
        c.plant.order([c.reg.sign("identity.endpoint", {"did": c.cqc.did, "url": "https://cqc.example"})])
        before = len(Internal.hits)
        by = {x.name: x for x in verification.verify_online(c.plant, c.present(sd), aud="did:web:buyer.example",
                                                             nonce="n-1")}  # fmt: skip
        assert not by["status"].ok and "not the node the ledger records" in by["status"].detail, by["status"].detail
        assert len(Internal.hits) == before
        with pytest.raises(Unavailable, match="not the node the ledger records"):
            verification.bundle(c.plant, c.present(sd))
    finally:
        srv.shutdown()
