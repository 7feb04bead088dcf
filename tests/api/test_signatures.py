"""RFC 9421 request signatures between nodes: the RFC's own Ed25519 example verifies through our
adapter, and forged, altered, stale, replayed and unknown-signer requests are refused."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms

from qdsn.api.signatures import Headers, Message, Nonces, sign, verify
from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature, PermissionDenied
from qdsn.identity import did_key_from_public_key

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
    with pytest.raises(BadSignature, match="does not hold"):
        verify("POST", URL, old, BODY, keys_of(sender), nonces)
    future = signed(sender, now=datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(BadSignature):
        verify("POST", URL, future, BODY, keys_of(sender), nonces)
    with pytest.raises(BadSignature, match="not signed"):
        verify("POST", URL, [("Content-Type", "application/json")], BODY, keys_of(sender), nonces)
    with pytest.raises(PermissionDenied, match="not a participant"):
        verify("POST", URL, signed(sender), BODY, lambda k: None, nonces)
