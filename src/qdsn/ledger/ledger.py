"""A ledger replica: validates batches of transactions, folds them into the state, appends them
to the Merkle log, answers proofs, signs checkpoints and witnesses other logs' checkpoints."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qdsn.crypto import BatchVerifier, VerifyKey, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import BadSignature, Conflict, IntegrityError, InvalidInput, NotFound, QDSNError
from qdsn.ledger import keys, merkle, tx
from qdsn.ledger.checkpoint import (
    ED25519,
    Checkpoint,
    Note,
    NoteSigner,
    NoteVerifier,
    add_signature,
    cosigners_verified,
    open_checkpoint,
    parse_note,
    parse_verifier,
    sign_note,
)
from qdsn.ledger.state import State, TreeView
from qdsn.ledger.store import DuplicateEntry, Row, Store


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an accepted transaction stands in the log."""

    seq: int
    txid: str
    leaf_hash: bytes


def _replay(env: tx.Envelope) -> Conflict:
    return Conflict(
        f"nonce {env.nonce} is already in the log: a replay", "sign the transaction again with a fresh nonce"
    )


def _annotate(i: int, env: tx.Envelope, e: QDSNError) -> QDSNError:
    err = type(e)(f"transaction {i} ({env.type} by {env.submitter}): {e.what}", e.fix)
    err.index = i  # type: ignore[attr-defined]
    err.reason = e.what  # type: ignore[attr-defined]
    return err


def batch_key(envs: Sequence[tx.Envelope]) -> str:
    """A batch's idempotency key: SHA-256 of its transaction ids, one per line (lowercase hex)."""
    return hashlib.sha256("\n".join(tx.txid(e.leaf()) for e in envs).encode()).hexdigest()


def _whole(i: int, env: tx.Envelope, e: QDSNError) -> QDSNError:
    """The refusal of a whole submission for its transaction `i`, numbered within the submission."""
    return _annotate(i, env, type(e)(getattr(e, "reason", e.what), e.fix))


class Ledger:
    """One node's replica of the consortium log."""

    def __init__(self, store: Store, origin: str | None = None) -> None:
        self.store = store
        stored = store.get_meta("origin")
        if origin and stored and origin != stored:
            raise Conflict(f"this ledger is the log {stored!r}, not {origin!r}")
        if origin and not stored:
            store.set_meta("origin", origin)
        self.origin = origin or stored or ""
        self.state = store.load_state(self.origin)
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[int, list[keys.KeySpan]]] = {}  # did -> (its `updated`, its key history)

    def refresh(self) -> None:
        """See what another process appended to this replica since it was opened (only ever read
        here: the process that holds the home's lock is the one that writes)."""
        with self._lock:
            if self.store.reload():
                self.state = self.store.load_state(self.origin)

    @classmethod
    def open(cls, url: str, origin: str | None = None) -> Ledger:
        """Open (or create) the ledger stored at `url`."""
        return cls(Store(url), origin)

    def close(self) -> None:
        self.store.close()

    @property
    def size(self) -> int:
        return self.store.size

    def root(self) -> bytes:
        return self.store.frontier.root()

    def declaration(self, dataset: str) -> dict[str, Any]:
        """The `dataset.declare` payload of a dataset: owner-given title, kind and characteristics."""
        ds = self.state.datasets.get(dataset)
        if ds is None:
            raise NotFound(f"dataset {dataset!r} is not declared on this ledger", "see the datasets: qdsn ledger show")
        return tx.from_leaf(self.store.entry(ds.declared).leaf).payload

    # -- key history (see `ledger.keys`) --------------------------------------------------------------

    def key_history(self, did: str) -> list[keys.KeySpan]:
        """Every key `did` held on this log, oldest first; empty if it is not registered."""
        ident = self.state.identities.get(did)
        if ident is None:
            return []
        cached = self._keys.get(did)
        if cached is None or cached[0] != ident.updated:
            cached = (ident.updated, keys.history(self.store, ident))
            self._keys[did] = cached
        return cached[1]

    def key_at(self, did: str, size: int) -> bytes:
        """The key `did` held at log size `size`: the one that signed entry `size`, or checkpoints and
        statements about the log of `size` entries."""
        return keys.key_at(self.key_history(did), size, did)

    def registration(self, did: str) -> dict[str, Any]:
        """The `identity.register` payload that admitted `did`: its role, name and organisation record."""
        ident = self.state.identities.get(did)
        if ident is None:
            raise NotFound(f"{did} is not registered on this ledger", "see the members: qdsn member list")
        return tx.from_leaf(self.store.entry(ident.registered).leaf).payload

    def did_document(self, did: str) -> dict[str, Any] | None:
        """The DID document of a participant as this log knows it (`keys.document`); None if unregistered."""
        spans = self.key_history(did)
        return keys.document(did, spans) if spans else None

    def log_signer(self) -> str:
        """The DID that signs this log's checkpoints: the regulator that started it in entry 0."""
        if self.size == 0:
            raise NotFound("this replica holds no entries yet", "follow the log first")
        return self.store.entry(0).submitter

    def log_key(self, size: int | None = None) -> NoteVerifier:
        """The key this log's checkpoint of `size` entries (default: now) is signed with."""
        size = self.size if size is None else size
        return NoteVerifier(self.origin, VerifyKey(self.key_at(self.log_signer(), max(size, 1))), ED25519)

    def open_checkpoint(self, note: str) -> tuple[Checkpoint, Note]:
        """Verify a checkpoint of this log under the log key of its own size (`log_key`)."""
        size = Checkpoint.parse(parse_note(note)[0]).size
        return open_checkpoint(note, self.log_key(size))

    # -- appending -------------------------------------------------------------------------------

    def append(
        self,
        envs: Sequence[tx.Envelope],
        *,
        skip_invalid: bool = False,
        meta: dict[str, str] | None = None,
        leaves: Sequence[bytes] | None = None,
        whole: Sequence[int] | None = None,
    ) -> list[Receipt | QDSNError]:
        """Validate and append a batch in one database transaction.

        By default one bad transaction rejects the whole batch and nothing is written (its error
        names the transaction). With `skip_invalid` (followers of an ordering service) invalid
        transactions are left out, identically on every node, and returned as errors in place;
        `whole` then cuts the batch into submissions of that many transactions each, and a submission
        with an invalid transaction is left out whole (each of its places holds that refusal).
        `meta` is written in the same transaction (a follower's position in the ordering sequence).
        `leaves`: the canonical leaves `envs` were parsed from by `tx.from_leaf`, which saves encoding
        them again.
        """
        if whole is not None:
            if not skip_invalid or sum(whole) != len(envs) or min(whole, default=1) < 1:
                raise InvalidInput(f"submissions of {list(whole)} transactions do not cut a batch of {len(envs)}")
            with self._lock:
                return self._append_whole(envs, whole, meta, leaves)
        with self._lock:
            try:
                return self._finish(self._stage(envs, skip_invalid, False, leaves=leaves), meta)
            except _RetrySequential:
                return self._finish(self._stage(envs, skip_invalid, True, leaves=leaves), meta)

    def _append_whole(
        self,
        envs: Sequence[tx.Envelope],
        whole: Sequence[int],
        meta: dict[str, str] | None,
        leaves: Sequence[bytes] | None,
    ) -> list[Receipt | QDSNError]:
        """`append(skip_invalid=True, whole=…)`. Leaving a submission out can make a later one invalid
        (it used what the first declared), so the batch is staged again without the refused ones
        until every submission left holds; each pass refuses at least one, and most batches take one."""
        spans = list(itertools.pairwise(itertools.accumulate(whole, initial=0)))
        refused: dict[int, QDSNError] = {}  # submission → why it was refused
        verify_each = False
        while True:
            at = [i for k, (a, b) in enumerate(spans) if k not in refused for i in range(a, b)]
            some = [leaves[i] for i in at] if leaves else None
            st = self._stage([envs[i] for i in at], True, verify_each, leaves=some)
            got = dict(zip(at, st.out, strict=True))
            for k, (a, b) in enumerate(spans):
                bad = next((i for i in range(a, b) if isinstance(got.get(i), QDSNError)), None)
                if bad is not None:
                    refused[k] = _whole(bad - a, envs[bad], got[bad])  # type: ignore[arg-type]
            if any(isinstance(r, QDSNError) for r in st.out):
                st.verifier.__exit__(None, None, None)
                continue
            try:
                self._finish(st, meta)
            except _RetrySequential:  # a signature failed in the batch: find which, one by one
                verify_each = True
                continue
            out: list[Receipt | QDSNError] = []
            for k, (a, b) in enumerate(spans):
                out += [refused[k]] * (b - a) if k in refused else [got[i] for i in range(a, b)]
            return out

    def recorded(self, envs: Sequence[tx.Envelope]) -> list[Receipt] | None:
        """The receipts of a batch this replica holds already (one sent again after its answer was
        lost), or None when it does not hold every transaction of it."""
        out = []
        for env in envs:
            leaf = env.leaf()
            try:
                row = self.store.entry(txid=tx.txid(leaf))
            except NotFound:
                return None  # most often at the first: a batch is taken or refused whole
            out.append(Receipt(row.seq, row.txid, merkle.leaf_hash(row.leaf)))
        return out

    def check(self, envs: Sequence[tx.Envelope]) -> None:
        """Validate a batch as `append` would, on the log as this replica holds it, and write nothing;
        raises the refusal of its first bad transaction."""
        with self._lock:
            st = self._stage(envs, False, False)
        try:
            used = self.store.used_nonces(e.nonce for e in envs)
            i = next((i for i, e in enumerate(envs) if e.nonce in used), None)
            if i is not None:
                raise _annotate(i, envs[i], _replay(envs[i]))
            self._check_signatures(st)
        finally:
            st.verifier.__exit__(None, None, None)

    def mark(self, key: str) -> tuple[int, str | None]:
        """The log's size and a meta value written with its entries, read together."""
        with self._lock:
            return self.size, self.store.get_meta(key)

    def append_stream(self, batches: Iterable[Sequence[tx.Envelope]]) -> Iterator[list[Receipt | QDSNError]]:
        """Append queued batches as a pipeline: batch k+1 is validated while batch k's last
        signatures are verified and it is written. Yields each batch's receipts once it is durable.
        A bad batch raises after every batch before it was committed; nothing of it is written."""
        with self._lock:
            flight: list[_Staged] = []  # staged and not yet committed: at most two
            try:
                for envs in batches:
                    try:
                        flight.append(self._stage(envs, False, False, base=flight[-1] if flight else None))
                    except QDSNError:
                        while flight:
                            yield self._finish(flight.pop(0))
                        raise
                    if len(flight) == 2:
                        yield self._finish(flight.pop(0))
                while flight:
                    yield self._finish(flight.pop(0))
            finally:
                for st in flight:
                    st.verifier.__exit__(None, None, None)

    def _stage(
        self,
        envs: Sequence[tx.Envelope],
        skip_invalid: bool,
        verify_each: bool,
        base: _Staged | None = None,
        leaves: Sequence[bytes] | None = None,
    ) -> _Staged:
        """Validate a batch in memory, on the committed log or on `base` still in flight: fold it
        into a copy of the state, hash it into a copy of the tree, and stream its signatures to the
        verifier workers."""
        staged = _Staged(
            envs,
            (base.state if base else self.state).fork(),
            (base.frontier if base else self.store.frontier).copy(),
            _Pending(self.store, new_nodes := [], base.pending if base else None),
            # A leader refusing a whole batch lets the unique index catch a replay (see _finish);
            # a follower must know which to leave out, so it asks first.
            (self.store.used_nonces(e.nonce for e in envs) if skip_invalid else set())
            | ({e.nonce for e in base.envs} if base else set()),
            BatchVerifier().__enter__(),
            skip_invalid,
            verify_each,
            new_nodes=new_nodes,
            leaves=leaves,
        )
        try:
            self._validate(staged)
            staged.verifier.flush()
        except BaseException:
            staged.verifier.__exit__(None, None, None)
            raise
        return staged

    def _validate(self, st: _Staged) -> None:
        state, frontier, used = st.state, st.frontier, st.used
        tree = TreeView(frontier.size, st.pending.root_at)
        for i, env in enumerate(st.envs):
            try:
                if st.leaves is None:
                    env = tx.check_envelope(env)
                payload = tx.check_payload(env.type, env.payload)
                key = verify_key(state.authorize(env))
                if env.nonce in used:
                    raise _replay(env)
                if st.leaves is None:
                    msg, leaf = env.encode()
                else:
                    leaf = st.leaves[i]
                    msg = tx.signing_input_of(leaf, env.signature)
                sig = b64url_decode(env.signature)
                if st.verify_each:
                    key.verify(sig, msg)
                else:
                    st.verifier.add(key, sig, msg, i)
                try:
                    tree.size = frontier.size
                    state.apply(env, payload, frontier.size, tree)
                except QDSNError:
                    # A forged transaction is refused for its signature and a replayed one as a
                    # replay, not for their content; an earlier bad signature is the first failure.
                    if not st.skip_invalid:
                        if not st.verify_each:
                            self._check_signatures(st)
                        if self.store.used_nonces([env.nonce]):
                            raise _replay(env) from None
                    raise
            except QDSNError as e:
                if not st.skip_invalid:
                    raise _annotate(i, env, e) from None
                st.out.append(_annotate(i, env, e))
                continue
            used.add(env.nonce)
            lh = merkle.leaf_hash(leaf)
            st.new_nodes.extend(frontier.append(lh))
            rid = tx.txid(leaf)
            st.rows.append(Row(frontier.size - 1, rid, env.type, env.submitter, env.nonce, leaf))
            st.out.append(Receipt(frontier.size - 1, rid, lh))

    def _finish(self, st: _Staged, meta: dict[str, str] | None = None) -> list[Receipt | QDSNError]:
        """Write a staged batch while the workers finish its signatures; commit once all hold."""
        try:
            with self.store.batch(st.rows, st.frontier, st.new_nodes, st.state, meta):
                if not st.verify_each:
                    self._check_signatures(st)
        except DuplicateEntry:
            used = self.store.used_nonces(e.nonce for e in st.envs)
            i = next((i for i, e in enumerate(st.envs) if e.nonce in used), None)
            if i is None:
                raise
            raise _annotate(i, st.envs[i], _replay(st.envs[i])) from None
        finally:
            st.verifier.__exit__(None, None, None)
        st.state.clean()
        st.pending.before = None  # committed: whatever it leaned on is in the store now
        self.state = st.state
        return st.out

    @staticmethod
    def _check_signatures(st: _Staged) -> None:
        bad = st.verifier.failures()
        if not bad:
            return
        if st.skip_invalid:
            raise _RetrySequential
        i = int(bad[0])  # type: ignore[call-overload]
        raise _annotate(
            i,
            st.envs[i],
            BadSignature(
                "signature does not verify under the submitter's current key",
                "sign with the key registered for this DID",
            ),
        )

    # -- proofs ----------------------------------------------------------------------------------

    def _size(self, size: int | None) -> int:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise NotFound(f"the log has {self.size} entries; there is no tree of size {size}")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of entry `index` in the tree of `size` (default: now)."""
        return merkle.inclusion_proof(index, self._size(size), self.store)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of `old_size` is a prefix of the tree of `new_size` (default: now)."""
        return merkle.consistency_proof(old_size, self._size(new_size), self.store)

    def root_at(self, size: int) -> bytes:
        return self.store.root_at(self._size(size))

    # -- checkpoints -----------------------------------------------------------------------------

    def sign_checkpoint(self, signer: NoteSigner) -> str:
        """Sign a checkpoint of the log as it is now; never one inconsistent with an earlier one."""
        if signer.name != self.origin:
            raise InvalidInput(f"the log key is named {signer.name!r}; this log's origin is {self.origin!r}")
        size = self.size
        cp = Checkpoint(self.origin, size, self.root_at(size))
        if (expected := self._signed_by(signer, size)).key.raw != signer.key.verify_key.raw:
            # the log's key history moved on (a rotation is in the log): a checkpoint signed now with the
            # retired key would verify nowhere, and would stop the next one from being signed
            raise Conflict(f"the log key was rotated: this key is retired for checkpoints of size {size}",
                           f"sign with the current log key {expected.text()}")  # fmt: skip
        stored = self.store.last_checkpoint()
        if stored:
            last, _ = open_checkpoint(stored[1], self._signed_by(signer, stored[0]))
            if last.size > size:
                raise IntegrityError(f"the log shrank from {last.size} to {size} entries since the last checkpoint")
            merkle.verify_consistency(last.size, size, last.root, cp.root, self.consistency_proof(last.size, size))
        note = sign_note(cp.text(), signer)
        self.store.save_checkpoint(size, note)
        if self.store.get_meta("log_key") is None:
            self.store.set_meta("log_key", signer.verifier().text())
        return note

    def _signed_by(self, signer: NoteSigner, size: int) -> NoteVerifier:
        """The key our checkpoint of `size` was signed with: the signer's key then, when the signer is the
        log's (a rotation since leaves it verifiable), else the signer's own."""
        if self.size and signer.key.verify_key.raw in [s.key for s in self.key_history(self.log_signer())]:
            return self.log_key(size)
        return signer.verifier()

    def add_cosignature(self, cosigned: str, cosigner: NoteVerifier) -> str:
        """Merge a witness's verified cosignature into our stored checkpoint of the same size."""
        cp, opened = open_checkpoint(cosigned, self.log_verifier(Checkpoint.parse(parse_note(cosigned)[0]).size))
        if not cosigners_verified(cosigned, [cosigner]):
            raise NotFound(f"{cosigner.name} did not cosign this checkpoint")
        stored = dict(self.store.checkpoint_notes()).get(cp.size)
        if stored is None or parse_note(stored)[0] != opened.text:
            raise IntegrityError("the cosigned checkpoint is not one this log published")
        line = next(s.line() for s in parse_note(cosigned)[1] if (s.name, s.key_id) == (cosigner.name, cosigner.key_id))
        merged = stored if line in stored else stored + line
        self.store.save_checkpoint(cp.size, merged)
        return merged

    def log_verifier(self, size: int | None = None) -> NoteVerifier:
        """The key of this log's checkpoints (of `size` entries): the key that signed its first checkpoint,
        followed through its key history when that was the key of the regulator that started the log."""
        text = self.store.get_meta("log_key")
        if text is None:
            raise NotFound("this ledger has not recorded its log key", "sign a checkpoint first")
        first = parse_verifier(text)
        if self.size and first.key.raw in [s.key for s in self.key_history(self.log_signer())]:
            return self.log_key(size)
        return first

    def witness(
        self,
        note: str,
        log_key: NoteVerifier,
        cosigner: NoteSigner,
        timestamp: int,
        proof: Sequence[bytes] | None = None,
    ) -> str:
        """Cosign another node's checkpoint (C2SP tlog-cosignature) once it is proved consistent
        with the last one we cosigned, and with our own replica where we hold those entries."""
        cp, _ = open_checkpoint(note, log_key)
        if self.origin == cp.origin and self.size >= cp.size and self.root_at(cp.size) != cp.root:
            raise SplitView(
                f"split view: the log's checkpoint for size {cp.size} differs from our replica",
                "do not trust this log operator; raise an alert",
            )
        last = self.store.witnessed(cp.origin)
        if last is not None:
            last_size, last_root, _ = last
            if cp.size < last_size:
                raise IntegrityError(f"checkpoint size {cp.size} is older than the {last_size} we cosigned")
            if proof is None and self.origin == cp.origin and self.size >= cp.size:
                proof = self.consistency_proof(last_size, cp.size)
            merkle.verify_consistency(last_size, cp.size, last_root, cp.root, proof or [])
        cosigned = add_signature(note, cosigner, timestamp=timestamp)
        self.store.save_witnessed(cp.origin, cp.size, cp.root, cosigned)
        return cosigned


@dataclass
class _Staged:
    """A batch validated in memory and not yet committed."""

    envs: Sequence[tx.Envelope]
    state: State
    frontier: merkle.Frontier
    pending: _Pending
    used: set[str]
    verifier: BatchVerifier
    skip_invalid: bool
    verify_each: bool
    out: list[Receipt | QDSNError] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    new_nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    leaves: Sequence[bytes] | None = None


class _Pending:
    """The store's tree plus the nodes of the batch being staged, so a transaction can refer to
    the log as it stands just before it. Rarely asked, so the batch's nodes are indexed on demand."""

    def __init__(self, store: Store, new_nodes: list[tuple[int, int, bytes]], before: _Pending | None = None) -> None:
        self.store = store
        self.new_nodes = new_nodes
        self.before = before  # a batch in flight ahead of this one, not yet in the store

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        staged = {(lv, ix): h for lv, ix, h in self.before.new_nodes} if self.before else {}
        staged.update({(lv, ix): h for lv, ix, h in self.new_nodes})
        stored = iter(self.store.nodes([i for i in ids if i not in staged]))
        return [staged[i] if i in staged else next(stored) for i in ids]

    def root_at(self, size: int) -> bytes:
        return merkle.root_at(size, self)


class SplitView(IntegrityError):
    """A signed checkpoint that names another root than this replica holds at the same size."""


class _RetrySequential(Exception):
    """A batch signature failed while skipping invalid transactions: redo one by one."""
