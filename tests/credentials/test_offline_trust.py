"""Offline verification is anchored in a consortium trust file, never in the bundle: a consortium a
forger builds from scratch under the same origin, with its own keys, fails against the real trust
file, naming the log key; without a trust file every bundle fails, saying why."""

import copy
import json

import pytest

from qdsn.errors import InvalidInput
from qdsn.node import trust
from qdsn.node.verification import bundle, verify_bundle, verify_online

from .consortium import ORIGIN, build


@pytest.fixture
def real(tmp_path):
    c = build(tmp_path / "real")
    yield c
    c.close()


@pytest.fixture
def forged(tmp_path):
    c = build(tmp_path / "forged")  # same regulator name, same origin, every key its own
    yield c
    c.close()


def _bundle(c, **kw):
    shown = c.present(c.issue(), **kw)
    return bundle(c.lab, shown)


def test_a_forged_consortium_fails_against_the_real_trust_file(real, forged):
    anchor = trust.load(trust.export(real.plant.ledger))
    assert anchor.origin == forged.plant.ledger.origin == ORIGIN and anchor.quorum == 2  # both members
    genuine, fake = _bundle(real), _bundle(forged)

    checks = verify_bundle(genuine, aud="did:web:buyer.example", nonce="n-1", trust=anchor)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert checks[0].name == "consortium" and "cosigned by 2 of 2 members" in checks[0].detail

    checks = verify_bundle(fake, aud="did:web:buyer.example", nonce="n-1", trust=anchor)
    first = checks[0]
    assert not first.ok and anchor.log_key.text() in first.detail and "not by the consortium's log key" in first.detail
    assert not next(c for c in checks if c.name == "checkpoint").ok  # the evidence too is checked with the real key

    # without an anchor, even a perfect-looking bundle says that nothing ties it to a known consortium
    for doc in (fake, genuine):
        checks = verify_bundle(doc, aud="did:web:buyer.example", nonce="n-1")
        assert not checks[0].ok and "nothing ties this bundle to a known consortium" in checks[0].detail
        assert all(c.ok for c in checks[1:]), [c for c in checks[1:] if not c.ok]  # the rest alone proves nothing


def test_a_forger_cannot_borrow_the_real_log_around_its_own_checkpoint(real, forged):
    anchor = trust.load(trust.export(real.plant.ledger))
    genuine, fake = _bundle(real), _bundle(forged)
    mixed = fake | {"checkpoint": genuine["checkpoint"]}  # a real signed checkpoint over a forged log
    (first, *_) = verify_bundle(mixed, trust=anchor)
    assert not first.ok and "not by the consortium's log key" in first.detail
    longer = copy.deepcopy(genuine)  # the real log with an entry the checkpoint does not cover
    longer["log"].append(fake["log"][-1])
    assert not verify_bundle(longer, trust=anchor)[0].ok
    shorter = genuine | {"log": genuine["log"][:-1]}  # truncated: the checkpoint no longer matches the tree
    (first, *_) = verify_bundle(shorter, trust=anchor)
    assert not first.ok and "is not the tree of its checkpoint" in first.detail


def test_the_quorum_of_the_trust_file_is_asked_of_the_bundle(real):
    doc = _bundle(real)
    export = trust.export(real.plant.ledger)
    anchor = trust.load(export)
    assert verify_bundle(doc, trust=anchor)[0].ok
    # a bundle whose checkpoint carries one member's cosignature only
    body, *sigs = doc["checkpoint"].split("\n\n", 1)[0], *doc["checkpoint"].split("\n\n", 1)[1].splitlines()
    one = body + "\n\n" + "\n".join(s for s in sigs if real.maker.did not in s) + "\n"
    (first, *_) = verify_bundle(doc | {"checkpoint": one}, trust=anchor)
    assert not first.ok and "1 cosignatures of the trust file's members, 2 required" in first.detail
    assert verify_bundle(doc | {"checkpoint": one}, trust=anchor, quorum=1)[0].ok
    with pytest.raises(InvalidInput, match="at least one cosignature"):
        verify_bundle(doc, trust=anchor, quorum=0)


def test_a_trust_file_is_checked_and_its_fingerprint_is_stable(real, forged):
    a, b = trust.export(real.plant.ledger), trust.export(real.lab.ledger)
    assert a["fingerprint"] == b["fingerprint"] != trust.export(forged.plant.ledger)["fingerprint"]
    assert a["log_key"].startswith(ORIGIN + "+") and {c["did"] for c in a["cosigners"]} == {
        real.cqc.did,
        real.maker.did,
    }
    assert a["regulator"] == real.reg.did and a["quorum"] == 2
    for change in ({"quorum": 1}, {"log_key": trust.export(forged.plant.ledger)["log_key"]},
                   {"cosigners": a["cosigners"][:1]}):  # fmt: skip
        with pytest.raises(InvalidInput, match="fingerprint does not match"):
            trust.load(a | change)
    for bad in ({"quorum": 0}, {"quorum": 3}, {"type": "x"}, {"log_key": a["cosigners"][0]["key"]}):
        doc = a | bad
        doc["fingerprint"] = trust.fingerprint(doc)
        with pytest.raises(InvalidInput):
            trust.load(doc)
    lacking = {k: v for k, v in a.items() if k != "cosigners"}
    lacking["fingerprint"] = trust.fingerprint(lacking)
    with pytest.raises(InvalidInput, match="lacks"):
        trust.load(lacking)
    assert trust.load(json.loads(json.dumps(a))).fingerprint == a["fingerprint"]


def test_a_node_verifying_online_against_a_trust_file_checks_its_own_log_key(real, forged):
    shown = real.present(real.issue())
    checks = verify_online(real.lab, shown, aud="did:web:buyer.example", nonce="n-1",
                           trust=trust.load(trust.export(real.plant.ledger)))  # fmt: skip
    assert checks[0].name == "consortium" and all(c.ok for c in checks), [c for c in checks if not c.ok]
    other = trust.load(trust.export(forged.plant.ledger))
    checks = verify_online(real.lab, shown, aud="did:web:buyer.example", nonce="n-1", trust=other)
    assert not checks[0].ok and other.log_key.text() in checks[0].detail
    assert not next(c for c in checks if c.name == "checkpoint").ok
