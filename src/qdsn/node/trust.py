"""A consortium trust file: what an offline verifier must already hold to believe a bundle — the log's
origin, the log operator's checkpoint key, the members' cosigner keys and how many cosignatures make
a checkpoint trusted. A buyer obtains it once, from any member's node (`qdsn trust export`,
`GET /.well-known/qdsn-trust.json`, or a QR code), and compares its fingerprint with another member's
out of band. A bundle's own log is never the anchor: anyone can build a log under the same origin
with keys of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdsn.crypto import VerifyKey, canonical_json, sha256
from qdsn.errors import InvalidInput
from qdsn.ledger import Ledger, keys
from qdsn.ledger.checkpoint import COSIGNATURE_V1, ED25519, NoteVerifier, parse_verifier
from qdsn.node import witness
from qdsn.node.follow import log_key

TYPE = "urn:qdsn:consortium-trust:1"
PATH = "/.well-known/qdsn-trust.json"


@dataclass(frozen=True)
class Anchor:
    """A verifier's trust in one consortium, read from its trust file."""

    origin: str
    log_key: NoteVerifier
    cosigners: tuple[NoteVerifier, ...]
    quorum: int
    regulator: str
    fingerprint: str


def majority(members: int) -> int:
    """The default quorum: more than half of the cosigners, and at least one."""
    return max(1, members // 2 + 1)


def fingerprint(doc: dict[str, Any]) -> str:
    """SHA-256 of what a trust file anchors (origin, keys, quorum, regulator — not when it was made),
    in groups of four hex digits to read aloud; two members' exports of one consortium agree."""
    core = {k: doc.get(k) for k in ("type", "origin", "log_key", "regulator", "cosigners", "quorum")}
    h = sha256(canonical_json(core)).hex()
    return " ".join(h[i : i + 4] for i in range(0, len(h), 4))


def export(ledger: Ledger, quorum: int | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """The trust file of the consortium this replica belongs to, with the members' current keys."""
    key = log_key(ledger)
    regulator = next(i.did for i in ledger.state.identities.values() if i.key == key.key.raw)
    cosigners = [{"did": v.name, "name": ledger.state.identities[v.name].name,
                  "role": ledger.state.identities[v.name].role, "key": v.text()}
                 for v in sorted(witness.cosigners(ledger), key=lambda v: v.name)]  # fmt: skip
    q = majority(len(cosigners)) if quorum is None else quorum
    if not 1 <= q <= max(1, len(cosigners)):
        raise InvalidInput(f"a quorum is 1 to {len(cosigners)} cosignatures, not {q}")
    doc: dict[str, Any] = {"type": TYPE, "origin": ledger.origin, "log_key": key.text(), "regulator": regulator,
                           "cosigners": cosigners, "quorum": q,
                           "created": (now or datetime.now(UTC)).isoformat(timespec="seconds")}  # fmt: skip
    return doc | {"fingerprint": fingerprint(doc)}


def load(doc: Any) -> Anchor:
    """An anchor from a trust file's JSON, every field checked; a file whose fingerprint does not
    match its contents was changed after export and is refused."""
    hint = "get the trust file again from a member's node: qdsn trust export"
    if not isinstance(doc, dict) or doc.get("type") != TYPE:
        raise InvalidInput(f"not a QDSN consortium trust file (type {TYPE})", hint)
    try:
        changed = doc.get("fingerprint") != fingerprint(doc)
    except (TypeError, ValueError):
        changed = True  # values canonical JSON cannot hold
    if changed:
        raise InvalidInput("the trust file's fingerprint does not match its contents: it was changed", hint)
    try:
        log = parse_verifier(str(doc["log_key"]))
        cosigners = tuple(parse_verifier(str(c["key"])) for c in doc["cosigners"])
        quorum, origin, regulator = doc["quorum"], doc["origin"], doc["regulator"]
    except (KeyError, TypeError) as e:
        raise InvalidInput(f"the trust file lacks {e}", hint) from None
    if log.alg != ED25519 or log.name != origin:
        raise InvalidInput(f"the trust file's log key is not an Ed25519 note key named {origin!r}", hint)
    if any(v.alg != COSIGNATURE_V1 for v in cosigners) or len({v.name for v in cosigners}) != len(cosigners):
        raise InvalidInput("the trust file's cosigner keys must be distinct tlog-cosignature (0x04) keys", hint)
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= max(1, len(cosigners)):
        raise InvalidInput(f"the trust file's quorum {quorum!r} is not 1 to {len(cosigners)}", hint)
    return Anchor(str(origin), log, cosigners, quorum, str(regulator), fingerprint(doc))


def chained(
    anchor: Anchor, ledger: Ledger
) -> tuple[Callable[[int], NoteVerifier], Callable[[int], list[NoteVerifier]]] | None:
    """The log key and the members' cosigner keys of `ledger` at each checkpoint size, when its key history
    holds the anchor's log key; None when it does not. Each rotation on the log is signed by the key before
    it and carries the new key's proof, so a key history that holds a key the verifier trusts is anchored in
    it, whether the trust file was exported before a rotation or after. A member whose key history does not
    hold its trusted key keeps that key alone."""
    if ledger.size == 0 or ledger.origin != anchor.origin:
        return None
    if anchor.log_key.key.raw not in [s.key for s in ledger.key_history(ledger.log_signer())]:
        return None
    spans = {v.name: ledger.key_history(v.name) for v in anchor.cosigners}

    def cosigners(size: int) -> list[NoteVerifier]:
        out: list[NoteVerifier] = []
        for v in anchor.cosigners:
            if v.key.raw in [s.key for s in spans[v.name]]:
                out += [NoteVerifier(v.name, VerifyKey(k), COSIGNATURE_V1) for k in keys.since(spans[v.name], size)]
            else:
                out.append(v)
        return out

    return ledger.log_key, cosigners
