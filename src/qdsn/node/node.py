"""A running participant: its home (keys, ledger replica, vault) and the services it offers.

With embedded ordering one node of the consortium operates the log (in the demo, the regulator); the
others submit to it and follow its log, verifying everything they receive. With `ordering=etcd://…`
every node submits to the etcd cluster, follows its sequence into its own replica and witnesses the
log's checkpoints (see `node.witness`); `link` then names a peer to catch up from when etcd no longer
holds the batches a replica needs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import cached_property
from typing import Any, Protocol

from qdsn.api.nonces import NonceStore
from qdsn.clock import format_time, system_clock
from qdsn.data import backup
from qdsn.data.vault import Batch, Vault
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import Checkpoint, cosigners_verified, parse_note
from qdsn.ledger.ledger import Receipt
from qdsn.ledger.ordering import etcd
from qdsn.ledger.ordering.budget import Budget
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node import seen, witness
from qdsn.node.follow import Operator, log_key, pull
from qdsn.node.home import NodeHome, find_anchor
from qdsn.node.keeper import Keeper
from qdsn.node.lock import HomeLock
from qdsn.policy.store import PolicyStore

log = logging.getLogger(__name__)

RETAIN = 1_000_000  # etcd positions kept: ~0.5 GB of a default 2 GB etcd quota at typical entry sizes
# Catching up asks the log operator (or etcd, or the running node): at most one at once, and one every
# CATCH_UP_EVERY seconds whoever asks, so that requests, anonymous or not, cannot make this node call it
# at will; a caller that must see the log as it stands now waits for the next one.
CATCH_UP_EVERY = 0.5
# How old a catch-up may be for an anonymous reader (public routes): it gets the replica as it stands.
PUBLIC_RECENT = 5.0


class Relay(Protocol):
    """A node of the same home that runs and writes its replica (`api.admin.AdminClient`)."""

    def submit(self, envelopes: list[tx.Envelope]) -> list[dict[str, Any]]: ...

    def catch_up(self) -> int: ...


class Node:
    """One participant as a service. `operator`: this node orders the log (default: the regulator,
    unless QDSN_OPERATOR=0|1 says otherwise); `link` reaches the operator when this node is not it;
    `ledger`: a replica already open (the node then leaves closing it to its owner); `isolation`: how
    certification models run here (see `compute.sandbox`); `ordering`: etcd://HOST:PORT[,…] to order
    through an etcd cluster; `quorum`: cosignatures a checkpoint needs before this node trusts it;
    `retain`: how many of the newest positions the log signer keeps in etcd (older batches are pruned);
    `public_url`: the URL peers reach its API at, which signed requests must be addressed to (default:
    the address it serves on); `relay`: the node running on this home, through which this one (a
    command) puts its transactions on the log and follows it, never writing the replica itself;
    `lock`: the home's lock this node holds, released on `close`."""

    def __init__(
        self,
        home: NodeHome,
        *,
        operator: bool | None = None,
        link: Operator | None = None,
        ledger: Ledger | None = None,
        isolation: str = "bwrap",
        ordering: str | None = None,
        quorum: int = 1,
        retain: int = RETAIN,
        public_url: str | None = None,
        relay: Relay | None = None,
        lock: HomeLock | None = None,
    ) -> None:
        if isolation not in ("bwrap", "process"):
            raise InvalidInput(f"isolation is bwrap or process, not {isolation!r}")
        self.home = home
        self.isolation = isolation  # how models run here: bwrap, or "process" only when the owner chose it
        self.ledger: Ledger = ledger or home.ledger()
        self._owns_ledger = ledger is None
        url = home.ledger_location()
        self.policies = PolicyStore(url if "://" in url else str(home.path / "policy.db"))
        self.link = link
        if operator is None:
            env = os.environ.get("QDSN_OPERATOR")
            operator = env == "1" if env in ("0", "1") else home.role == "regulator"
        self.quorum, self.retain = quorum, retain
        self.relay, self.lock = relay, lock
        self.receipts: list[Receipt] = []  # of this node's transactions put on the log, in order
        self.etcd: etcd.Follower | None = None
        self.orderer: EmbeddedOrderer | etcd.EtcdOrderer | None = None
        self.budget: Budget | None = None  # what each submitter may put on the log through this node
        # With a relay the running node orders and follows; this one only reads the replica it writes.
        if relay is None and ordering:
            cluster = etcd.Cluster.from_url(ordering, self.ledger.origin)
            self.etcd = etcd.Follower(self.ledger, cluster, on_applied=self._applied)
            self.budget = Budget(self.ledger.store.engine, self.role_of, own=(self.did,))
            self.orderer = etcd.EtcdOrderer(self.ledger, cluster, self.etcd, self.budget)
            if (
                self.etcd.position == 0
                and self.ledger.size
                and etcd.seed(cluster, self.ledger.store.leaves(0, self.ledger.size))
            ):
                log.info("started the etcd sequence with this replica's %d entries", self.ledger.size)
        elif relay is None and operator:
            self.budget = Budget(self.ledger.store.engine, self.role_of, own=(self.did,))
            self.orderer = EmbeddedOrderer(self.ledger, self.budget)
        self._alerts: list[tx.Envelope] = []
        self._backed_up: str | None = None  # the vault's fingerprint at its last backup
        self.backup_to: Operator | None = None  # a keeper this node sends its sealed vault to as it changes
        self.public_url = public_url  # where peers reach this node's API; None: the address it serves on
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.deciding = threading.Lock()  # one use decision at a time: each counts the uses before it
        self.following = threading.Lock()  # one puller at a time appends to the replica
        self.catch_up_every = CATCH_UP_EVERY
        self._catching = threading.Condition()  # guards the catch-up counters below
        self._catch_ups_started = self._catch_ups_done = 0
        self._caught_up_at = float("-inf")  # time.monotonic() when the last catch-up started
        self._catch_up_failed: BaseException | None = None  # what the last one raised

    @cached_property
    def nonces(self) -> NonceStore:
        """The nonces of the signed requests this node accepted, kept until their signatures expire."""
        url = self.home.ledger_location()
        return NonceStore(url if "://" in url else str(self.home.path / "nonces.db"))

    @cached_property
    def keeper(self) -> Keeper:
        """The sealed backups this node keeps for other members."""
        return Keeper(self.home.path / "kept-backups")

    def back_up(self, to: Operator) -> str | None:
        """Seal this node's vault and hand it to the keeper at `to` if it changed since the last time;
        returns the backup's SHA-256, or None when nothing changed."""
        state = self.vault.fingerprint()
        if state == self._backed_up:
            return None
        sealed = backup.seal(self.vault.engine, self.home.kek(), self.did, format_time(system_clock()))
        got = to.call("PUT", f"/backups/{self.did}", raw=sealed)
        self._backed_up = state
        return str(got["sha256"])  # type: ignore[index]

    @cached_property
    def vault(self) -> Vault:
        """The node's vault of encrypted datasets (opened on first use)."""
        return self.home.vault()

    @property
    def did(self) -> str:
        return self.home.did

    def key_of(self, did: str) -> bytes | None:
        """The current public key of a participant, as the ledger knows it (after catching up with
        the log when the DID is new to this replica)."""
        ident = self.ledger.state.identities.get(did)
        if ident is None and (self.link is not None or self.relay is not None):
            self.catch_up()
            ident = self.ledger.state.identities.get(did)
        return ident.key if ident else None

    def role_of(self, did: str) -> str | None:
        """A participant's role as the ledger knows it."""
        ident = self.ledger.state.identities.get(did)
        return ident.role if ident else None

    def catch_up(self, until: int | None = None, *, recent: float | None = None) -> int:
        """Pull the log's new entries into this replica, validating each (nothing to do on the embedded
        operator's own node); returns how many. Decisions are made on the log as it stands: the entries
        are those of a catch-up started after this call (one for all who ask meanwhile, see
        CATCH_UP_EVERY), or up to `until` when the replica holds that many (a caller following its own
        submission back, which waits for no pace, only for one under way). With `recent` (seconds), a
        catch-up started that recently, or one under way, is enough and nobody waits: for anonymous
        readers, who get the replica as it stands."""
        if self.relay is None and self.etcd is None and self.link is None:
            return 0
        before = self.ledger.size
        if until is not None and before >= until:
            return 0
        with self._catching:
            asked = time.monotonic()
            if recent is not None and (self._catch_ups_started > self._catch_ups_done
                                       or asked - self._caught_up_at <= recent):  # fmt: skip
                return 0
            wanted = self._catch_ups_started + 1  # one that starts from now on
            while self._catch_ups_done < wanted:
                if self._catch_ups_started > self._catch_ups_done:  # under way: wait for it, and for the next
                    self._catching.wait()
                    continue
                # this node's own submission followed back (`until`) is not held to the pace
                every = 0.0 if until is not None else self.catch_up_every
                wait = self._caught_up_at + every - time.monotonic()
                if wait > 0:
                    self._catching.wait(wait)
                    continue
                self._catch_ups_started += 1
                self._caught_up_at = time.monotonic()
                ours = self._catch_ups_started
                self._catching.release()
                failed: BaseException | None = None
                try:
                    self._catch_up_now()
                except BaseException as e:
                    failed = e
                    raise
                finally:
                    self._catching.acquire()
                    self._catch_ups_done, self._catch_up_failed = ours, failed
                    self._catching.notify_all()
            if self._catch_up_failed is not None:  # the one this caller waited for failed: so does it
                raise self._catch_up_failed
        return self.ledger.size - before

    def _catch_up_now(self) -> None:
        if self.relay is not None:
            self.relay.catch_up()
            self.ledger.refresh()
        elif self.etcd is not None:
            self.etcd.wait_for(int(self.etcd.cluster.get("seq") or 0))
        elif self.link is not None:
            with self.following:
                pull(self.ledger, self.link)

    def catch_up_from_peer(self) -> int:
        """Fetch the entries etcd no longer holds from the peer at `link`, validating each, and resume
        the etcd sequence where that peer's replica stood; returns how many entries were added."""
        if self.link is None or self.etcd is None:
            raise NotFound("no peer to catch up from", "start the node with --operator URL, a peer's API")
        mark = self.link.call("GET", "/ledger/ordering")
        size, position = int(mark["size"]), int(mark["position"])  # type: ignore[index]
        with self.following:
            before = self.ledger.size
            if before > size:
                raise IntegrityError(f"this replica holds {before} entries, more than the peer's {size}")
            if before == size:
                self.ledger.store.set_meta(etcd.POSITION, str(position))
            pull(self.ledger, self.link, until=size, meta={etcd.POSITION: str(position)})
            if self.ledger.size != size:
                raise IntegrityError(f"the peer served {self.ledger.size} of the {size} entries it announced")
            self.etcd.position = max(self.etcd.position, position)
        return size - before

    def order(self, envelopes: list[tx.Envelope]) -> list[Receipt | QDSNError]:
        """Append transactions to the log through this node's orderer, taken or refused whole (the
        refusal raised); a batch the log holds already gets the receipts it got then."""
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "submit to the consortium's log operator")
        out = self.orderer.submit(envelopes)
        if bad := next((r for r in out if isinstance(r, QDSNError)), None):
            raise bad
        return out

    def submit(self, envelopes: list[tx.Envelope]) -> list[Receipt]:
        """Put this node's transactions on the log and return where they landed, once this replica holds
        them (so that it holds its own decisions before it decides again: a count limit is counted on
        the ledger): ordered here if it operates the log, else sent to the operator (or through the
        node running on this home) and followed back."""
        if self.relay is not None:
            got = self.relay.submit(envelopes)
            self.ledger.refresh()
            out = self._receipts(envelopes, got)
        elif self.orderer is not None:
            out = [r for r in self.order(envelopes) if isinstance(r, Receipt)]
        elif self.link is None:
            raise NotFound("this node is a member of the log and knows no operator to send its transactions to",
                           "give --operator URL, or set operator = URL in the service table of node.toml")  # fmt: skip
        else:
            got = self.link.submit(envelopes)  # sent again with its idempotency key while the operator cannot answer
            self.catch_up(until=max(r["seq"] for r in got) + 1)
            out = self._receipts(envelopes, got)
        self.receipts.extend(out)
        return out

    def _receipts(self, envelopes: list[tx.Envelope], got: list[dict[str, Any]]) -> list[Receipt]:
        """The log's receipts for `envelopes`, checked against this replica, which has followed the log
        past them: each transaction must be at the place the log named."""
        out = []
        for env, r in zip(envelopes, got, strict=True):
            seq, txid = int(r["seq"]), tx.txid(env.leaf())
            if seq >= self.ledger.size or self.ledger.store.entry(seq).txid != txid:
                raise IntegrityError(f"the log says {env.type} {txid[:16]}… is entry {seq}, but this replica "
                                     f"of {self.ledger.size} entries does not hold it there",
                                     "run qdsn ledger verify, and compare with the operator's checkpoint")  # fmt: skip
            out.append(Receipt(seq, txid, b""))
        return out

    def anchor(self, batch: Batch) -> str:
        """Commit a vault batch on the log with `dataset.anchor`; returns the transaction id."""
        (receipt,) = self.submit([self.home.sign("dataset.anchor", batch.anchor_payload())])
        return receipt.txid

    def find_anchor(self, dataset: str, first: int) -> tuple[str, Batch] | None:
        """This node's `dataset.anchor` of `dataset` at record `first` in the log, if one landed there
        (after following the log: an anchor of a command that crashed may be there and not yet here)."""
        self.catch_up()
        return find_anchor(self.ledger, self.did, dataset, first)

    def checkpoint(self) -> str:
        """The log's current checkpoint as a signed note: signed here by the log operator, or (etcd
        ordering) the latest one the log signer published, with the cosignatures on the ledger."""
        if self.etcd is not None:  # published in the log signer's rounds, not on every request
            note = self.etcd.cluster.get("checkpoint")
            if note is None:
                raise NotFound("the log signer has not published a checkpoint yet", "try again in a moment")
            return witness.cosigned_note(self.ledger, note.decode())
        if self.orderer is None:
            raise NotFound("this node does not operate the log", "ask the consortium's log operator")
        note = self.ledger.sign_checkpoint(self.home.log_signer())
        seen.remember(self.home.path, note, self.home.log_signer().verifier(), self.ledger.store)
        return note

    def trusted_checkpoint(self) -> str:
        """The latest checkpoint this node trusts, as a signed note with its cosignatures: the last one it
        cosigned (embedded) or the log signer's latest (etcd), once `quorum` members have cosigned it."""
        if self.etcd is not None:
            note = self.checkpoint()
        else:
            seen = self.ledger.store.witnessed(self.ledger.origin)
            if seen is None:
                raise NotFound("this node has cosigned no checkpoint yet", "follow the log first (qdsn node start)")
            note = seen[2]
        cp = Checkpoint.parse(parse_note(note)[0])
        have = cosigners_verified(note, witness.cosigners(self.ledger, cp.size))
        if len(have) < self.quorum:
            raise NotFound(f"checkpoint {cp.size} carries {len(have)} cosignatures, {self.quorum} required",
                           "wait for the members' next witness round")  # fmt: skip
        return note

    # -- etcd ordering: following and witnessing ------------------------------------------------

    def signs_log(self) -> bool:
        """Whether this node holds the log's key (the regulator that started it)."""
        return self.ledger.size > 0 and log_key(self.ledger).key.raw == self.home.key().verify_key.raw

    def publish_checkpoint(self) -> str:
        """Sign a checkpoint of this replica and publish it through etcd (the log signer only)."""
        assert self.etcd is not None
        note = self.ledger.sign_checkpoint(self.home.log_signer())
        self.etcd.cluster.put("checkpoint", note.encode())
        return note

    def _applied(self, envs: list[tx.Envelope], results: list[Receipt | QDSNError]) -> None:
        raised = witness.alerts(self.home, self.ledger, envs, results, int(time.time()))
        for a in raised:
            log.critical("split view: %s's replica disagrees with ours at size %d; raising an alert",
                         a.payload["claims"][0]["signer"], a.payload["size"])  # fmt: skip
        self._alerts.extend(raised)

    def witness_round(self, now: int | None = None) -> int | None:
        """One round of an etcd node: the log signer publishes a checkpoint when the log grew; every
        node cosigns its own replica at the published size and submits the alerts it raised. Returns
        the size it cosigned, if any."""
        assert self.etcd is not None
        ts = int(time.time()) if now is None else now
        if self._alerts:
            alerts, self._alerts = self._alerts, []
            try:
                self.order(alerts)
            except QDSNError:
                self._alerts[:0] = alerts  # evidence is not dropped: the next round tries again
                raise
        if self.signs_log():
            last = self.ledger.store.last_checkpoint()
            since = last[0] if last else 0
            if witness.substance(self.ledger) > since:
                self.publish_checkpoint()
            if self.etcd.position > self.retain:
                etcd.prune(self.etcd.cluster, self.etcd.position - self.retain)
        note = self.etcd.cluster.get("checkpoint")
        if note is None or self.ledger.size == 0:
            return None
        cp, _ = self.ledger.open_checkpoint(note.decode())
        mine = self.ledger.store.witnessed(self.ledger.origin)
        if cp.size > self.ledger.size or (mine is not None and mine[0] >= cp.size):
            return None
        if self.ledger.root_at(cp.size) != cp.root:
            log.critical("the log signer's checkpoint at %d disagrees with this replica", cp.size)
        if mine is not None and self.ledger.root_at(mine[0]) != mine[1]:
            log.critical("this replica's root at %d is not the one it cosigned: it was changed", mine[0])
        # This node states its own root even then, so that the others can compare and expose a difference.
        self.order([witness.cosign(self.home, self.ledger, cp.size, ts)])
        self.ledger.store.save_witnessed(self.ledger.origin, cp.size, self.ledger.root_at(cp.size), note.decode())
        if self.ledger.root_at(cp.size) == cp.root:  # kept outside the replica: a rollback of it is noticed
            seen.remember(self.home.path, note.decode(), log_key(self.ledger, cp.size), self.ledger.store)
        return cp.size

    def settled(self) -> bool:
        """Whether this replica has applied all of etcd's sequence and `quorum` members have cosigned a
        checkpoint that covers every entry but the witnessing ones."""
        assert self.etcd is not None
        if self.etcd.position < int(self.etcd.cluster.get("seq") or 0):
            return False
        trusted = witness.trusted(self.ledger, self.quorum)
        return trusted is not None and trusted[0] >= witness.substance(self.ledger)

    def start(self, every: float = 1.0) -> None:
        """Follow the etcd sequence and witness the log in background threads until `close`."""
        if self.etcd is None or self._threads:
            return
        follower = self.etcd

        def rounds() -> None:
            while not self._stop.wait(every):
                try:
                    self.witness_round()
                except QDSNError as e:
                    log.warning("a witness round failed: %s", e)
                except Exception:  # the node keeps witnessing; the next round tries again
                    log.exception("a witness round failed")

        catch_up = self.catch_up_from_peer if self.link is not None else None
        self._threads = [threading.Thread(target=follower.run, args=(self._stop, catch_up), daemon=True),
                         threading.Thread(target=rounds, daemon=True)]  # fmt: skip
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)
        if isinstance(self.orderer, etcd.EtcdOrderer):
            self.orderer.close()
        if "vault" in self.__dict__:
            self.vault.close()
        if "nonces" in self.__dict__:
            self.nonces.close()
        self.policies.close()
        if self._owns_ledger:
            self.ledger.close()
        if self.lock is not None:
            self.lock.release()
