"""did:web mapping (examples of the W3C CCG did:web spec) and resolution over real HTTPS on loopback."""

import http.server
import json
import ssl
import threading

import httpx
import pytest
import trustme

from qdsn.crypto import SigningKey
from qdsn.errors import IntegrityError, InvalidInput, NotFound
from qdsn.identity import did_document, did_web_to_url, ed25519_keys, resolve_did_web, url_to_did_web


@pytest.mark.parametrize(
    "did,url",
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ("did:web:example.com%3A3000", "https://example.com:3000/.well-known/did.json"),
    ],
)
def test_did_url_mapping_both_ways(did, url):
    assert did_web_to_url(did) == url
    assert url_to_did_web(url) == did


@pytest.mark.parametrize("bad", ["did:web:", "did:web:example.com::x", "did:key:z6Mk", "did:web:a%2Fb"])
def test_bad_did_web_is_refused(bad):
    with pytest.raises(InvalidInput):
        did_web_to_url(bad)


@pytest.fixture(scope="module")
def https_server():
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    docs: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = docs.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/did+json")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with httpx.Client(verify=client_ctx) as client:
        yield server.server_address[1], docs, client
    server.shutdown()


def test_resolve_over_https(https_server):
    port, docs, client = https_server
    did = f"did:web:127.0.0.1%3A{port}:org:acme"
    key = SigningKey.generate().verify_key.raw
    docs["/org/acme/did.json"] = json.dumps(did_document(did, key)).encode()
    doc = resolve_did_web(did, client)
    assert doc["id"] == did and ed25519_keys(doc) == [key]


def test_document_for_another_did_is_refused(https_server):
    port, docs, client = https_server
    did = f"did:web:127.0.0.1%3A{port}:org:mallory"
    docs["/org/mallory/did.json"] = json.dumps(did_document("did:web:elsewhere", bytes(32))).encode()
    with pytest.raises(IntegrityError):
        resolve_did_web(did, client)


def test_missing_document(https_server):
    port, _, client = https_server
    with pytest.raises(NotFound):
        resolve_did_web(f"did:web:127.0.0.1%3A{port}:nobody", client)


def test_untrusted_certificate_is_refused(https_server):
    port, docs, _ = https_server
    docs["/.well-known/did.json"] = b"{}"
    with httpx.Client() as default_trust, pytest.raises(NotFound):
        resolve_did_web(f"did:web:127.0.0.1%3A{port}", default_trust)
