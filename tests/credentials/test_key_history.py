"""Key rotation keeps every artifact signed before it verifiable, under the key its signer held then on the
ledger: certificates a certifier issued, attestations a manufacturer made, checkpoints the regulator signed,
online and in offline bundles under trust files exported before and after the rotation; a certificate signed
with a retired key after the rotation is refused."""

import time

import pytest

from qdsn.credentials import sdjwt
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.node import trust
from qdsn.node.follow import log_key
from qdsn.node.verification import bundle, verify_bundle, verify_online

from .consortium import build


@pytest.fixture
def c(tmp_path):
    c = build(tmp_path / "real")
    yield c
    c.close()


def _ok(checks):
    return [x for x in checks if not x.ok] == []


def _cosign(c):
    """A checkpoint signed under the regulator's key now, cosigned by both members with their keys now."""
    ledger = c.plant.ledger
    note = ledger.sign_checkpoint(c.reg.log_signer())
    for m in (c.cqc, c.maker):
        note = ledger.witness(note, log_key(ledger), m.cosigner(), int(time.time()))
    return note


def test_every_role_rotates_and_what_was_signed_before_still_verifies(c):
    before = trust.load(trust.export(c.plant.ledger))
    first = c.issue("CQC-1")
    shown_first = c.present(first)
    assert _ok(verify_online(c.lab, shown_first, aud="did:web:buyer.example", nonce="n-1"))

    old_cqc = c.cqc.key()
    for home in (c.reg, c.cqc, c.maker):  # the regulator (log key), the certifier, the manufacturer (witness)
        home.rotate_key(lambda env: c.plant.order([env]))
    assert c.cqc.key().verify_key.raw != old_cqc.verify_key.raw

    # the log keeps checkpointing under the new key, consistent with the one signed under the old key
    note = _cosign(c)
    assert c.plant.ledger.open_checkpoint(note)[0].size == c.plant.ledger.size
    after = trust.load(trust.export(c.plant.ledger))
    assert after.log_key.key.raw != before.log_key.key.raw

    # the certificate issued before the rotations verifies online and offline, under either trust file
    checks = verify_online(c.lab, shown_first, aud="did:web:buyer.example", nonce="n-1")
    assert _ok(checks), [x for x in checks if not x.ok]
    doc = bundle(c.lab, shown_first)
    for anchor in (before, after):
        checks = verify_bundle(doc, aud="did:web:buyer.example", nonce="n-1", trust=anchor)
        assert _ok(checks), [x for x in checks if not x.ok]
        assert "cosigned by 2 of 2 members" in checks[0].detail

    # a new certificate, signed by the certifier's new key on a new run and checkpoint, verifies too
    second = c.issue("CQC-2")
    checks = verify_bundle(bundle(c.lab, c.present(second)), aud="did:web:buyer.example", nonce="n-1", trust=before)
    assert _ok(checks), [x for x in checks if not x.ok]


def test_a_certificate_signed_with_the_retired_key_after_the_rotation_is_refused(c):
    old = c.cqc.key()
    c.cqc.rotate_key(lambda env: c.plant.order([env]))
    # the certifier's node issues with its new key; a thief of the old key re-signs the same claims with it
    sd = c.issue("CQC-3")
    jwt, rest = sd.split("~", 1)
    header, payload, _ = jwt.split(".")
    forged_sig = b64url_encode(old.sign(f"{header}.{payload}".encode()))
    forged = f"{header}.{payload}.{forged_sig}~{rest}"
    assert sdjwt.parse(forged).jwt != sdjwt.parse(sd).jwt
    checks = verify_online(c.lab, c.present(forged), aud="did:web:buyer.example", nonce="n-1")
    assert not checks[0].ok and checks[0].name == "certificate", checks
    assert _ok(verify_online(c.lab, c.present(sd), aud="did:web:buyer.example", nonce="n-1"))
    assert b64url_decode(forged_sig) != b64url_decode(jwt.split(".")[2])


def test_a_bundle_whose_log_rotated_to_a_key_the_trust_file_does_not_hold_is_refused(tmp_path, c):
    forged = build(tmp_path / "forged")
    try:
        anchor = trust.load(trust.export(c.plant.ledger))
        forged.reg.rotate_key(lambda env: forged.plant.order([env]))  # a history, but not from the real key
        doc = bundle(forged.lab, forged.present(forged.issue("F-1")))
        (first, *_) = verify_bundle(doc, trust=anchor)
        assert not first.ok and "or a key rotated from it" in first.detail
    finally:
        forged.close()
