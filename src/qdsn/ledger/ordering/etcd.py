"""Ordering on an etcd cluster: etcd decides the order, every node's replica stays the record.

Layout under `/qdsn/<origin>/`: `seq` holds the next position of the ordering sequence; a batch of
transactions starting at position p is the key `log/<p, 16 digits>`, its value the line `qdsn:whole`
and then the batch's submissions, their leaves one per line and the submissions apart by an empty
line (canonical JSON never holds a raw newline, and a leaf is never empty). Every replica takes or
refuses a submission whole. A batch takes its position by a compare-and-swap on `seq` in the same
etcd transaction that writes it, so two submitters can never take the same position. `checkpoint`
holds the log's latest signed checkpoint, and `pruned` the position below which batches were deleted
(a node behind it catches up from a peer).

Followers read batches in position order (watch to wake up, range reads to catch up), validate every
transaction themselves and skip invalid submissions identically; each replica records the position it
has applied in the same database transaction as the entries. A submitter validates its batch on its
replica, caught up, before proposing it: a refused batch is not written to etcd at all, and one that a
race made invalid is refused by every replica alike. A batch sent again (its answer was lost) gets the
receipts it got the first time: a transaction id is the hash of its leaf.

Client: etcd3gw, which speaks etcd's JSON gRPC gateway over HTTP with `requests`. It is maintained
(OpenStack), synchronous like the rest of the core, and carries no generated protobuf code; the old
`etcd3` package breaks with protobuf >= 4 and `aetcd` is asyncio-only. It talks to one member, so
`Cluster` adds the failover across members. Locks and leases are not used: Jepsen found etcd locks
unsafe for mutual exclusion, and the compare-and-swap needs none. Every request asks for a leader
(gRPC metadata `hasleader`), so a member cut off from the quorum answers "no leader" at once instead
of waiting out its request timeout, and a cluster without a quorum is reported `Unavailable` (503)
within `Cluster.deadline` seconds.
"""

from __future__ import annotations

import base64
import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, Etcd3Exception, InternalServerError
from etcd3gw.watch import Watcher

from qdsn.errors import InvalidInput, NotFound, QDSNError, Unavailable
from qdsn.ledger import merkle, tx
from qdsn.ledger.ledger import Ledger, Receipt
from qdsn.ledger.ordering.budget import Budget

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # transactions per etcd write (one submission may hold more: it is never cut)
MAX_BATCH_BYTES = 1 << 20  # below etcd's default 1.5 MiB request limit
WHOLE = b"qdsn:whole\n"  # first line of a batch of whole submissions (a batch without it: one per line)
POSITION = "ordering.position"  # replica meta: how much of the etcd sequence this replica has applied


class Refused(QDSNError):
    """The etcd cluster answered and refused the request (too large, compacted, malformed)."""


# What a member that is down, partitioned or in an election answers; worth asking the next one.
_TRANSIENT = (ConnectionFailedError, ConnectionTimeoutError, InternalServerError)


def _message(detail: str | None) -> str:
    """The error message in a gateway's JSON error body."""
    try:
        return str(orjson.loads(detail or "").get("message") or detail)
    except (orjson.JSONDecodeError, AttributeError):
        return detail or ""


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _key(position: int) -> str:
    return f"log/{position:016d}"


def parse_endpoints(url: str) -> list[tuple[str, int]]:
    """`etcd://HOST:PORT[,HOST:PORT...]` → [(host, port), …]."""
    if not url.startswith("etcd://"):
        raise InvalidInput(f"ordering {url!r} is not etcd://HOST:PORT[,HOST:PORT...]", "or leave it out: embedded")
    out = []
    for part in url[len("etcd://") :].strip("/").split(","):
        u = urlsplit("//" + part)
        if not u.hostname or u.port is None:
            raise InvalidInput(f"etcd member {part!r} is not HOST:PORT")
        out.append((u.hostname, u.port))
    return out


class Cluster:
    """An etcd cluster reached through its members' gateways: a request that cannot reach one member
    goes to the next, until `deadline` seconds have passed (an election takes about a second)."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], prefix: str, *, timeout: float = 2.0,
                 deadline: float = 5.0) -> None:  # fmt: skip
        if not endpoints:
            raise InvalidInput("an etcd cluster needs at least one member")
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/") + "/"
        self.timeout, self.deadline = timeout, deadline
        self._current = random.randrange(len(self.endpoints))  # spread the nodes over the members
        self._local = threading.local()  # requests sessions are not thread-safe
        self.switches = 0  # how often a member failed and the next one was tried

    @classmethod
    def from_url(cls, url: str, origin: str, **kw: Any) -> Cluster:
        return cls(parse_endpoints(url), f"/qdsn/{origin}", **kw)

    def client(self) -> Etcd3Client:
        i = self._current
        cache = self._local.__dict__.setdefault("clients", {})
        if i not in cache:
            host, port = self.endpoints[i]
            cache[i] = Etcd3Client(host=host, port=port, timeout=self.timeout, api_path="/v3/")
            cache[i].session.headers["Grpc-Metadata-hasleader"] = "true"  # "no leader" at once, not after 7 s
        return cache[i]

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the gateway, failing over across members."""
        give_up = time.monotonic() + self.deadline
        pause = 0.05
        while True:
            c = self.client()
            c.timeout = min(self.timeout, max(0.2, give_up - time.monotonic()))  # the last try ends by the deadline
            try:
                return c.post(c.get_url(path), json=body)  # type: ignore[no-any-return]
            except (Etcd3Exception, requests.RequestException) as e:
                if isinstance(e, Etcd3Exception) and not isinstance(e, _TRANSIENT):
                    why = _message(e.detail_text) or str(e)
                    raise Refused(f"etcd refused {path}: {why}") from e  # another member would refuse it too
                if time.monotonic() > give_up:
                    why = _message(e.detail_text) if isinstance(e, Etcd3Exception) else str(e)
                    raise Unavailable(f"the ordering service (etcd) did not answer {path} within {self.deadline:.0f} s "
                                      f"(no quorum, or no member reachable): {why}", "try again in a few seconds; "
                                      "an operator checks the cluster: etcdctl endpoint health") from e  # fmt: skip
                self._current = (self._current + 1) % len(self.endpoints)
                self.switches += 1
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def get(self, key: str) -> bytes | None:
        kvs = self.call("/kv/range", {"key": _b64(self.prefix + key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def put(self, key: str, value: bytes) -> None:
        self.call("/kv/put", {"key": _b64(self.prefix + key), "value": _b64(value)})

    def scan(self, start: str, end: str, limit: int) -> list[tuple[str, bytes]]:
        """Keys in [start, end) in key order, at most `limit`."""
        got = self.call("/kv/range", {"key": _b64(self.prefix + start), "range_end": _b64(self.prefix + end),
                                      "limit": limit, "sort_order": "ASCEND", "sort_target": "KEY"})  # fmt: skip
        n = len(self.prefix)
        return [(base64.b64decode(kv["key"]).decode()[n:], base64.b64decode(kv.get("value", "")))
                for kv in got.get("kvs", [])]  # fmt: skip

    def starts(self, upto: int) -> list[int]:
        """The positions at which batches start, up to and including `upto` (keys only)."""
        end = _b64(self.prefix + _key(upto + 1))
        got = self.call("/kv/range", {"key": _b64(self.prefix + "log/"), "range_end": end, "keys_only": True,
                                      "sort_order": "ASCEND", "sort_target": "KEY"})  # fmt: skip
        n = len(self.prefix) + 4
        return [int(base64.b64decode(kv["key"])[n:]) for kv in got.get("kvs", [])]

    def watcher(self, on_change: threading.Event) -> Watcher:
        """Wake `on_change` whenever a batch is written (through the current member)."""
        return Watcher(self.client(), self.prefix + "log/", lambda _e: on_change.set(),
                       range_end=self.prefix + "log0")  # fmt: skip


def encode_batch(submissions: Sequence[Sequence[bytes]]) -> bytes:
    """A batch of submissions as one etcd value, each to be taken or refused whole."""
    if any(not s or any(not x or b"\n" in x for x in s) for s in submissions):
        raise InvalidInput("a submission holds at least one leaf, and a leaf is one non-empty line")
    return WHOLE + b"\n\n".join(b"\n".join(s) for s in submissions)


def decode_batch(value: bytes) -> list[list[bytes]]:
    """The submissions of a batch, each a list of leaves (a batch written without the `qdsn:whole`
    line holds one-transaction submissions)."""
    if value.startswith(WHOLE):
        return [s.split(b"\n") for s in value[len(WHOLE) :].split(b"\n\n")]
    return [[x] for x in value.split(b"\n")] if value else []


def append(cluster: Cluster, leaves: Sequence[bytes], head: int | None = None,
           sizes: Sequence[int] | None = None) -> int:  # fmt: skip
    """Put one batch of leaves at the end of the sequence; returns its position. `sizes` cut it into
    submissions, each taken or refused whole (default: one submission). The position is taken by
    compare-and-swap on `seq` (first tried at `head`, if given): when another submitter got there
    first, the failure branch tells where the end is now, and the batch is tried there."""
    if not leaves:
        raise InvalidInput("an empty batch has no position")
    cuts = list(itertools.accumulate(sizes or [len(leaves)], initial=0))
    if cuts[-1] != len(leaves):
        raise InvalidInput(f"submissions of {list(sizes or [])} transactions do not cut a batch of {len(leaves)}")
    value = encode_batch([leaves[a:b] for a, b in itertools.pairwise(cuts)])
    seq = _b64(cluster.prefix + "seq")
    while True:
        if head is None:
            raw = cluster.get("seq")
            head = int(raw) if raw else 0
        cond = ({"key": seq, "target": "VERSION", "result": "EQUAL", "version": 0} if head == 0 else
                {"key": seq, "target": "VALUE", "result": "EQUAL", "value": _b64(str(head))})  # fmt: skip
        got = cluster.call("/kv/txn", {
            "compare": [cond],
            "success": [{"request_put": {"key": seq, "value": _b64(str(head + len(leaves)))}},
                        {"request_put": {"key": _b64(cluster.prefix + _key(head)), "value": _b64(value)}}],
            "failure": [{"request_range": {"key": seq}}],
        })  # fmt: skip
        if got.get("succeeded"):
            return head
        kvs = got["responses"][0]["response_range"].get("kvs", [])
        head = int(base64.b64decode(kvs[0]["value"])) if kvs else 0


def seed(cluster: Cluster, leaves: Sequence[bytes]) -> bool:
    """Start an empty sequence with a replica's existing entries (a log that moves from embedded
    ordering to etcd); False when the sequence has begun already. The first batch takes position 0
    only if nothing is there; the rest follow it like any submission."""
    batches = list(_batches(leaves))
    if not batches:
        return False
    seq = _b64(cluster.prefix + "seq")
    first = batches[0]
    got = cluster.call("/kv/txn", {
        "compare": [{"key": seq, "target": "VERSION", "result": "EQUAL", "version": 0}],
        "success": [{"request_put": {"key": seq, "value": _b64(str(len(first)))}},
                    {"request_put": {"key": _b64(cluster.prefix + _key(0)),
                                     "value": _b64(encode_batch([[x] for x in first]))}}],
    })  # fmt: skip
    if not got.get("succeeded"):
        return False
    for batch in batches[1:]:
        append(cluster, batch, sizes=[1] * len(batch))  # entries a replica may hold some of already
    return True


def _batches(leaves: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Leaves cut into batches of at most MAX_BATCH transactions and MAX_BATCH_BYTES."""
    batch: list[bytes] = []
    size = 0
    for leaf in leaves:
        if batch and (len(batch) == MAX_BATCH or size + len(leaf) + 1 > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(leaf)
        size += len(leaf) + 1
    if batch:
        yield batch


def prune(cluster: Cluster, before: int) -> int:
    """Delete the batches that end at or before position `before` (every replica is expected to have
    them; one further behind catches up from a peer), record where the sequence now starts, and let
    etcd compact their history. Returns how many batches went."""
    starts = cluster.starts(before)
    if len(starts) < 2:
        return 0
    cut = starts[-1]  # the batch starting here may end beyond `before`: it stays, and all after it
    got = cluster.call("/kv/txn", {"success": [
        {"request_delete_range": {"key": _b64(cluster.prefix + "log/"), "range_end": _b64(cluster.prefix + _key(cut))}},
        {"request_put": {"key": _b64(cluster.prefix + "pruned"), "value": _b64(str(cut))}},
    ]})  # fmt: skip
    # Deleted keys keep their history until etcd compacts it; only then is the space reusable.
    try:
        cluster.call("/kv/compaction", {"revision": got["header"]["revision"]})
    except Refused as e:
        if "compacted" not in str(e):  # compacted further already, by etcd or another call
            raise
    return len(starts) - 1


def _fits(leaves: list[bytes]) -> list[bytes]:
    """`leaves`, when they fit one etcd write: a batch is taken whole, so it is never cut."""
    size = sum(map(len, leaves)) + len(leaves)
    if not leaves or size > MAX_BATCH_BYTES:
        raise InvalidInput(f"a batch of {len(leaves)} transactions ({size} bytes) is not one etcd write of 1 to "
                           f"{MAX_BATCH_BYTES} bytes, the most taken whole", "send it in parts")  # fmt: skip
    return leaves


@dataclass
class _Waiting:
    leaves: list[bytes]
    done: Future[int]


class EtcdOrderer:
    """Orders through etcd. Concurrent submissions are gathered by one writer thread into batches of up
    to MAX_BATCH transactions, each taken by one compare-and-swap and every submission in it taken or
    refused whole; a submission returns once this node's own replica has applied its batch, with a
    receipt for each transaction, or raises why it was refused."""

    def __init__(self, ledger: Ledger, cluster: Cluster, follower: Follower, budget: Budget | None = None) -> None:
        self.ledger, self.cluster, self.follower, self.budget = ledger, cluster, follower, budget
        self._queue: list[_Waiting] = []
        self._ready = threading.Condition()
        self._closed = False
        self._writer = threading.Thread(target=self._write, name="etcd-orderer", daemon=True)
        self._writer.start()

    def enqueue(self, envelopes: Sequence[tx.Envelope]) -> Future[int]:
        """Queue one submission (at most MAX_BATCH_BYTES), to be taken or refused whole, for ordering
        without validating it here; the future gives its position once etcd has committed it."""
        return self._enqueue([e.leaf() for e in envelopes])

    def _enqueue(self, leaves: list[bytes]) -> Future[int]:
        _fits(leaves)
        w = _Waiting(leaves, Future())
        with self._ready:
            if self._closed:
                raise Unavailable("this orderer is closed")
            self._queue.append(w)
            self._ready.notify()
        return w.done

    def submit(self, envelopes: Sequence[tx.Envelope], timeout: float = 60.0) -> list[Receipt | QDSNError]:
        """Order a batch, taken or refused whole, and wait for this replica to apply it; a receipt for
        each transaction, or the refusal raised. A batch the log holds already (sent again after its
        answer was lost) gets the receipts it got then, and is not proposed again."""
        try:
            return self._submit(envelopes, timeout)
        except Unavailable as e:  # perhaps written, perhaps not: the same batch sent again tells
            raise Unavailable(e.what, "send the same batch again in a few seconds: it is written once, and "
                              "answered with its receipts if it was", e.retry_after) from e  # fmt: skip

    def _submit(self, envelopes: Sequence[tx.Envelope], timeout: float) -> list[Receipt | QDSNError]:
        leaves = _fits([e.leaf() for e in envelopes])
        if (done := self.ledger.recorded(envelopes)) is None:  # known here already: no need to ask etcd
            self.follower.wait_for(self.follower.head(), timeout)  # decide on the log as etcd has it now
            done = self.ledger.recorded(envelopes)
        if done is not None:
            return list(done)
        refund = self.budget.charge(envelopes) if self.budget is not None else None  # before etcd sees it
        try:
            return self._propose(envelopes, leaves, timeout)
        except Unavailable:
            raise  # perhaps written, so the charge stands; sent again, a batch that landed is not charged
        except QDSNError:
            if refund is not None:  # refused whole: it does not count against a daily quota
                refund()
            raise

    def _propose(self, envelopes: Sequence[tx.Envelope], leaves: list[bytes],
                 timeout: float) -> list[Receipt | QDSNError]:  # fmt: skip
        try:
            self.ledger.check(envelopes)  # a refused batch is not proposed at all
        except QDSNError:
            self.follower.wait_for(self.follower.head(), timeout)
            if (done := self.ledger.recorded(envelopes)) is not None:  # it landed meanwhile (sent twice at once)
                return list(done)
            raise
        placed = self._enqueue(leaves)
        try:
            position = placed.result(timeout)
        except FutureTimeout:
            raise Unavailable(f"etcd did not order the batch within {timeout:.0f} s") from None
        self.follower.wait_for(position + len(leaves), timeout)
        out = self.follower.outcome(envelopes, position)
        if bad := next((r for r in out if isinstance(r, QDSNError)), None):
            raise bad  # a race with another submitter made it invalid: every replica refused it whole
        return out

    def _write(self) -> None:
        head = None  # where our last batch ended: most often where the next one goes, saving a read
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    return
                take, size, count = [], 0, 0
                while self._queue:
                    w = self._queue[0]
                    grown = size + sum(map(len, w.leaves)) + len(w.leaves)
                    if take and (count + len(w.leaves) > MAX_BATCH or grown > MAX_BATCH_BYTES):
                        break
                    take.append(self._queue.pop(0))
                    count, size = count + len(w.leaves), grown
            leaves = [leaf for w in take for leaf in w.leaves]
            try:
                start = append(self.cluster, leaves, head, [len(w.leaves) for w in take])
            except BaseException as e:  # handed to every waiter
                for w in take:
                    w.done.set_exception(e)
                head = None
                continue
            head = start + len(leaves)
            for w in take:
                w.done.set_result(start)
                start += len(w.leaves)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._writer.join(10)


class Compacted(Unavailable):
    """The batches this replica needs next were pruned from etcd: catch up from a peer first (the node
    does, in the background; until then it answers 503)."""


class Follower:
    """Applies the etcd sequence to one replica: reads the batches after its position, validates every
    transaction and appends the valid ones (`skip_invalid`), recording the new position with them.
    `on_applied(envelopes, results)` sees each applied batch (the node raises alerts from it)."""

    KEEP = 100_000  # positions whose refusal is remembered for submitters waiting on them

    def __init__(self, ledger: Ledger, cluster: Cluster, on_applied: Any = None) -> None:
        self.ledger, self.cluster, self.on_applied = ledger, cluster, on_applied
        self.position = int(ledger.store.get_meta(POSITION) or 0)
        self._moved = threading.Condition()
        self._refused: dict[int, QDSNError] = {}
        self._stepping = threading.Lock()

    def step(self, limit: int = 16) -> int:
        """Apply the next batches (at most `limit`); returns how many transactions were read."""
        with self._stepping:
            pos = self.position
            batches = self.cluster.scan(_key(pos), "log0", limit)
            if not batches or int(batches[0][0][4:]) > pos:
                pruned = int(self.cluster.get("pruned") or 0)
                if pruned > pos:
                    raise Compacted(f"etcd holds the sequence from {pruned}; this replica stands at {pos}",
                                    "catch up from a peer node's log first")  # fmt: skip
            envs: list[tx.Envelope] = []
            leaves: list[bytes] = []
            at: list[int] = []
            refused: dict[int, QDSNError] = {}
            sizes: list[int] = []
            for key, value in batches:
                start = int(key[4:])
                if start < pos:
                    continue  # overlaps what was read: not written by the compare-and-swap
                if start > pos:
                    log.warning("etcd sequence has a hole at [%d, %d); every node skips it", pos, start)
                pos = start
                for lines in decode_batch(value):
                    parsed, why = [], None
                    for j, line in enumerate(lines):
                        try:
                            parsed.append(tx.from_leaf(line))
                        except QDSNError as e:  # the whole submission goes, for its first unreadable leaf
                            why = type(e)(f"transaction {j} of its batch: {e.what}", e.fix)
                            break
                    if why is not None:
                        refused.update((pos + k, why) for k in range(len(lines)))
                    else:
                        envs += parsed
                        leaves += lines
                        at += range(pos, pos + len(lines))
                        sizes.append(len(lines))
                    pos += len(lines)
            if pos == self.position:
                return 0
            results = self.ledger.append(envs, skip_invalid=True, meta={POSITION: str(pos)}, leaves=leaves,
                                         whole=sizes)  # fmt: skip
            refused.update((p, r) for p, r in zip(at, results, strict=True) if isinstance(r, QDSNError))
            with self._moved:
                self.position = pos
                self._refused.update(refused)
                for p in list(itertools.islice(self._refused, max(0, len(self._refused) - self.KEEP))):
                    del self._refused[p]  # the oldest first: positions were added in order
                self._moved.notify_all()
        if self.on_applied is not None:
            self.on_applied(envs, results)
        return len(envs) + len(refused)

    def head(self) -> int:
        """Where etcd's sequence ends now."""
        return int(self.cluster.get("seq") or 0)

    def wait_for(self, position: int, timeout: float = 60.0) -> None:
        """Block until this replica has applied the sequence up to `position`."""
        give_up = time.monotonic() + timeout
        while self.position < position:
            self.step()
            with self._moved:
                if self.position < position:
                    self._moved.wait(min(0.05, max(0.0, give_up - time.monotonic())))
            if time.monotonic() > give_up:
                raise Unavailable(f"this replica applied etcd's sequence up to {self.position}, not yet {position}",
                                  "try again in a few seconds")  # fmt: skip

    def outcome(self, envelopes: Sequence[tx.Envelope], position: int) -> list[Receipt | QDSNError]:
        """Where each of a batch ordered at `position` landed on this replica, or why it was refused."""
        out: list[Receipt | QDSNError] = []
        for i, env in enumerate(envelopes):
            leaf = env.leaf()
            try:
                row = self.ledger.store.entry(txid=tx.txid(leaf))
                out.append(Receipt(row.seq, row.txid, merkle.leaf_hash(row.leaf)))
            except NotFound:
                out.append(self._refused.get(position + i) or NotFound(f"transaction {i} is not in the log"))
        return out

    def run(self, stop: threading.Event, catch_up: Any = None) -> None:
        """Follow until `stop`: apply what is there, then sleep until etcd reports a new batch (or
        half a second has passed, so a lost watch only costs time). `catch_up()` is called when the
        next batches were pruned."""
        wake = threading.Event()
        watching: tuple[int, Watcher] | None = None
        while not stop.is_set():
            try:
                try:
                    if self.step():
                        continue
                except Compacted as e:
                    if catch_up is None:
                        raise QDSNError(f"{e.what}; no peer to catch up from") from e
                    catch_up()
                    continue
                if watching is None or watching[0] != self.cluster._current:
                    if watching is not None:
                        watching[1].stop()
                    watching = (self.cluster._current, self.cluster.watcher(wake))
            except (QDSNError, Etcd3Exception, requests.RequestException) as e:
                log.warning("following etcd: %s", e)
                watching = None
            except Exception:  # the follower keeps following; the next step tries again
                log.exception("following etcd failed")
                watching = None
            wake.wait(0.5)
            wake.clear()
        if watching is not None:
            watching[1].stop()
