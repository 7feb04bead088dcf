"""Witnessing when etcd orders the log: every node states its own replica's root.

The log signer (the regulator that started the log) signs checkpoints of its replica and publishes
them through etcd. Every node, once its replica holds that size, cosigns (C2SP tlog-cosignature) the
checkpoint of *its own* replica at that size and puts the cosignature on the ledger
(`checkpoint.cosign`). Every other replica refuses a cosignature whose root is not its own, so a
node that finds its view contradicted raises `alert.raise` with both signed claims: a tampered or
forked replica is exposed at its next checkpoint by the others, and the evidence is on the ledger.
A checkpoint is trusted once `quorum` distinct members have cosigned it (the regulator signs it as
the log).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from qdsn.crypto import VerifyKey
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import IntegrityError, QDSNError
from qdsn.ledger import Ledger, keys, tx
from qdsn.ledger.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteSignature,
    NoteVerifier,
    cosigned_message,
    key_id,
    open_checkpoint,
    parse_note,
)
from qdsn.ledger.ledger import Receipt
from qdsn.node.home import NodeHome


def claim(home: NodeHome, ledger: Ledger, size: int, timestamp: int) -> dict[str, Any]:
    """This node's signed claim of its replica's root at `size`."""
    root = ledger.root_at(size)
    text = Checkpoint(ledger.origin, size, root).text()
    sig = home.key().sign(cosigned_message(text, timestamp))
    return {"signer": home.did, "root": root.hex(), "timestamp": timestamp, "signature": b64url_encode(sig)}


def cosign(home: NodeHome, ledger: Ledger, size: int, timestamp: int) -> tx.Envelope:
    """The `checkpoint.cosign` of this replica at `size`."""
    c = claim(home, ledger, size, timestamp)
    payload = {"origin": ledger.origin, "size": size, "root": c["root"], "timestamp": timestamp,
               "signature": c["signature"]}  # fmt: skip
    return home.sign("checkpoint.cosign", payload)


def alerts(home: NodeHome, ledger: Ledger, envs: Sequence[tx.Envelope], results: Sequence[Receipt | QDSNError],
           timestamp: int) -> list[tx.Envelope]:  # fmt: skip
    """An `alert.raise` for each other node's cosignature this replica refused as a split view."""
    out = []
    for env, r in zip(envs, results, strict=True):
        if env.type != "checkpoint.cosign" or not isinstance(r, IntegrityError) or env.submitter == home.did:
            continue
        p = env.payload
        if p.get("origin") != ledger.origin or not 0 < p.get("size", 0) <= ledger.size:
            continue
        theirs = {"signer": env.submitter, "root": p["root"], "timestamp": p["timestamp"], "signature": p["signature"]}
        ours = claim(home, ledger, p["size"], timestamp)
        payload = {"kind": "split-view", "origin": ledger.origin, "size": p["size"], "claims": [theirs, ours]}
        out.append(home.sign("alert.raise", payload))
    return out


def cosigners(ledger: Ledger, size: int | None = None) -> list[NoteVerifier]:
    """The members' cosigner keys as the ledger knows them; the regulator signs as the log itself. With
    `size`: every key a member held at that log size or since (`keys.since`), so that a cosignature of an
    older checkpoint still counts after its member rotated its key, and a retired key cosigns nothing newer."""
    members = [i for i in ledger.state.identities.values() if i.role != "regulator"]
    if size is None:
        return [NoteVerifier(i.did, VerifyKey(i.key), COSIGNATURE_V1) for i in members]
    return [NoteVerifier(i.did, VerifyKey(k), COSIGNATURE_V1) for i in members
            for k in keys.since(ledger.key_history(i.did), size)]  # fmt: skip


def alert_on(home: NodeHome, ledger: Ledger, note: str, log_key: NoteVerifier, timestamp: int) -> tx.Envelope:
    """An `alert.raise` against a checkpoint signed by the log that contradicts this replica."""
    cp, opened = open_checkpoint(note, log_key)
    sig = next(s for s in opened.verified if (s.name, s.key_id) == (log_key.name, log_key.key_id))
    signer = ledger.log_signer()
    theirs = {"signer": signer, "root": cp.root.hex(), "signature": b64url_encode(sig.signature)}
    ours = claim(home, ledger, cp.size, timestamp)
    return home.sign("alert.raise", {"kind": "split-view", "origin": cp.origin, "size": cp.size,
                                     "claims": [theirs, ours]})  # fmt: skip


def trusted(ledger: Ledger, quorum: int) -> tuple[int, list[str]] | None:
    """The largest checkpoint size that `quorum` distinct members cosigned on this ledger (each
    cosignature recorded here matched this replica's root), with their DIDs."""
    return ledger.store.cosigned({v.name for v in cosigners(ledger)}, max(quorum, 1))


WITNESSING = ("checkpoint.cosign", "alert.raise")


def substance(ledger: Ledger) -> int:
    """The log's size up to its last entry that is not itself witnessing (a cosignature or an alert):
    what a checkpoint must cover to vouch for everything."""
    end = ledger.size
    while end > 0:
        rows = ledger.store.rows(max(0, end - 256), end)
        for r in reversed(rows):
            if r.type not in WITNESSING:
                return r.seq + 1
        end -= len(rows)
    return 0


def cosigned_note(ledger: Ledger, note: str) -> str:
    """The log's signed checkpoint `note` with every cosignature of it recorded on the ledger added."""
    body, sigs = parse_note(note)
    cp = Checkpoint.parse(body)
    have = {(s.name, s.key_id) for s in sigs}
    for c in ledger.store.cosignatures(cp.size):
        if c.root != cp.root or c.cosigner not in ledger.state.identities:
            continue
        p = tx.from_leaf(ledger.store.entry(c.seq).leaf).payload
        kid = key_id(c.cosigner, COSIGNATURE_V1, ledger.key_at(c.cosigner, c.seq))  # its key when recorded
        if (c.cosigner, kid) in have:
            continue
        sigs.append(NoteSignature(c.cosigner, kid, struct.pack(">Q", c.timestamp) + b64url_decode(p["signature"])))
        have.add((c.cosigner, kid))
    return body + "\n" + "".join(s.line() for s in sigs)
