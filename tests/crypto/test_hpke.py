"""HPKE sealing: RFC 9180's test vector A.1 (our suite), keys from the did:key derivation, and
refusals for the wrong key, context or bytes."""

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from qdsn.crypto import SigningKey, hpke
from qdsn.errors import IntegrityError
from qdsn.identity.didkey import x25519_from_ed25519

# RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode
A1 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
    "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad": "436f756e742d30",  # A.1.1.1, sequence number 0
    "ct": "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
}


def test_rfc9180_a1_key_pair():
    sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(A1["skRm"]))
    assert sk.public_key().public_bytes_raw().hex() == A1["pkRm"]


def test_rfc9180_a1_first_encryption_opens_with_our_suite():
    # The single-shot API is the context's first message (sequence 0), with no associated data;
    # A.1's first message has aad "Count-0", so it is opened through the same suite with that aad.
    sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(A1["skRm"]))
    aad, sealed = bytes.fromhex(A1["aad"]), bytes.fromhex(A1["enc"] + A1["ct"])
    pt = rust_openssl.hpke._decrypt_with_aad(hpke._SUITE, sealed, sk, info=bytes.fromhex(A1["info"]),
                                             aad=aad)  # fmt: skip
    assert pt.hex() == A1["pt"] == b"Beauty is truth, truth beauty".hex()


def test_rfc9180_a1_recipient_opens_through_unseal_only_in_its_context():
    sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(A1["skRm"]))
    sealed = hpke.seal(bytes.fromhex(A1["pkRm"]), bytes.fromhex(A1["pt"]), bytes.fromhex(A1["info"]))
    assert len(sealed) == hpke.ENC_LENGTH + len(bytes.fromhex(A1["pt"])) + 16
    assert hpke.unseal(sk, sealed, bytes.fromhex(A1["info"])).hex() == A1["pt"]
    with pytest.raises(IntegrityError, match="does not open"):
        hpke.unseal(sk, sealed, b"another context")


def test_sealed_to_a_did_key_opens_with_its_signing_key_only():
    alice, mallory = SigningKey.generate(), SigningKey.generate()
    to_alice = x25519_from_ed25519(alice.verify_key.raw)
    assert hpke.agreement_key(alice).public_key().public_bytes_raw() == to_alice
    sealed = hpke.seal(to_alice, b"readings", b"qdsn test")
    assert sealed != hpke.seal(to_alice, b"readings", b"qdsn test")  # a fresh ephemeral key each time
    assert hpke.unseal(alice, sealed, b"qdsn test") == b"readings"
    with pytest.raises(IntegrityError):
        hpke.unseal(mallory, sealed, b"qdsn test")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(IntegrityError):
        hpke.unseal(alice, bytes(flipped), b"qdsn test")
    with pytest.raises(IntegrityError, match="too short"):
        hpke.unseal(alice, sealed[:40], b"qdsn test")


def test_key_objects_are_built_once_per_key(monkeypatch):
    """Sealing many messages to one recipient, or opening many with one signing key, builds its X25519
    key object once: each build costs about an X25519 multiplication (the private side derives its
    public key), as much as the sealing's own work."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    built = []

    class Counting:
        @staticmethod
        def from_public_bytes(data: bytes):
            built.append("public")
            return X25519PublicKey.from_public_bytes(data)

        @staticmethod
        def from_private_bytes(data: bytes):
            built.append("private")
            return X25519PrivateKey.from_private_bytes(data)

    monkeypatch.setattr(hpke, "X25519PublicKey", Counting)
    monkeypatch.setattr(hpke, "X25519PrivateKey", Counting)
    key = SigningKey.from_seed(bytes([42]) * 32)
    recipient = hpke.agreement_key(key).public_key().public_bytes_raw()
    for i in range(5):
        info = b"report" + bytes([i])
        assert hpke.unseal(key, hpke.seal(recipient, b"share", info), info) == b"share"
    assert built.count("public") <= 1 and built.count("private") <= 1, built
