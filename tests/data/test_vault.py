"""The vault: envelope encryption, salted batch roots anchored on the ledger, proofs, tampering,
crypto-shredding, and no plaintext in the database file. Runs on SQLite and on PostgreSQL."""

import os
import sqlite3

import pytest
from sqlalchemy import update

from qdsn.crypto import SigningKey, hkdf_sha256
from qdsn.data.vault import Vault, vault_chunks, vault_datasets, verify_record_proof
from qdsn.errors import Conflict, IntegrityError, NotFound
from qdsn.ledger import Ledger, merkle, tx

from ..ledger.conftest import ORIGIN, member


class Keys:
    """A stand-in keystore: two node keys, so rotation can be exercised."""

    def __init__(self):
        self.keys = {"k1": SigningKey.generate(), "k2": SigningKey.generate()}
        self.current = "k1"

    def __call__(self, kid=None):
        kid = kid or self.current
        return kid, hkdf_sha256(self.keys[kid].seed(), b"qdsn/vault/kek/v1")


def readings(n, start=0):
    return [
        {
            "characteristic": "resistance",
            "value": 17.0 + (i % 7) * 0.013,
            "time": f"2026-03-01T08:{i % 60:02d}:00Z",
            "lot": "L-2026-0301",
        }
        for i in range(start, start + n)
    ]


def test_round_trip_roots_and_proofs(vault_url):
    keys = Keys()
    v = Vault(vault_url, keys)
    v.create("line-1", "measurements")
    b1 = v.add_batch("line-1", readings(37))
    b2 = v.add_batch("line-1", readings(5, 37))
    assert (b1.first, b1.count, b2.first, b2.count) == (0, 37, 37, 5)
    assert v.records("line-1") == readings(42)
    keys.current = "k2"  # a key rotation: data keys wrapped before it still open
    again = Vault(vault_url, keys)
    assert again.records("line-1", 40, 42) == readings(2, 40)
    proof = again.prove("line-1", 39)
    assert verify_record_proof(proof, b2.root) == readings(1, 39)[0]
    with pytest.raises(IntegrityError):
        verify_record_proof(proof, b1.root)
    forged = proof.__class__(**{**proof.__dict__, "leaf": proof.leaf.replace(b"17.0", b"16.9")})
    with pytest.raises(IntegrityError):
        verify_record_proof(forged, b2.root)
    assert again.verify("line-1") == 42
    with pytest.raises(Conflict):
        again.create("line-1", "measurements")


def test_salted_leaves_hide_equal_readings(vault_url):
    v = Vault(vault_url, Keys())
    v.create("d", "measurements")
    v.add_batch("d", [readings(1)[0], readings(1)[0]])
    a, b = v.prove("d", 0), v.prove("d", 1)
    assert a.record() == b.record() and merkle.leaf_hash(a.leaf) != merkle.leaf_hash(b.leaf)


def test_tampering_is_detected(vault_url):
    keys = Keys()  # the same keys throughout: a stranger's key would fail for its own reason
    v = Vault(vault_url, keys)
    v.create("d", "measurements")
    v.add_batch("d", readings(10))
    v.add_batch("d", readings(300))  # rows [0, 10), [10, 266), [266, 310)
    with v.engine.begin() as c:
        rows = c.execute(vault_chunks.select().order_by(vault_chunks.c.first)).all()

    def stored(*changed):  # the vault with some rows replaced, read back by a fresh instance
        with v.engine.begin() as c:
            for r in rows:
                c.execute(update(vault_chunks).where(vault_chunks.c.first == r.first).values(sealed=r.sealed))
            for first, sealed in changed:
                c.execute(update(vault_chunks).where(vault_chunks.c.first == first).values(sealed=sealed))
        return Vault(vault_url, keys)

    assert len(stored().records("d")) == 310
    flipped = rows[1].sealed[:-40] + bytes([rows[1].sealed[-40] ^ 1]) + rows[1].sealed[-39:]
    with pytest.raises(IntegrityError, match="decryption failed"):
        stored((10, flipped)).records("d")
    with pytest.raises(IntegrityError):
        stored((10, flipped)).verify("d")
    with pytest.raises(IntegrityError, match="decryption failed"):  # each row is bound to its position
        stored((10, rows[2].sealed), (266, rows[1].sealed)).records("d")
    with pytest.raises(IntegrityError, match="decryption failed"):  # a row cut short
        stored((10, rows[1].sealed[:1000])).records("d")
    assert stored().verify("d") == 310

    w = Vault(vault_url, keys)
    w.create("e", "measurements")
    w.add_batch("e", readings(3))
    with w.engine.begin() as c:
        wrapped = c.execute(vault_datasets.select().where(vault_datasets.c.id == "e")).first().wrapped_key
        c.execute(
            update(vault_datasets)
            .where(vault_datasets.c.id == "e")
            .values(wrapped_key=wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
        )
    with pytest.raises(IntegrityError):
        Vault(vault_url, keys).records("e")


def test_crypto_shredding(vault_url):
    keys = Keys()
    v = Vault(vault_url, keys)
    v.create("d", "measurements")
    v.add_batch("d", readings(3))
    v.shred("d")
    with pytest.raises(NotFound, match="shredded"):
        Vault(vault_url, keys).records("d")


def test_no_plaintext_in_the_database_file(tmp_path):
    path = tmp_path / "vault.db"
    v = Vault(str(path), Keys())
    v.create("d", "measurements")
    secret = [{"characteristic": "tensile-strength-xyzzy", "value": 123.456789, "time": "2026-03-01T08:00:00Z"}]
    v.add_batch("d", secret * 50)
    v.close()
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for needle in (b"xyzzy", b"123.456789", b"tensile"):
        assert needle not in data


def test_batches_anchored_on_the_ledger(tmp_path):
    regulator = member("regulator", "SAMR")
    maker = member()
    ledger = Ledger.open(str(tmp_path / "ledger.db"), origin=ORIGIN)
    ledger.append(
        [
            regulator.sign("identity.register", regulator.register_payload()),
            regulator.sign("identity.register", maker.register_payload()),
        ]
    )
    v = Vault(str(tmp_path / "vault.db"), Keys())
    v.create("line-1", "measurements")
    ledger.append([maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"})])
    for n in (20, 7):
        batch = v.add_batch("line-1", readings(n))
        assert v.unanchored("line-1") == [batch]
        receipt = ledger.append([maker.sign("dataset.anchor", batch.anchor_payload())])[0]
        v.mark_anchored(batch, receipt.txid)
    assert v.unanchored("line-1") == []
    anchors = {
        e.payload["first"]: bytes.fromhex(e.payload["root"])
        for e in map(tx.from_leaf, ledger.store.leaves(0, ledger.size))
        if e.type == "dataset.anchor"
    }
    assert v.verify("line-1", anchored=anchors.__getitem__) == 27
    assert ledger.state.datasets["line-1"].anchored == 27
    # the owner cannot quietly re-commit a batch it already anchored
    v.add_batch("line-1", readings(3))
    with pytest.raises(IntegrityError, match="anchored"):
        v.verify("line-1", anchored=lambda first: anchors.get(first, os.urandom(32)))


def test_leaves_are_rfc8785_canonical():
    import rfc8785

    from qdsn.data.vault import leaf

    for record in (readings(1)[0], {"value": 2.0, "note": "integral float", "n": 3}, {"z": [1.5, {"é": None}]}):
        expected = rfc8785.dumps({"dataset": "line-1", "seq": 7, "salt": "00" * 16, "record": record})
        assert leaf("line-1", 7, bytes(16), record) == expected


def test_records_across_stored_chunks(vault_url):
    v = Vault(vault_url, Keys())
    v.create("d", "measurements")
    v.add_batch("d", readings(300))
    v.add_batch("d", readings(400, 300))
    assert v.records("d", 250, 560) == readings(310, 250)
    assert v.records("d", 690, 900) == readings(10, 690)
    assert v.verify("d") == 700 and v.prove("d", 555).record() == readings(1, 555)[0]


def test_stream_roots_match_one_batch_at_a_time(vault_url):
    """A large batch is sealed on two processes and committed while the next is sealed: the roots are
    the RFC 9162 roots of the same leaves, and every record reads back."""
    v = Vault(vault_url, Keys())
    v.create("d", "measurements")
    records = readings(9000)
    batches = list(v.add_stream("d", [records[:5000], records[5000:]]))
    assert [(b.first, b.count) for b in batches] == [(0, 5000), (5000, 4000)]
    for b in batches:
        leaves = v._leaves("d", b.first, b.first + b.count)
        assert merkle.root_hash(leaves) == b.root
    assert v.records("d") == records and v.verify("d") == 9000


def test_stream_refuses_to_write_past_a_grown_dataset(vault_url):
    v = Vault(vault_url, Keys())
    v.create("d", "measurements")
    stream = v.add_stream("d", [readings(10), readings(10, 10), readings(10, 20)])
    assert next(stream).count == 10
    v.add_batch("d", readings(5, 100))  # another writer takes positions 10…14
    with pytest.raises(Conflict, match="grew while records 10"):
        next(stream)
    assert v.records("d") == readings(10) + readings(5, 100)  # nothing half-written
    assert v.verify("d") == 15


# Records the fast path of `canonical_json` takes, and ones only RFC 8785 writes right: an integral float,
# exponents (1e21, 1e-7), 1e15 (written out in full), a non-ASCII key (UTF-16 key order), non-ASCII values.
ODD_RECORDS = [
    {"value": 2.0, "note": "integral float", "n": 3},
    {"value": 1e21, "small": 1e-7, "big": 1e15, "safe": 2**53 - 1},
    {"z": [1.5, {"é": None}], "电阻": "导体", "\U0001f600": 1, "ﬀ": 2},
]


def test_a_leaf_from_canonical_bytes_is_the_leaf_of_the_record():
    import rfc8785

    from qdsn.crypto import canonical_json
    from qdsn.data.vault import canonical_leaf, canonical_records, leaf

    records = [readings(1)[0], *ODD_RECORDS]
    assert canonical_records(records) == [rfc8785.dumps(r) for r in records]
    for record, canonical in zip(records, canonical_records(records), strict=True):
        for sig in (None, "z3sig-of-the-reading"):
            wrapper = {"dataset": "line-1", "seq": 7, "salt": "ab" * 16, "record": record}
            expected = rfc8785.dumps(wrapper | ({"sig": sig} if sig else {}))
            assert canonical_leaf("line-1", 7, b"\xab" * 16, canonical, sig) == expected
            assert leaf("line-1", 7, b"\xab" * 16, record, sig) == expected
            assert canonical == canonical_json(record)


@pytest.mark.parametrize("signed", [False, True])
def test_sealed_rows_hold_each_records_leaf_on_both_cores(signed, monkeypatch):
    """A batch large enough for the helper process: every leaf it and this process seal, from the records'
    canonical bytes, is byte for byte `leaf()` of the record, plain or not, signed or not."""
    from qdsn.crypto import new_key, offload
    from qdsn.data.vault import CHUNK, _seal_both_cores, canonical_records, leaf, open_row

    records = [dict(r, seq=i) for i, r in enumerate(readings(12 * CHUNK))]
    for i, odd in enumerate(ODD_RECORDS):
        records[i * 5 * CHUNK + 3] = odd  # one in the head, two in the tail sealed by the helper
    sigs = [f"sig-{i}" if i % 3 else None for i in range(len(records))] if signed else None
    key, sent = new_key(), []
    helper = offload.helper("qdsn.data.vault:seal_frame")
    monkeypatch.setattr(helper, "send", lambda frame, send=helper.send: sent.append(frame) or send(frame))
    rows = _seal_both_cores(key, "line-é", 40, canonical_records(records), sigs)
    assert len(sent) == 1  # the tail went through the helper process
    leaves = []
    for k, (count, row, root) in enumerate(rows):
        opened = open_row(key, "line-é", 40 + k * CHUNK, count, row)
        assert merkle.root_hash(opened) == root
        leaves += opened
    assert len(leaves) == len(records)
    for i, x in enumerate(leaves):
        salt = bytes.fromhex(x[x.index(b'"salt":"') + 8 :][:32].decode())
        assert x == leaf("line-é", 40 + i, salt, records[i], sigs[i] if sigs else None)


def test_each_record_is_canonicalized_once_on_ingest(monkeypatch, tmp_path):
    """Its content key and its leaf are made from the same canonical bytes: RFC 8785 runs once a record."""
    import qdsn.data.vault as vault_module
    from qdsn.data.ingest import unheld

    calls = []
    real = vault_module.canonical_json
    monkeypatch.setattr(vault_module, "canonical_json", lambda r: calls.append(1) or real(r))
    v = Vault(str(tmp_path / "vault.db"), Keys())
    v.create("d", "measurements")
    records = readings(3000) + ODD_RECORDS
    new = unheld(v, "d", records)
    assert [b.count for b in new.stream(v, "d", 2000)] == [2000, 1003]
    assert len(calls) == len(records)
    calls.clear()
    v.add_batch("d", readings(2500, 5000))
    assert len(calls) == 2500
    assert v.records("d") == records + readings(2500, 5000) and v.verify("d") == len(records) + 2500
    assert unheld(v, "d", records).records == []  # the keys made from the same bytes find them all


def dying_helper(frame: bytes) -> bytes:
    """A sealing helper that dies on its first frame."""
    os._exit(3)


def test_a_batch_is_sealed_whole_when_the_helper_dies(monkeypatch, tmp_path):
    from qdsn.crypto import offload

    dying, sent = offload.Helper(f"{__name__}:dying_helper"), []
    send = dying.send
    monkeypatch.setattr(dying, "send", lambda frame: sent.append(frame) or send(frame))
    monkeypatch.setattr(offload, "helper", lambda target: dying)
    try:
        v = Vault(str(tmp_path / "vault.db"), Keys())
        v.create("d", "measurements")
        records = readings(5000) + ODD_RECORDS
        assert [b.count for b in v.add_stream("d", [records[:2500], records[2500:]])] == [2500, 2503]
        assert v.records("d") == records and v.verify("d") == len(records)
        assert len(sent) == 2  # each batch went to the helper, which died, and was sealed here whole
    finally:
        dying.close()


def test_a_row_is_its_leaves_length_prefixed():
    from qdsn.data.vault import pack_chunk, unpack_chunk

    leaves = [b"", b"a", "é".encode() * 300, os.urandom(70_000)]
    blob = pack_chunk(leaves)
    assert blob == b"".join(len(x).to_bytes(4, "big") + x for x in leaves)
    assert unpack_chunk(blob, 4) == leaves and pack_chunk([]) == b""
    with pytest.raises(IntegrityError, match="3 records where 4 belong"):
        unpack_chunk(pack_chunk(leaves[:3]), 4)
