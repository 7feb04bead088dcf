"""`qdsn ledger verify`: re-check a whole stored log from zero.

Every leaf is re-parsed and its id recomputed, every transaction re-validated and re-folded, every
stored tree node recomputed, the folded state compared with the stored one, and every checkpoint's
signature and consistency with the one before checked. The first failure is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DatabaseError

from qdsn.crypto import VerifyKey, verify_batch, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import QDSNError
from qdsn.ledger import merkle, tx
from qdsn.ledger.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    open_note,
    parse_note,
    parse_verifier,
)
from qdsn.ledger.integrity import (
    READ_ERRORS,
    Damaged,
    Incomplete,
    Outcome,
    Verdict,
    absent_reason,
    check_database,
    judge,
    present,
    read_only_url,
)
from qdsn.ledger.keys import KeySpan, key_at
from qdsn.ledger.state import State, TreeView
from qdsn.ledger.store import Store, entries, member_row, members, meta, nodes
from qdsn.ledger.store import metadata as ledger_tables

CHUNK = 2000
META_KEYS = {"origin", "log_key", "ordering.position", "ordering.embedded"}


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
    except READ_ERRORS as e:  # a field of the wrong type or form: damage, reported like any other
        report.reason = f"a stored field is unreadable: {type(e).__name__}: {e}"
    return report


def _audit(
    store: Store, log_key: NoteVerifier | None, progress: Callable[[int], None] | None, report: AuditReport
) -> None:
    origin = store.get_meta("origin") or ""
    state = State(origin=origin)
    frontier = merkle.Frontier()
    keys: set[tuple[str, bytes]] = set()  # every key a member held: a cosignature stays valid after a rotation
    history: dict[str, list[tuple[int, bytes]]] = {}  # each participant's keys with the entry that put them in
    for start in range(0, store.size, CHUNK):
        try:
            rows = store.rows(start, min(start + CHUNK, store.size))
        except READ_ERRORS as e:
            raise _Bad(start, f"entries {start}… are unreadable: {type(e).__name__}: {e}") from None
        new: list[tuple[int, int, bytes]] = []
        checks: list[tuple[int, bytes, bytes, bytes]] = []
        for row in rows:
            if row.seq != frontier.size:
                raise _Bad(frontier.size, f"entry {frontier.size} is missing (next stored is {row.seq})")
            if not (isinstance(row.type, str) and isinstance(row.submitter, str) and isinstance(row.leaf, bytes)
                    and len(row.txid) == 64 and len(row.nonce) == 32):  # fmt: skip
                raise _Bad(row.seq, f"entry {row.seq}: a stored field has the wrong type or length")
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
            except READ_ERRORS as e:
                raise _Bad(row.seq, f"entry {row.seq} is unreadable: {type(e).__name__}: {e}") from None
            if env.type in ("identity.register", "identity.rotate_key"):
                did = env.payload["did"]
                keys.add((did, state.identities[did].key))
                history.setdefault(did, []).append((row.seq, state.identities[did].key))
            new.extend(frontier.append(merkle.leaf_hash(row.leaf)))
        ok = verify_batch([(verify_key(k), s, m) for _, k, s, m in checks])
        if not all(ok):
            seq = checks[ok.index(False)][0]
            raise _Bad(seq, f"entry {seq}: signature does not verify under the submitter's key")
        stored = store.nodes([(lv, ix) for lv, ix, _ in new])
        for (lv, ix, h), got in zip(new, stored, strict=True):
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
    if store.cosignatures() != state.new_cosignatures:
        raise _Bad(None, "the stored cosignature records differ from the fold of the log")
    _check_extras(store, frontier.size, origin)
    key_text = store.get_meta("log_key")
    signers: dict[str, list[NoteVerifier]] = {}
    for did, k in sorted(keys):
        signers.setdefault(did, []).append(NoteVerifier(did, VerifyKey(k), COSIGNATURE_V1))
    genesis = tx.from_leaf(store.leaves(0, 1)[0]).submitter if store.size else ""
    spans = [KeySpan(k, since, h[i + 1][0] if i + 1 < len(h) else None)
             for h in [history.get(genesis, [])] for i, (since, k) in enumerate(h)]  # fmt: skip

    def verifier_at(size: int) -> NoteVerifier:
        """The given log key, followed through the log's key history when it is one of the log signer's keys."""
        given = log_key or parse_verifier(key_text or "")
        if given.key.raw in [s.key for s in spans]:
            return NoteVerifier(given.name, VerifyKey(key_at(spans, max(size, 1), genesis)), given.alg)
        return given

    prev = None
    for size, note in store.checkpoint_notes():
        if log_key is None and key_text is None:
            raise _Bad(None, "checkpoints are stored but the log key is unknown; pass it with --log-key")
        cp = _checkpoint(note, verifier_at(size), signers, f"checkpoint of size {size}")
        if cp.size != size or cp.size > frontier.size or store.root_at(cp.size) != cp.root:
            raise _Bad(None, f"checkpoint of size {cp.size} does not match the log")
        if prev is not None:
            merkle.verify_consistency(
                prev.size, cp.size, prev.root, cp.root, merkle.consistency_proof(prev.size, cp.size, store)
            )
        prev = cp
        report.checkpoints += 1
    seen = store.witnessed(origin) if origin else None
    if seen is not None:
        size, root, note = seen
        if log_key is None and key_text is None:
            raise _Bad(None, "a witnessed checkpoint is stored but the log key is unknown; pass it with --log-key")
        cp = _checkpoint(note, verifier_at(size), signers, "the witnessed checkpoint")
        if (cp.size, cp.root) != (size, root) or size > frontier.size or store.root_at(size) != root:
            raise _Bad(None, f"the witnessed checkpoint of size {size} does not match the log")


def _checkpoint(note: str, log_key: NoteVerifier, signers: dict[str, list[NoteVerifier]], what: str) -> Checkpoint:
    """A stored checkpoint note, every signature line of which verifies under a key the log knows."""
    cp, _ = open_checkpoint(note, log_key)
    _, sigs = parse_note(note)
    opened = open_note(note, [log_key, *(v for s in {s.name for s in sigs} for v in signers.get(s, []))])
    if len(opened.unverified) or len(opened.verified) != len(sigs):
        raise _Bad(None, f"{what} carries a signature no key of the log verifies")
    return cp


def _check_extras(store: Store, size: int, origin: str) -> None:
    """What the fold does not rebuild: no tree node or entry beyond the log, no stray metadata."""
    with store.engine.connect() as c:
        n_nodes = c.execute(select(func.count()).select_from(nodes)).scalar_one()
        n_entries = c.execute(select(func.count()).select_from(entries)).scalar_one()
    if n_entries != size:
        raise _Bad(None, f"the store holds {n_entries} entries where the log has {size}")
    complete = 2 * size - size.bit_count()  # one per complete subtree of every level
    if n_nodes != complete:
        raise _Bad(None, f"the store holds {n_nodes} tree nodes where a log of {size} has {complete}")
    with store.engine.connect() as c:
        names = set(c.execute(select(meta.c.key)).scalars())
    if names - META_KEYS:
        raise _Bad(None, f"the store's metadata holds unknown keys {sorted(names - META_KEYS)}")
    registered = {r.seq: member_row(r.seq, r.leaf) for r in store.rows_of_type("identity.register")}
    with store.engine.connect() as c:
        stored = {tuple(r)[1]: tuple(r) for r in c.execute(select(members))}
    for seq in sorted(set(registered) | set(stored)):
        if registered.get(seq) != stored.get(seq):
            raise _Bad(None, f"the member registry's record of entry {seq} is not what that entry registered")
    if size and not origin:
        raise _Bad(None, "the store does not record the log's origin")
    position = store.get_meta("ordering.position")
    if position is not None and not (position.isascii() and position.isdigit()):
        raise _Bad(None, f"the stored ordering position {position!r} is not a position")
    for size_, note in store.checkpoint_notes():
        if Checkpoint.parse(parse_note(note)[0]).origin != origin:
            raise _Bad(None, f"checkpoint of size {size_} names another log than {origin!r}")


def _first_difference(folded: State, stored: State) -> str:
    for kind, a, b in (
        ("identity", folded.identities, stored.identities),
        ("dataset", folded.datasets, stored.datasets),
        ("device", folded.devices, stored.devices),
        ("model", folded.models, stored.models),
        ("credential", folded.credentials, stored.credentials),
        ("notification", folded.notices, stored.notices),
        ("regulator's standing of", folded.standings, stored.standings),
    ):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{kind} {key}"
    return "its digest"


def verify_ledger(
    url: str,
    *,
    log_key: NoteVerifier | None = None,
    origin: str | None = None,
    allow_empty: bool = False,
    seen: Callable[[Store], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """Verify the ledger stored at `url` without changing or creating it: the database's own integrity
    check, then `audit`, then `seen(store)` (raising when the replica is behind or off a checkpoint the
    node trusts). `origin`: the log this replica must be of. Empty or missing is INCOMPLETE unless
    `allow_empty`."""
    return judge(lambda: _verify_ledger(url, log_key, origin, allow_empty, seen, progress), "the ledger database")


def _verify_ledger(
    url: str,
    log_key: NoteVerifier | None,
    origin: str | None,
    allow_empty: bool,
    seen: Callable[[Store], None] | None,
    progress: Callable[[int], None] | None,
) -> Verdict:
    if not present(url, ledger_tables):
        if allow_empty:
            return Verdict(Outcome.VERIFIED, f"{absent_reason(url, 'the ledger database')}: verified 0 entries")
        raise Incomplete(absent_reason(url, "the ledger database"),
                         "restore the replica (qdsn ledger import, or follow a peer); pass --allow-empty "
                         "if an empty ledger is expected")  # fmt: skip
    engine = create_engine(read_only_url(url))
    try:
        check_database(engine, ledger_tables, "the ledger database")
    finally:
        engine.dispose()
    store = Store(read_only_url(url))
    try:
        if store.size == 0 and not allow_empty:
            raise Incomplete("the ledger database holds no entries",
                             "pass --allow-empty if an empty ledger is expected")  # fmt: skip
        stored_origin = store.get_meta("origin")
        if origin is not None and store.size and stored_origin != origin:
            raise Damaged("the ledger database", f"it records the log {stored_origin!r}, not {origin!r}")
        report = audit(store, log_key, progress)
        if not report.ok:
            where = f"entry {report.first_bad}" if report.first_bad is not None else "the ledger database"
            raise Damaged(where, (report.reason or "").removeprefix(f"{where}: "))
        if seen is not None:
            seen(store)
        return Verdict(
            Outcome.VERIFIED,
            f"verified {report.size} entries, root {report.root}, "
            f"{report.checkpoints} checkpoints, {report.cosignatures} cosignatures",
            checked=report.size,
        )
    finally:
        store.close()
