"""Validation, atomic batches, the state fold, proofs from the SQL tree, checkpoints and witnessing."""

import base64
import random
from dataclasses import replace

import pytest
from sqlalchemy import insert

from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import BadSignature, Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, QDSNError
from qdsn.identity import multikey_from_public_key
from qdsn.ledger import Ledger, merkle, tx
from qdsn.ledger.checkpoint import COSIGNATURE_V1, Checkpoint, NoteSigner, cosigned_message, sign_note
from qdsn.ledger.ledger import Receipt
from qdsn.ledger.store import cosignatures

from .conftest import ORIGIN, member


def snapshot(led: Ledger):
    return led.size, led.root(), led.state.digest(), len(led.store.rows(0, 10**9))


def rotate_payload(m, new_key):
    prev, new = multikey_from_public_key(m.key.verify_key.raw), multikey_from_public_key(new_key.verify_key.raw)
    proof = b64url_encode(new_key.sign(tx.rotation_message(m.did, prev, new)))
    return {"did": m.did, "previous_key": prev, "new_key": new, "proof": proof}


def test_genesis_must_be_a_regulator_registering_itself(tmp_path):
    led = Ledger.open(str(tmp_path / "l.db"), origin=ORIGIN)
    e = member()
    with pytest.raises(PermissionDenied, match="first transaction"):
        led.append([e.sign("identity.register", e.register_payload())])
    assert led.size == 0


def bad_cases(regulator):
    e = member()
    ok = regulator.sign("identity.register", e.register_payload())
    tampered_sig = ok.signature[:-2] + ("A" if ok.signature[-2] != "A" else "B") + ok.signature[-1]
    return [
        ("wrong signature", replace(ok, signature=tampered_sig), BadSignature),
        ("payload changed after signing", replace(ok, payload={**ok.payload, "name": "Other"}), BadSignature),
        ("unknown type", replace(ok, type="dataset.teleport"), NotFound),
        ("role not allowed", e.sign("identity.register", member().register_payload()), PermissionDenied),
        ("bad nonce", replace(ok, nonce="xyz"), InvalidInput),
        ("bad time", replace(ok, created="yesterday"), InvalidInput),
        ("short signature", replace(ok, signature="AAAA"), InvalidInput),
        ("extra payload field", replace(ok, payload={**ok.payload, "admin": True}), InvalidInput),
        ("wrong payload type", replace(ok, payload={**ok.payload, "name": 7}), InvalidInput),
        ("unknown role", replace(ok, payload={**ok.payload, "role": "king"}), InvalidInput),
        (
            "did:key and key disagree",
            regulator.sign("identity.register", {**e.register_payload(), "key": member().register_payload()["key"]}),
            InvalidInput,
        ),
        ("bad submitter", replace(ok, submitter="mallory"), InvalidInput),
    ]


@pytest.mark.parametrize("i", range(12))
def test_bad_transactions_are_refused_and_nothing_is_written(ledger, regulator, i):
    label, env, error = bad_cases(regulator)[i]
    before = snapshot(ledger)
    good = regulator.sign("identity.register", member().register_payload())
    with pytest.raises(error) as exc:
        ledger.append([good, env])
    assert "transaction 1" in str(exc.value), label
    assert snapshot(ledger) == before
    reopened = Ledger.open(ledger.store.url)
    assert snapshot(reopened) == before


def test_replayed_nonce_is_refused(ledger, regulator):
    env = regulator.sign("identity.register", member().register_payload())
    ledger.append([env])
    with pytest.raises(Conflict, match="replay"):
        ledger.append([env])
    twin = regulator.sign("identity.register", member().register_payload(), nonce=env.nonce)
    with pytest.raises(Conflict, match="replay"):
        ledger.append([twin])
    a = regulator.sign("identity.register", member().register_payload())
    b = regulator.sign("identity.register", member().register_payload(), nonce=a.nonce)
    with pytest.raises(Conflict):
        ledger.append([a, b])
    e = member()
    ledger.append([regulator.sign("identity.register", e.register_payload())])
    copycat = e.sign("identity.rotate_key", rotate_payload(e, member().key), nonce=env.nonce)
    with pytest.raises(Conflict, match="already in the log"):  # a nonce is unique in the whole log
        ledger.append([copycat])


def test_registering_twice_is_a_conflict(ledger, regulator):
    e = member()
    ledger.append([regulator.sign("identity.register", e.register_payload())])
    with pytest.raises(Conflict, match="already registered"):
        ledger.append([regulator.sign("identity.register", e.register_payload())])


def test_skip_invalid_leaves_out_exactly_the_bad_ones(ledger, regulator):
    e = member()
    envs = [regulator.sign("identity.register", member().register_payload()) for _ in range(600)]
    envs[100] = replace(envs[100], payload={**envs[100].payload, "name": "forged"})  # bad signature
    envs[300] = envs[299]  # replay within the batch
    envs.insert(400, regulator.sign("identity.register", e.register_payload()))
    envs.insert(401, e.sign("identity.rotate_key", rotate_payload(e, member().key)))  # depends on 400
    out = ledger.append(envs, skip_invalid=True)
    bad = [i for i, r in enumerate(out) if not isinstance(r, Receipt)]
    assert bad == [100, 300]
    assert isinstance(out[100], BadSignature) and isinstance(out[300], Conflict)
    assert ledger.size == 1 + len(envs) - 2


def test_key_rotation(ledger, regulator):
    e = member()
    ledger.append([regulator.sign("identity.register", e.register_payload())])
    new = member().key
    ledger.append([e.sign("identity.rotate_key", rotate_payload(e, new))])
    assert ledger.state.identities[e.did].key == new.verify_key.raw
    with pytest.raises(BadSignature):  # the old key no longer signs for e
        ledger.append([e.sign("identity.rotate_key", rotate_payload(e, member().key))])
    rotated = replace(e, key=new)  # the DID stays; the new key signs from now on
    newer = member().key
    ledger.append([rotated.sign("identity.rotate_key", rotate_payload(rotated, newer))])
    assert ledger.state.identities[e.did].key == newer.verify_key.raw


def test_a_rotated_out_key_never_comes_back(ledger, regulator, store_url):
    e, f = member(), member()
    ledger.append([regulator.sign("identity.register", m.register_payload()) for m in (e, f)])
    first, second = e.key, member().key
    ledger.append([e.sign("identity.rotate_key", rotate_payload(e, second))])
    now = replace(e, key=second)
    with pytest.raises(Conflict, match=f"new_key was retired by {e.did}"):  # back to the first key, even by its owner
        ledger.append([now.sign("identity.rotate_key", rotate_payload(now, first))])
    with pytest.raises(Conflict, match="new_key is the key of a registered participant"):
        ledger.append([now.sign("identity.rotate_key", rotate_payload(now, f.key))])
    assert ledger.state.identities[e.did].key == second.verify_key.raw
    before = snapshot(ledger)
    reopened = Ledger.open(store_url, origin=ORIGIN)  # the retired key is remembered across a restart
    assert snapshot(reopened) == before and first.verify_key.raw in reopened.state.retired
    with pytest.raises(Conflict, match="retired"):
        reopened.append([now.sign("identity.rotate_key", rotate_payload(now, first))])
    reopened.close()


def test_rotation_needs_the_new_keys_proof(ledger, regulator):
    e = member()
    ledger.append([regulator.sign("identity.register", e.register_payload())])
    payload = rotate_payload(e, member().key)
    payload["proof"] = b64url_encode(member().key.sign(b"not the rotation message"))
    with pytest.raises(BadSignature, match="proof"):
        ledger.append([e.sign("identity.rotate_key", payload)])


def test_rotation_only_for_oneself(ledger, regulator):
    e, f = member(), member()
    ledger.append([regulator.sign("identity.register", m.register_payload()) for m in (e, f)])
    with pytest.raises(PermissionDenied, match="only be submitted by the identity"):
        ledger.append([e.sign("identity.rotate_key", rotate_payload(f, member().key))])


def test_replaying_the_log_reproduces_root_and_state(ledger, regulator, tmp_path):
    members = [member(random.choice(["enterprise", "certifier"]), f"M{i}") for i in range(40)]
    ledger.append([regulator.sign("identity.register", m.register_payload()) for m in members])
    for m in members[:10]:
        ledger.append([m.sign("identity.rotate_key", rotate_payload(m, member().key))])
    replica = Ledger.open(str(tmp_path / "replica.db"), origin=ORIGIN)
    leaves = ledger.store.leaves(0, ledger.size)
    for i in range(0, len(leaves), 7):
        replica.append([tx.from_leaf(leaf) for leaf in leaves[i : i + 7]])
    assert replica.root() == ledger.root()
    assert replica.state.digest() == ledger.state.digest()
    assert replica.store.load_state(ORIGIN).digest() == ledger.state.digest()
    assert len(ledger.state.retired) == 10
    assert replica.store.identities() == ledger.store.identities()


def test_proofs_from_the_sql_tree_match_the_in_memory_tree(ledger, regulator, tmp_path):
    for n in (1, 2, 3, 5, 8, 13, 60):
        ledger.append([regulator.sign("identity.register", member().register_payload()) for _ in range(n)])
    leaves = ledger.store.leaves(0, ledger.size)
    mem = merkle.MemoryTree(leaves)
    size = ledger.size
    reopened = Ledger.open(ledger.store.url)
    assert reopened.root() == ledger.root() == merkle.root_at(size, mem)
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, size)
        i = rng.randrange(n)
        proof = reopened.inclusion_proof(i, n)
        assert proof == merkle.inclusion_proof(i, n, merkle.MemoryTree(leaves[:n]))
        merkle.verify_inclusion(merkle.leaf_hash(leaves[i]), i, n, proof, reopened.root_at(n))
        old = rng.randint(0, n)
        merkle.verify_consistency(
            old, n, reopened.root_at(old), reopened.root_at(n), reopened.consistency_proof(old, n)
        )
    with pytest.raises(NotFound):
        reopened.inclusion_proof(0, size + 1)


def test_checkpoints_are_signed_and_never_inconsistent(ledger, regulator):
    signer = NoteSigner(ORIGIN, regulator.key)
    note = ledger.sign_checkpoint(signer)
    cp = Checkpoint.parse(note.split("\n\n")[0] + "\n")
    assert (cp.size, cp.root) == (ledger.size, ledger.root())
    ledger.append([regulator.sign("identity.register", member().register_payload())])
    forged = sign_note(Checkpoint(ORIGIN, 1, bytes(32)).text(), signer)
    ledger.store.save_checkpoint(1, forged)  # as if this key had once signed another history
    with pytest.raises(IntegrityError):
        ledger.sign_checkpoint(signer)
    with pytest.raises(InvalidInput, match="origin"):
        ledger.sign_checkpoint(NoteSigner("other.log", regulator.key))


def cosign_payload(cosigned_note, cp, w, ts):
    line = next(ln for ln in cosigned_note.splitlines() if ln.startswith("— " + w.did))
    raw = base64.b64decode(line.split(" ")[2])
    return {
        "origin": cp.origin,
        "size": cp.size,
        "root": cp.root.hex(),
        "timestamp": ts,
        "signature": b64url_encode(raw[12:]),
    }


def test_witnessing_and_the_cosign_transaction(ledger, regulator, tmp_path):
    w = member("certifier", "CQC")
    ledger.append([regulator.sign("identity.register", w.register_payload())])
    log_signer = NoteSigner(ORIGIN, regulator.key)
    cosigner = NoteSigner(w.did, w.key, COSIGNATURE_V1)
    replica = Ledger.open(str(tmp_path / "w.db"), origin=ORIGIN)
    replica.append([tx.from_leaf(x) for x in ledger.store.leaves(0, ledger.size)])

    note = ledger.sign_checkpoint(log_signer)
    cosigned = replica.witness(note, log_signer.verifier(), cosigner, 1_700_000_000)
    merged = ledger.add_cosignature(cosigned, cosigner.verifier())
    cp = Checkpoint(ORIGIN, ledger.size, ledger.root())
    ledger.append([w.sign("checkpoint.cosign", cosign_payload(merged, cp, w, 1_700_000_000))])
    assert [c.cosigner for c in ledger.store.cosignatures()] == [w.did]

    wrong_root = {**cosign_payload(merged, cp, w, 1_700_000_000), "root": "00" * 32}
    with pytest.raises(IntegrityError, match="split view"):
        ledger.append([w.sign("checkpoint.cosign", wrong_root)])
    too_big = {**cosign_payload(merged, cp, w, 1_700_000_000), "size": ledger.size + 5}
    with pytest.raises(InvalidInput, match="beyond"):
        ledger.append([w.sign("checkpoint.cosign", too_big)])
    forged_sig = {**cosign_payload(merged, cp, w, 1_700_000_001)}
    with pytest.raises(BadSignature):
        ledger.append([w.sign("checkpoint.cosign", forged_sig)])

    # the log grows; the witness needs consistency with what it cosigned before
    ledger.append([regulator.sign("identity.register", member().register_payload()) for _ in range(5)])
    note2 = ledger.sign_checkpoint(log_signer)
    with pytest.raises(IntegrityError):  # a wrong proof
        replica.witness(note2, log_signer.verifier(), cosigner, 1_700_000_100, proof=[bytes(32)])
    replica.witness(
        note2, log_signer.verifier(), cosigner, 1_700_000_100, proof=ledger.consistency_proof(cp.size, ledger.size)
    )
    with pytest.raises(IntegrityError, match="older"):
        replica.witness(note, log_signer.verifier(), cosigner, 1_700_000_200)
    fork = sign_note(Checkpoint(ORIGIN, ledger.size + 3, bytes(32)).text(), log_signer)
    with pytest.raises(IntegrityError):
        replica.witness(
            fork, log_signer.verifier(), cosigner, 1_700_000_300, proof=ledger.consistency_proof(cp.size, ledger.size)
        )
    stranger = NoteSigner(ORIGIN, member().key)
    with pytest.raises(BadSignature):
        replica.witness(sign_note(cp.text(), stranger), log_signer.verifier(), cosigner, 1_700_000_400)


def test_the_largest_size_a_quorum_cosigned_is_asked_of_the_database(ledger):
    rng = random.Random(5)
    rows = [{"seq": i, "origin": ORIGIN, "size": rng.randrange(1, 40), "root": bytes(32),
             "cosigner": rng.choice("abcde"), "timestamp": i} for i in range(2000)]  # fmt: skip
    with ledger.store.engine.begin() as c:
        c.execute(insert(cosignatures), rows)
    for members, quorum in (({"a", "b", "c"}, 3), ({"a", "e"}, 2), ({"d"}, 1), ({"a", "b", "c", "d", "e"}, 5)):
        by_size: dict[int, set[str]] = {}
        for r in rows:
            if r["cosigner"] in members:
                by_size.setdefault(r["size"], set()).add(r["cosigner"])
        best = max((s for s, who in by_size.items() if len(who) >= quorum), default=None)
        assert ledger.store.cosigned(members, quorum) == (None if best is None else (best, sorted(by_size[best])))
    assert ledger.store.cosigned({"z"}, 1) is None and ledger.store.cosigned(set(), 1) is None


def test_a_pipelined_stream_matches_one_batch_at_a_time(ledger, regulator, tmp_path):
    batches = [
        [regulator.sign("identity.register", member().register_payload()) for _ in range(n)] for n in (300, 1, 600, 257)
    ]
    sequential = Ledger.open(str(tmp_path / "seq.db"), origin=ORIGIN)
    sequential.append([tx.from_leaf(ledger.store.leaves(0, 1)[0])])
    for batch in batches:
        sequential.append(batch)
    receipts = list(ledger.append_stream(iter(batches)))
    assert [len(r) for r in receipts] == [300, 1, 600, 257]
    assert ledger.root() == sequential.root() and ledger.state.digest() == sequential.state.digest()
    assert Ledger.open(ledger.store.url).root() == sequential.root()


def test_a_bad_batch_in_a_stream_stops_it_after_the_good_ones(ledger, regulator):
    good = [regulator.sign("identity.register", member().register_payload()) for _ in range(300)]
    replay_in_flight = [regulator.sign("identity.register", member().register_payload(), nonce=good[5].nonce)]
    later = [regulator.sign("identity.register", member().register_payload())]
    stream = ledger.append_stream(iter([good, replay_in_flight, later]))
    assert len(next(stream)) == 300
    with pytest.raises(Conflict, match="transaction 0"):
        next(stream)
    assert ledger.size == 301
    ledger.append(later)  # nothing of the stream is left half-done; the ledger takes new work
    assert ledger.size == 302


def test_a_stream_batch_may_cosign_the_batch_in_flight_before_it(ledger, regulator):
    w = member("certifier", "CQC")
    first = [regulator.sign("identity.register", w.register_payload())]
    first += [regulator.sign("identity.register", member().register_payload()) for _ in range(4)]
    size = ledger.size + len(first)
    mem = merkle.MemoryTree([*ledger.store.leaves(0, ledger.size), *(e.leaf() for e in first)])
    root = merkle.root_at(size, mem)
    text = Checkpoint(ORIGIN, size, root).text()
    ts = 1_700_000_000
    sig = w.key.sign(cosigned_message(text, ts))
    cosign = w.sign(
        "checkpoint.cosign",
        {"origin": ORIGIN, "size": size, "root": root.hex(), "timestamp": ts, "signature": b64url_encode(sig)},
    )
    list(ledger.append_stream(iter([first, [cosign]])))
    assert [c.size for c in ledger.store.cosignatures()] == [size]


def test_a_forged_batch_in_flight_discards_the_one_staged_on_it(ledger, regulator):
    forged = [regulator.sign("identity.register", member().register_payload()) for _ in range(600)]
    forged[400] = replace(forged[400], payload={**forged[400].payload, "name": "forged"})
    after = [regulator.sign("identity.register", member().register_payload()) for _ in range(600)]
    before = snapshot(ledger)
    with pytest.raises(BadSignature, match="transaction 400"):
        list(ledger.append_stream(iter([forged, after])))
    assert snapshot(ledger) == before
    assert len(ledger.append(after)) == 600  # the workers' pipes are still in step


def declare(owner, dataset="cable-line-1"):
    return owner.sign(
        "dataset.declare",
        {
            "dataset": dataset,
            "title": "Line 1 conductor resistance",
            "kind": "measurements",
            "characteristics": [{"name": "resistance", "unit": "Ω", "lsl": 0.0, "usl": 18.1, "critical": True}],
        },
    )


def anchor(owner, first, count, dataset="cable-line-1"):
    return owner.sign("dataset.anchor", {"dataset": dataset, "first": first, "count": count, "root": "ab" * 32})


def test_datasets_are_declared_anchored_in_order_and_shredded(ledger, regulator, tmp_path):
    maker, other = member(), member()
    ledger.append([regulator.sign("identity.register", m.register_payload()) for m in (maker, other)])
    with pytest.raises(PermissionDenied, match="role regulator"):
        ledger.append([declare(regulator)])
    ledger.append([declare(maker), anchor(maker, 0, 100), anchor(maker, 100, 50)])
    ds = ledger.state.datasets["cable-line-1"]
    assert (ds.owner, ds.anchored, ds.batches) == (maker.did, 150, 2)
    for bad, error, why in [
        (anchor(maker, 149, 10), Conflict, "starts at 150"),  # overlap
        (anchor(maker, 151, 10), Conflict, "starts at 150"),  # gap: a batch left out
        (anchor(other, 150, 10), PermissionDenied, "belongs to"),
        (anchor(maker, 0, 1, dataset="nope"), NotFound, "not declared"),
        (declare(other), Conflict, "already declared"),
    ]:
        with pytest.raises(error, match=why):
            ledger.append([bad])
    ledger.append([maker.sign("dataset.shred", {"dataset": "cable-line-1"})])
    with pytest.raises(Conflict, match="shredded"):
        ledger.append([anchor(maker, 150, 1)])
    replica = Ledger.open(str(tmp_path / "replica.db"), origin=ORIGIN)
    replica.append([tx.from_leaf(x) for x in ledger.store.leaves(0, ledger.size)])
    assert replica.state.digest() == ledger.state.digest() == Ledger.open(ledger.store.url).state.digest()
    assert replica.store.datasets() == ledger.store.datasets()


def test_devices_are_registered_once_by_their_owner(ledger, regulator, tmp_path):
    maker, device = member(), member()
    ledger.append([regulator.sign("identity.register", maker.register_payload())])
    payload = {"device": "ohm-3", "kind": "gauge", "key": device.register_payload()["key"]}
    ledger.append([maker.sign("device.register", payload)])
    assert ledger.state.devices["ohm-3"].key == device.key.verify_key.raw
    with pytest.raises(Conflict, match="already registered"):
        ledger.append([maker.sign("device.register", payload)])
    with pytest.raises(PermissionDenied):
        ledger.append([regulator.sign("device.register", {**payload, "device": "x"})])
    assert Ledger.open(ledger.store.url).state.digest() == ledger.state.digest()


def test_signing_input_from_the_leaf(regulator):
    """Followers take the signing input out of the canonical leaf; a payload that holds a `signature`
    member, even another envelope's signature, does not confuse it."""
    plain = regulator.sign("identity.register", member().register_payload())
    sig = "A" * 85 + "A"
    cosign = {"origin": ORIGIN, "size": 1, "root": "00" * 32, "timestamp": 1, "signature": sig}
    tricky = regulator.sign("checkpoint.cosign", cosign)
    echo = regulator.sign("checkpoint.cosign", {**cosign, "signature": tricky.signature})
    for env in (plain, tricky, echo):
        assert tx.signing_input_of(env.leaf(), env.signature) == env.signing_input()
    with pytest.raises(InvalidInput):
        tx.signing_input_of(plain.leaf(), tricky.signature)


def test_an_alert_carries_two_signed_contradicting_roots(ledger, regulator):
    acme = member()
    ledger.append([regulator.sign("identity.register", acme.register_payload())])
    size, root = 2, ledger.root_at(2)
    text = Checkpoint(ORIGIN, size, root).text()

    def claim(who, r, ts=7):
        msg = cosigned_message(Checkpoint(ORIGIN, size, r).text(), ts)
        return {"signer": who.did, "root": r.hex(), "timestamp": ts, "signature": b64url_encode(who.key.sign(msg))}

    log_claim = {
        "signer": regulator.did,
        "root": root.hex(),
        "signature": b64url_encode(regulator.key.sign(text.encode())),
    }
    forked = claim(acme, bytes(32))

    def alert(claims):
        return acme.sign("alert.raise", {"kind": "split-view", "origin": ORIGIN, "size": size, "claims": claims})

    for bad, why in [
        ([log_claim, {**forked, "root": root.hex()}], "same root"),
        ([log_claim, {**forked, "timestamp": 8}], "does not verify"),
        ([log_claim, {**forked, "signer": member().did}], "not a participant"),
        ([log_claim], "at least 2"),
    ]:
        with pytest.raises(QDSNError, match=why):
            ledger.append([alert(bad)])
    ledger.append([alert([log_claim, forked])])
    assert ledger.store.rows_of_type("alert.raise")[0].submitter == acme.did
