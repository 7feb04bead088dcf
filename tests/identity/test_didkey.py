"""did:key against the W3C CCG did:key Ed25519/X25519 test vectors (tests/fixtures)."""

import json
from pathlib import Path

import pytest

from qdsn.crypto import SigningKey
from qdsn.crypto.encoding import b58encode
from qdsn.errors import InvalidInput
from qdsn.identity import did_document, did_key_from_public_key, ed25519_keys, public_key_from_did_key, resolve
from qdsn.identity.didkey import x25519_from_ed25519

VECTORS = {
    k: v
    for k, v in json.loads(
        (Path(__file__).parent.parent / "fixtures" / "did-key-ed25519-x25519.json").read_text()
    ).items()
    if k.startswith("did:")
}


@pytest.mark.parametrize("did", sorted(VECTORS))
def test_w3c_vectors(did):
    v = VECTORS[did]
    pub = SigningKey.from_seed(bytes.fromhex(v["seed"])).verify_key.raw
    assert b58encode(pub) == v["publicKeyBase58"]
    assert did_key_from_public_key(pub) == did
    assert public_key_from_did_key(did) == pub
    assert public_key_from_did_key(did + "#" + did[8:]) == pub
    assert b58encode(x25519_from_ed25519(pub)) == v["keyAgreementPublicKeyBase58"]
    doc = did_document(did, pub)
    assert doc["keyAgreement"] == [did + v["keyAgreementId"]]
    assert doc["verificationMethod"][0]["publicKeyMultibase"] == did[8:]


def test_document_lists_the_key_as_multikey_and_jwk():
    did = sorted(VECTORS)[0]
    doc = resolve(did)
    assert doc["id"] == did
    types = [vm["type"] for vm in doc["verificationMethod"]]
    assert types[:2] == ["Multikey", "JsonWebKey"]
    jwk = doc["verificationMethod"][1]["publicKeyJwk"]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert ed25519_keys(doc) == [public_key_from_did_key(did)]


@pytest.mark.parametrize(
    "bad",
    [
        "did:web:example.com",
        "did:key:",
        "did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",  # no multibase prefix
        "did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",  # an X25519 key, not Ed25519
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",  # truncated
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDoo0p",  # '0' is not base58
    ],
)
def test_malformed_did_key_is_refused(bad):
    with pytest.raises(InvalidInput):
        public_key_from_did_key(bad)
