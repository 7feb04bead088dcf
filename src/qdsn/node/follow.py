"""Following the log: a member pulls the operator's entries, validates every one itself (signature,
schema, role, replay) as it appends them to its own replica, then checks the operator's checkpoint
against its own tree and cosigns it (C2SP tlog-cosignature). A checkpoint that disagrees with the
replica is a split view: the member refuses to cosign and raises `alert.raise` with both signed roots."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import IntegrityError, QDSNError
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint, parse_note, parse_verifier
from qdsn.ledger.ledger import SplitView
from qdsn.node import seen, witness
from qdsn.node.home import NodeHome


class Operator(Protocol):
    """How a node reaches the log operator's API (an `api.client.NodeClient`)."""

    def call(
        self, method: str, path: str, payload: object = None, *, signed: bool = True, raw: bytes | None = None
    ) -> object: ...

    def submit(self, envelopes: Sequence[tx.Envelope]) -> list[dict[str, Any]]: ...


def log_key(ledger: Ledger, size: int | None = None) -> NoteVerifier:
    """The key the log's checkpoint of `size` entries (default: now) is signed with: the operator is the
    regulator that started the log in its first entry, named by the log's origin; the key it held at that
    size comes from its key history on the ledger (`ledger.keys`). A replica that pinned a log key when it
    joined (`node.onboard`) refuses a log whose key history does not hold it."""
    key = ledger.log_key(size)
    pinned = ledger.store.get_meta("log_key")
    if pinned and parse_verifier(pinned).key.raw not in [s.key for s in ledger.key_history(ledger.log_signer())]:
        raise IntegrityError(f"this log is not the one this node joined: its key history does not hold the log key "
                             f"{pinned} pinned then", "stop following this operator; ask the regulator")  # fmt: skip
    return key


def pull(ledger: Ledger, operator: Operator, until: int | None = None, meta: dict[str, str] | None = None) -> int:
    """Append the operator's entries this replica lacks (up to `until`), validating each; returns how many.
    `meta` is written with the entry that reaches `until`."""
    pulled = 0
    while until is None or ledger.size < until:
        end = f"&end={min(until, ledger.size + 1000)}" if until is not None else ""
        got = operator.call("GET", f"/ledger/entries?start={ledger.size}{end}")
        leaves = [base64.b64decode(x) for x in got["entries"]]  # type: ignore[index]
        if not leaves:
            break
        last = until is not None and ledger.size + len(leaves) == until
        ledger.append([tx.from_leaf(x) for x in leaves], meta=meta if last else None)
        pulled += len(leaves)
    return pulled


def follow(home: NodeHome, ledger: Ledger, operator: Operator, *, now: int | None = None) -> tuple[int, str]:
    """Pull, check the operator's checkpoint against this replica, cosign it, hand the cosignature
    to the operator and record it on the ledger. Returns (entries pulled, the cosigned note)."""
    pulled = pull(ledger, operator)
    note = str(operator.call("GET", "/ledger/checkpoint", signed=False))
    size = Checkpoint.parse(parse_note(note)[0]).size  # read unverified: the entries it covers name its key
    if size > ledger.size:  # the log grew between our pull and its checkpoint
        pulled += pull(ledger, operator, until=size)
    if ledger.size < size:
        raise IntegrityError(f"the operator's checkpoint claims {size} entries but served {ledger.size}")
    key = log_key(ledger, size)
    open_checkpoint(note, key)
    ts = int(time.time()) if now is None else now
    try:
        cosigned = ledger.witness(note, key, home.cosigner(), ts)
    except SplitView:
        # Evidence for everyone: the log's signed root and ours, for the same size. An operator that
        # shows split views may well refuse it; the split view is raised either way.
        alert = witness.alert_on(home, ledger, note, key, ts)
        with contextlib.suppress(QDSNError):
            operator.call("POST", "/ledger/transactions", {"transactions": [alert.to_json()]})
        raise
    seen.remember(home.path, note, key, ledger.store)  # outside the replica: a rollback of it is noticed
    operator.call("POST", "/ledger/cosignatures", {"note": cosigned})
    operator.call("POST", "/ledger/transactions", {"transactions": [cosign_record(home, cosigned, key, ts).to_json()]})
    return pulled, cosigned


def cosign_record(home: NodeHome, cosigned: str, key: NoteVerifier, timestamp: int) -> tx.Envelope:
    """The `checkpoint.cosign` transaction that puts a member's cosignature on the ledger."""
    cp, opened = open_checkpoint(cosigned, key)
    sig = next(s for s in opened.unverified if s.name == home.did)
    payload = {
        "origin": cp.origin, "size": cp.size, "root": cp.root.hex(), "timestamp": timestamp,
        "signature": b64url_encode(sig.signature[8:]),  # after the 8-byte timestamp
    }  # fmt: skip
    return home.sign("checkpoint.cosign", payload)


def keep_up(home: NodeHome, ledger: Ledger, operator: Operator) -> tuple[int, str | None]:
    """One round of a member's follower: pull, and cosign the operator's checkpoint when the log holds
    more than cosignature records beyond the size this replica last cosigned (so that members'
    cosignature records do not set each other off). Returns (entries pulled, the cosigned note or None)."""
    pulled = pull(ledger, operator)
    last = ledger.store.witnessed(ledger.origin)
    news = ledger.store.rows(last[0] if last else 0, ledger.size)
    if all(r.type == "checkpoint.cosign" for r in news):
        return pulled, None
    more, cosigned = follow(home, ledger, operator)
    return pulled + more, cosigned
