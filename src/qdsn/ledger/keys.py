"""Key history: which key a participant held at each point of the log.

A participant's keys are its `identity.register` key, then each `identity.rotate_key` it recorded. A key
registered or rotated in at entry `seq` signs entries after `seq` and checkpoints of sizes above `seq`, up
to and including the entry that retires it. Anything signed outside the log — checkpoints, cosignatures,
attestations, certificates — is therefore checked with the key of its signer at the log position it
belongs to, never with today's key: a rotation leaves everything signed before it verifiable, and a
retired key signs nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdsn.errors import NotFound
from qdsn.identity.didkey import multikey_from_public_key, public_key_from_multikey
from qdsn.identity.document import did_document
from qdsn.ledger import tx
from qdsn.ledger.state import Identity
from qdsn.ledger.store import Store


@dataclass(frozen=True, slots=True)
class KeySpan:
    """A key and the log positions it was current for: entries `since` < seq ≤ `until` (None: still current)."""

    key: bytes
    since: int
    until: int | None

    def current_at(self, size: int) -> bool:
        """Whether this was the key at log size `size` (the key that signs a checkpoint of that size)."""
        return self.since < size and (self.until is None or size <= self.until)


def history(store: Store, ident: Identity) -> list[KeySpan]:
    """Every key the participant `ident` held on the log in `store`, oldest first."""
    did = ident.did
    first = tx.from_leaf(store.entry(ident.registered).leaf).payload["key"]
    keys = [(ident.registered, public_key_from_multikey(first))]
    if ident.updated != ident.registered:  # only rotations change an identity after its registration
        for row in store.rows_of_type("identity.rotate_key", ident.registered):
            if row.submitter == did:
                keys.append((row.seq, public_key_from_multikey(tx.from_leaf(row.leaf).payload["new_key"])))
    return [KeySpan(k, since, keys[i + 1][0] if i + 1 < len(keys) else None) for i, (since, k) in enumerate(keys)]


def key_at(spans: list[KeySpan], size: int, did: str = "the participant") -> bytes:
    """The key current at log size `size` (what signed entry `size`, or a checkpoint of `size` entries)."""
    for s in spans:
        if s.current_at(size):
            return s.key
    raise NotFound(f"{did} held no key at log size {size}", "it was registered later in the log")


def since(spans: list[KeySpan], size: int) -> list[bytes]:
    """The keys current at log size `size` or later: those that may have signed a statement about the log
    of that size (a cosignature made after the cosigner's own later rotation)."""
    return [s.key for s in spans if s.until is None or s.until >= size]


def document(did: str, spans: list[KeySpan]) -> dict[str, Any]:
    """The DID document of a participant as the ledger knows it: its current key as the verification
    method, and every key it held with the entries that put it in and retired it (`keyHistory`). A
    did:key cannot change its key, so in QDSN the DID stays and the ledger's key history is the authority
    on which key speaks for it at each point of the log (docs/architecture.md, "Key history")."""
    history = [{"publicKeyMultibase": multikey_from_public_key(s.key), "since": s.since}
               | ({"until": s.until} if s.until is not None else {}) for s in spans]  # fmt: skip
    return did_document(did, spans[-1].key, history=history)
