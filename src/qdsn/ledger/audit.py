"""`qdsn ledger verify`: re-check a whole stored log from zero.

Every leaf is re-parsed and its id recomputed, every transaction re-validated and re-folded, every
stored tree node recomputed, the folded state compared with the stored one, and every checkpoint's
signature and consistency with the one before checked. The first failure is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DatabaseError

from qdsn.crypto import verify_batch, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import QDSNError
from qdsn.ledger import merkle, tx
from qdsn.ledger.checkpoint import NoteVerifier, open_checkpoint, parse_verifier
from qdsn.ledger.state import State, TreeView
from qdsn.ledger.store import Store

CHUNK = 2000


@dataclass
class AuditReport:
    """What an audit checked, and the first failure if any."""

    size: int
    root: str
    checkpoints: int = 0
    cosignatures: int = 0
    state_digest: str = ""
    first_bad: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq, self.reason = seq, reason


def audit(
    store: Store, log_key: NoteVerifier | None = None, progress: Callable[[int], None] | None = None
) -> AuditReport:
    """Audit `store`; the report's `reason` says what is wrong, `first_bad` where."""
    report = AuditReport(store.size, "")
    try:
        _audit(store, log_key, progress, report)
    except _Bad as b:
        report.first_bad, report.reason = b.seq, b.reason
    except DatabaseError as e:
        report.reason = f"the database file is damaged: {e.orig}"
    except QDSNError as e:
        report.reason = str(e)
    return report


def _audit(
    store: Store, log_key: NoteVerifier | None, progress: Callable[[int], None] | None, report: AuditReport
) -> None:
    origin = store.get_meta("origin") or ""
    state = State(origin=origin)
    frontier = merkle.Frontier()
    for start in range(0, store.size, CHUNK):
        rows = store.rows(start, min(start + CHUNK, store.size))
        nodes: list[tuple[int, int, bytes]] = []
        checks: list[tuple[int, bytes, bytes, bytes]] = []
        for row in rows:
            if row.seq != frontier.size:
                raise _Bad(frontier.size, f"entry {frontier.size} is missing (next stored is {row.seq})")
            try:
                env = tx.from_leaf(row.leaf)
                if tx.txid(row.leaf) != row.txid or (env.type, env.submitter, env.nonce) != (
                    row.type,
                    row.submitter,
                    row.nonce,
                ):
                    raise _Bad(row.seq, f"entry {row.seq}: its index columns do not match its leaf")
                payload = tx.check_payload(env.type, env.payload)
                key = state.authorize(env)
                checks.append((row.seq, key, b64url_decode(env.signature), env.signing_input()))
                state.apply(env, payload, row.seq, TreeView(row.seq, store.root_at))
            except QDSNError as e:
                raise _Bad(row.seq, f"entry {row.seq}: {e}") from None
            nodes.extend(frontier.append(merkle.leaf_hash(row.leaf)))
        ok = verify_batch([(verify_key(k), s, m) for _, k, s, m in checks])
        if not all(ok):
            seq = checks[ok.index(False)][0]
            raise _Bad(seq, f"entry {seq}: signature does not verify under the submitter's key")
        stored = store.nodes([(lv, ix) for lv, ix, _ in nodes])
        for (lv, ix, h), got in zip(nodes, stored, strict=True):
            if h != got:
                raise _Bad(
                    ix << lv, f"tree node (level {lv}, index {ix}) covering entry {ix << lv} does not match the leaves"
                )
        if progress:
            progress(frontier.size)
    report.root = frontier.root().hex()
    report.state_digest = state.digest().hex()
    stored = store.load_state()
    if state.digest() != stored.digest():
        raise _Bad(
            None, f"the stored world state differs from the fold of the log at {_first_difference(state, stored)}"
        )
    report.cosignatures = len(state.new_cosignatures)
    if len(store.cosignatures()) != report.cosignatures:
        raise _Bad(None, "the stored cosignature records differ from the fold of the log")
    key_text = store.get_meta("log_key")
    prev = None
    for size, note in store.checkpoint_notes():
        if log_key is None and key_text is None:
            raise _Bad(None, "checkpoints are stored but the log key is unknown; pass it with --log-key")
        cp, _ = open_checkpoint(note, log_key or parse_verifier(key_text or ""))
        if cp.size != size or cp.size > frontier.size or store.root_at(cp.size) != cp.root:
            raise _Bad(None, f"checkpoint of size {cp.size} does not match the log")
        if prev is not None:
            merkle.verify_consistency(
                prev.size, cp.size, prev.root, cp.root, merkle.consistency_proof(prev.size, cp.size, store)
            )
        prev = cp
        report.checkpoints += 1


def _first_difference(folded: State, stored: State) -> str:
    for kind, a, b in (
        ("identity", folded.identities, stored.identities),
        ("dataset", folded.datasets, stored.datasets),
        ("device", folded.devices, stored.devices),
        ("model", folded.models, stored.models),
        ("credential", folded.credentials, stored.credentials),
    ):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{kind} {key}"
    return "its digest"
