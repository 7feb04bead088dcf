"""RFC 9421 request signatures between nodes: the RFC's own Ed25519 example verifies through our
adapter, and forged, altered, stale, replayed and unknown-signer requests are refused."""

import base64
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms

from qdsn.api.app import origin
from qdsn.api.nonces import NonceStore
from qdsn.api.signatures import Headers, Message, Nonces, Resolver, inspect, sign, verify
from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature, InvalidInput, PermissionDenied, RateLimited
from qdsn.identity import did_key_from_public_key

from ..services import fresh_database

# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2.6 (Signing a Request Using ed25519).
RFC_PUBLIC = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    b"-----END PUBLIC KEY-----\n"
)
RFC_REQUEST = [
    ("Host", "example.com"),
    ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("Content-Type", "application/json"),
    (
        "Content-Digest",
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    ),
    ("Content-Length", "18"),
    (
        "Signature-Input",
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"',
    ),
    ("Signature", "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"),
]  # fmt: skip


class RFCKey(HTTPSignatureKeyResolver):
    def resolve_public_key(self, key_id):
        return load_pem_public_key(RFC_PUBLIC) if key_id == "test-key-ed25519" else None


def test_rfc9421_b26_example_verifies():
    msg = Message("POST", "https://example.com/foo?param=Value&Pet=dog", Headers(RFC_REQUEST))
    v = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=RFCKey())
    (result,) = v.verify(msg, max_age=timedelta(days=365 * 100))
    assert result.label == "sig-b26" and result.parameters["keyid"] == "test-key-ed25519"
    forged = RFC_REQUEST[:-1] + [("Signature", "sig-b26=:" + base64.b64encode(bytes(64)).decode() + ":")]
    with pytest.raises((InvalidSignature, CryptoInvalidSignature)):
        v.verify(
            Message("POST", "https://example.com/foo?param=Value&Pet=dog", Headers(forged)),
            max_age=timedelta(days=365 * 100),
        )


@pytest.fixture
def sender():
    key = SigningKey.generate()
    return key, did_key_from_public_key(key.verify_key.raw)


URL = "https://regulator.example:8443/ledger/submit?x=1"
BODY = b'{"hello": "world"}'


def signed(sender, body=BODY, url=URL, **kw):
    key, did = sender
    return sign("POST", url, [("Content-Type", "application/json")], body, key, did, **kw)


def keys_of(sender):
    key, did = sender
    return lambda k: key.verify_key.raw if k == did else None


def test_round_trip_names_the_signer(sender):
    headers = signed(sender)
    assert {k.lower() for k, _ in headers} >= {"content-digest", "signature-input", "signature"}
    assert verify("POST", URL, headers, BODY, keys_of(sender), Nonces()) == sender[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"hello": "mallory"}'}, "does not hold"),
        ({"url": "https://regulator.example:8443/ledger/submit?x=2"}, "does not hold"),
        ({"method": "PUT"}, "does not hold"),
    ],
)
def test_altered_requests_are_refused(sender, change, message):
    headers = signed(sender)
    args = {"method": "POST", "url": URL, "body": BODY} | change
    with pytest.raises(BadSignature, match=message):
        verify(args["method"], args["url"], headers, args["body"], keys_of(sender), Nonces())


def test_replayed_stale_future_unsigned_and_unknown(sender):
    nonces = Nonces()
    headers = signed(sender)
    verify("POST", URL, headers, BODY, keys_of(sender), nonces)
    with pytest.raises(BadSignature, match="replays a nonce"):
        verify("POST", URL, headers, BODY, keys_of(sender), nonces)
    old = signed(sender, now=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(BadSignature, match="older than"):
        verify("POST", URL, old, BODY, keys_of(sender), nonces)
    future = signed(sender, now=datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(BadSignature):
        verify("POST", URL, future, BODY, keys_of(sender), nonces)
    with pytest.raises(BadSignature, match="not signed"):
        verify("POST", URL, [("Content-Type", "application/json")], BODY, keys_of(sender), nonces)
    with pytest.raises(PermissionDenied, match="not a participant"):
        verify("POST", URL, signed(sender), BODY, lambda k: None, nonces)


def _edit(headers, name, old, new):
    return [(k, v.replace(old, new, 1) if k.lower() == name else v) for k, v in headers]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda h: _edit(h, "signature", "qdsn=:", "qdsn=:AAAA"), "not 64 bytes"),
        (lambda h: _edit(h, "signature", "qdsn=", "other="), "one signature labelled 'qdsn'"),
        (lambda h: h + [("Signature-Input", "x=()")], "2 signature-input fields"),
        (lambda h: _edit(h, "signature-input", "qdsn=(", "qdsn=((("), "not a structured dictionary"),
        (lambda h: _edit(h, "signature-input", ' "content-digest"', ""), "must cover exactly"),
        (lambda h: _edit(h, "signature-input", '"@target-uri"', '"@target-uri";req'), "must cover exactly"),
        (lambda h: [(k, re.sub(r"created=\d+", "created=1", v)) for k, v in h], "older than"),
        (lambda h: _edit(h, "signature-input", ";created=", ";expires=1;created="), "expired"),
        (lambda h: _edit(h, "signature-input", ";created=", ";created=1;x="), "unknown parameters: x"),
        (lambda h: _edit(h, "signature-input", 'alg="ed25519"', 'alg="hmac-sha256"'), "alg 'ed25519'"),
        (lambda h: _edit(h, "signature-input", 'tag="qdsn"', 'tag="other"'), "tag 'qdsn'"),
        (lambda h: _edit(h, "signature-input", 'keyid="did:', 'keyid="x:'), "keyid must be the sender's DID"),
        (lambda h: _edit(h, "signature-input", 'keyid="did:', 'keyid="did:' + "x" * 600), "at most 512"),
        (lambda h: _edit(h, "signature-input", 'nonce="', 'nonce="!'), "nonce of 16 to 128"),
        (lambda h: _edit(h, "signature-input", ";created=", ';created="1";x-created='), "unknown parameters"),
        (lambda h: [(k, v) for k, v in h if k.lower() != "content-digest"], "no Content-Digest"),
    ],
)
def test_a_signature_of_the_wrong_form_is_refused_before_its_key_is_looked_up(sender, edit, reason):
    looked_up = []
    with pytest.raises(BadSignature, match=reason):
        verify("POST", URL, edit(signed(sender)), BODY, lambda k: looked_up.append(k), Nonces())
    assert looked_up == []
    assert inspect(signed(sender)).keyid == sender[1]


def test_an_unknown_signer_is_looked_up_once(sender):
    looked_up = []
    with pytest.raises(PermissionDenied, match="not a participant"):
        verify("POST", URL, signed(sender), BODY, lambda k: looked_up.append(k), Nonces())
    assert looked_up == [sender[1]]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_nonces_are_kept_durably_and_taken_once(tmp_path, sender, database, request):
    if database == "sqlite":
        path = str(tmp_path / "nonces.db")
    else:
        path = fresh_database(request.getfixturevalue("postgres_url"), f"qdsn_{uuid.uuid4().hex[:12]}")
    store = NonceStore(path)
    headers = signed(sender)
    verify("POST", URL, headers, BODY, keys_of(sender), store)
    store.close()
    reopened = NonceStore(path)  # a restarted node
    with pytest.raises(BadSignature, match="replays a nonce"):
        verify("POST", URL, headers, BODY, keys_of(sender), reopened)
    results, start = [], threading.Barrier(8)

    def race():
        start.wait()
        results.append(reopened.use("n" * 32, int(time.time()), time.time() + 60))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]  # of concurrent requests with one nonce, one passes
    reopened.use("expired-nonce-0000", int(time.time()) - 400, time.time() - 10)
    reopened._pruned = 0.0
    assert reopened.use("another-nonce-0000", int(time.time()), time.time() + 60)
    with reopened.engine.connect() as c:
        left = {r[0] for r in c.exec_driver_sql("SELECT nonce FROM api_nonces")}
    assert "expired-nonce-0000" not in left and "n" * 32 in left  # pruned once its window is over
    reopened.close()


def test_key_lookups_for_strangers_are_limited_and_forgotten():
    now, looked_up, admitted = [0.0], [], {}

    def lookup(did):
        looked_up.append(did)
        return admitted.get(did)

    keys = Resolver(admitted.get, lookup, per_client=(2, 0.5), overall=(3, 1), forget=10, clock=lambda: now[0])
    assert keys("did:x:1", "a") is None and keys("did:x:1", "a") is None  # the second is remembered
    assert keys("did:x:2", "a") is None
    with pytest.raises(RateLimited) as e:
        keys("did:x:3", "a")
    assert e.value.retry_after == 2 and "try again in 2 s" in str(e.value)
    assert keys("did:x:3", "b") is None  # another client has its own allowance...
    with pytest.raises(RateLimited):
        keys("did:x:4", "c")  # ...within the node's overall one
    assert looked_up == ["did:x:1", "did:x:2", "did:x:3"]
    admitted["did:x:1"] = b"k" * 32
    assert keys("did:x:1", "a") == b"k" * 32  # known to the replica: no limit applies
    del admitted["did:x:1"]
    now[0] = 5.0
    keys.known = lambda did: None
    assert keys("did:x:1", "a") is None and looked_up[-1] == "did:x:3"  # still remembered as unknown
    now[0] = 11.0
    admitted["did:x:1"] = b"k" * 32
    assert keys("did:x:1", "a") == b"k" * 32 and looked_up[-1] == "did:x:1"  # admitted since: found


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Node.Example:443", ("https", "node.example")),
        ("http://127.0.0.1:8420/", ("http", "127.0.0.1:8420")),
        ("http://[::1]:80", ("http", "[::1]")),
    ],
)
def test_a_public_url_is_compared_as_clients_sign_it(url, expected):
    assert origin(url) == expected


@pytest.mark.parametrize("url", ["ftp://node", "node.example:8420", "https://node/api", "https://u@node", "http://:x"])
def test_a_public_url_that_is_not_one_is_refused(url):
    with pytest.raises(InvalidInput):
        origin(url)
