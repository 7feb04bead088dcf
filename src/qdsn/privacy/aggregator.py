"""The aggregators' side of a task (DAP's Leader and Helper), over the node's signed API.

Upload (reporter → leader): the leader checks the task, the reporter's eligibility and signature,
that the report id is new (kept across restarts) and that the reporter has no accepted report for
the period; opens its input share and runs `verify_init`; sends the report and its verifier share to
the helper, which does the same checks itself, combines both verifier shares into the verifier
message (the validity proof is decided here), runs `verify_next` and keeps its output share; the
leader combines them too and keeps its own. Each side also checks that the other's joint randomness
part is the one the public share claims, so both reach the same verdict from the same two messages.
A report that fails anywhere is refused by both and never counted.

Collection (collector → leader): only the task's collector, only for a batch of at least the task's
minimum, only within its privacy budget. The leader records `aggregate.batch` (count, the Merkle
root of the accepted reports' leaves, ε) on the ledger — every replica refuses it past the budget —
then asks the helper for its aggregate share; the helper checks the batch on its own replica and
that every report named is one it accepted. Each aggregator adds its noise and seals its share to
the collector, so neither the leader nor anyone between sees the other's share or the result. A report
whose verification ends while its period's batch is being chosen waits for it and is then refused, so
the reports the leader keeps for a period are exactly the batch on the ledger (and a collect cut short
by a crash runs again on the same batch).

The VDAF verification key is derived by both aggregators from an X25519 agreement of their ledger
keys and the task's configuration: it is never sent, and no reporter can know it."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

from qdsn.clock import Clock, system_clock
from qdsn.crypto import hkdf_sha256, hpke
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, QDSNError, Unavailable
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.ledger import merkle
from qdsn.privacy import budget, report
from qdsn.privacy.store import StatsStore
from qdsn.privacy.task import HELPER, LEADER, Task, vdaf_of

log = logging.getLogger(__name__)
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_batching: dict[tuple[str, str], threading.Lock] = {}


def _lock(node: Any, task: str, reporter: str) -> threading.Lock:
    """One report at a time per aggregator, task and reporter (the store's keys refuse a second one
    across processes; this keeps a node's own threads from racing to it)."""
    return _locks.setdefault((node.did, task, reporter), threading.Lock())


def _batch_lock(node: Any, task: str) -> threading.Lock:
    """A leader's choice of a batch and its uploads' last step, one at a time per task: a report accepted
    while the batch is chosen and put on the ledger would be kept beside a batch that does not name it —
    told it was accepted yet never counted, and after a crash there the kept reports would no longer be
    the batch on the ledger, so the collect could not be run again."""
    return _batching.setdefault((node.did, task), threading.Lock())


def task_of(node: Any, task_id: str, *, recent: float | None = None) -> Task:
    """The task on this node's replica, after catching up with the log when it is not there yet (with
    `recent`, a catch-up that recent will do: see `Node.catch_up`)."""
    if task_id not in node.ledger.state.tasks:
        node.catch_up(recent=recent)
    return Task.from_state(node.ledger.state, task_id)


def verify_key(node: Any, task: Task, vdaf: Any) -> bytes:
    """The task's VDAF verification key, the same at leader and helper and known to nobody else."""
    peer = task.helper if node.did == task.leader else task.leader
    peer_key = node.key_of(peer)
    if peer_key is None:
        raise NotFound(f"the task's other aggregator {peer} is not on this ledger")
    secret = hpke.agree(node.home.key(), x25519_from_ed25519(peer_key))
    return hkdf_sha256(secret, b"qdsn-dap verify key\n" + task.id.encode() + task.config_hash, vdaf.VERIFY_KEY_SIZE)


def _key(node: Any, did: str) -> bytes:
    key = node.key_of(did)
    if key is None:
        raise PermissionDenied(f"{did} is not a participant on this ledger")
    return key  # type: ignore[no-any-return]


def _admit(node: Any, store: StatsStore, task: Task, rep: dict[str, Any], clock: Clock) -> None:
    """The checks both aggregators make before opening a share (the report id is taken last)."""
    task.check_reporter(node.ledger, rep["reporter"])
    now = task.period_of(clock())
    if rep["period"] != now:
        raise InvalidInput(f"task {task.id} takes reports for its current period {now}, not {rep['period']}",
                           "make the report again for the current period")  # fmt: skip
    if rep["period"] in task.batches or store.released(task.id, rep["period"]) is not None:
        raise Conflict(f"period {rep['period']} of task {task.id} is already collected")
    report.check_signature(rep, _key(node, rep["reporter"]))
    store.see(task.id, rep["id"], rep["reporter"])
    if store.has_reported(task.id, rep["period"], rep["reporter"]) is not None:
        store.settle(task.id, rep["id"], "refused: a second report in the period")
        raise Conflict(f"{rep['reporter']} has already reported for period {rep['period']} of task {task.id}",
                       "one report per reporter and period")  # fmt: skip


def _refused(store: StatsStore, task: Task, rep: dict[str, Any], why: str) -> IntegrityError:
    store.settle(task.id, rep["id"], f"refused: {why}")
    return IntegrityError(f"report {rep['id']} refused: {why}", "the report was not counted")


def _check_parts(vdaf: Any, public: Any, peer_share: tuple[Any, Any], peer: int) -> None:
    """The other aggregator's joint randomness part must be the one the public share claims."""
    if vdaf.flp.JOINT_RAND_LEN > 0 and public[peer] != peer_share[1]:
        raise ValueError("joint randomness check failed")


def upload(
    node: Any, store: StatsStore, who: str, body: Any, peer: Any, *, clock: Clock = system_clock
) -> dict[str, Any]:
    """The leader takes a report: verified with the helper (`peer`, a client of its API) and kept, or
    refused with the reason."""
    rep = report.check_form(body)
    if rep["reporter"] != who:
        raise PermissionDenied(f"the report is {rep['reporter']}'s, but {who} signed the request")
    task = task_of(node, rep["task"])
    if task.leader != node.did:
        raise PermissionDenied(f"this node is not the leader of task {task.id}", f"upload to {task.leader_url}")
    vdaf = vdaf_of(task)
    with _lock(node, task.id, who):
        _admit(node, store, task, rep, clock)
        try:
            public, share = report.open_share(task, vdaf, rep, LEADER, node.home.key())
            state, mine = vdaf.verify_init(verify_key(node, task, vdaf), task.ctx, LEADER, None, report.nonce(rep),
                                           public, share)  # fmt: skip
        except (QDSNError, ValueError, AssertionError) as e:
            raise _refused(store, task, rep, f"its share does not open or verify: {e}") from None
        try:
            answer = peer.call("POST", "/stats/helper/verify", {
                "report": rep, "verifier_share": b64url_encode(vdaf.encode_verifier_share(mine))})  # fmt: skip
        except IntegrityError as e:
            raise _refused(store, task, rep, f"the helper refused it: {e.what}") from None
        except QDSNError as e:  # the helper could not answer: a new report may be sent
            store.settle(task.id, rep["id"], f"not verified: {e.what}")
            raise
        except httpx.TransportError as e:
            store.settle(task.id, rep["id"], "not verified: the helper did not answer")
            raise Unavailable(f"the task's helper at {task.helper_url} did not answer: {e}",
                              "send a new report in a moment") from None  # fmt: skip
        try:
            theirs = vdaf.decode_verifier_share(b64url_decode(str(answer["verifier_share"])))
            message = vdaf.verifier_shares_to_message(task.ctx, None, [mine, theirs])
            if vdaf.encode_verifier_message(message) != b64url_decode(str(answer["message"])):
                raise ValueError("the helper's verifier message is not the leader's")
            _check_parts(vdaf, public, theirs, HELPER)
            out = vdaf.verify_next(task.ctx, state, message)
        except (QDSNError, ValueError, KeyError, TypeError) as e:
            raise _refused(store, task, rep, f"verification failed: {e}") from None
        with _batch_lock(node, task.id):
            if rep["period"] in Task.from_state(node.ledger.state, task.id).batches:
                store.settle(task.id, rep["id"], "refused: its period was collected while it was verified")
                raise Conflict(f"period {rep['period']} of task {task.id} was collected while the report was "
                               "verified", "report again in the next period")  # fmt: skip
            store.accept(task.id, rep["period"], who, rep["id"], vdaf.encode_out_share(out))
    return {"task": task.id, "id": rep["id"], "period": rep["period"], "accepted": True}


def helper_verify(node: Any, store: StatsStore, who: str, body: Any, *, clock: Clock = system_clock) -> dict[str, Any]:
    """The helper's half of verifying a report the leader sent with its verifier share."""
    if not isinstance(body, dict) or not isinstance(body.get("verifier_share"), str):
        raise InvalidInput('the body is {"report": {…}, "verifier_share": "<base64url>"}')
    rep = report.check_form(body.get("report"))
    task = task_of(node, rep["task"])
    if task.helper != node.did or task.leader != who:
        raise PermissionDenied(f"only the leader of task {task.id} asks this node to verify its reports")
    vdaf = vdaf_of(task)
    with _lock(node, task.id, rep["reporter"]):
        _admit(node, store, task, rep, clock)
        try:
            public, share = report.open_share(task, vdaf, rep, HELPER, node.home.key())
            state, mine = vdaf.verify_init(verify_key(node, task, vdaf), task.ctx, HELPER, None, report.nonce(rep),
                                           public, share)  # fmt: skip
            theirs = vdaf.decode_verifier_share(b64url_decode(body["verifier_share"]))
            message = vdaf.verifier_shares_to_message(task.ctx, None, [theirs, mine])
            _check_parts(vdaf, public, theirs, LEADER)
            out = vdaf.verify_next(task.ctx, state, message)
        except (QDSNError, ValueError, AssertionError, TypeError) as e:
            raise _refused(store, task, rep, f"verification failed: {getattr(e, 'what', e)}") from None
        store.accept(task.id, rep["period"], rep["reporter"], rep["id"], vdaf.encode_out_share(out))
    return {"verifier_share": b64url_encode(vdaf.encode_verifier_share(mine)),
            "message": b64url_encode(vdaf.encode_verifier_message(message))}  # fmt: skip


def leaves(batch: list[Any]) -> list[bytes]:
    return [report.leaf(a.id, a.reporter) for a in batch]


def _share(node: Any, task: Task, vdaf: Any, outs: list[bytes], period: int, root: str, agg_id: int) -> str:
    """This aggregator's aggregate share of a batch, noised, sealed to the collector."""
    agg = vdaf.agg_init(None)
    for o in outs:
        agg = vdaf.agg_update(None, agg, vdaf.decode_agg_share(o))
    noisy = agg if task.spec.get("noise") == "none" else budget.add_noise(vdaf.field.MODULUS, agg, budget.noise(task))
    sealed = hpke.seal(x25519_from_ed25519(_key(node, task.collector)), vdaf.encode_agg_share(noisy),
                       aggregate_info(task, period, root, agg_id))  # fmt: skip
    return b64url_encode(sealed)


def aggregate_info(task: Task, period: int, root: str, agg_id: int) -> bytes:
    """The HPKE info binding an aggregate share to its task, batch and aggregator (DAP's AggregateShareAad)."""
    return b"qdsn-dap aggregate share" + bytes([2 + agg_id, 4]) + f"\n{task.id}\n{period}\n{root}".encode()


def collect(node: Any, store: StatsStore, who: str, body: Any, peer: Any) -> dict[str, Any]:
    """The leader answers the collector: a batch of at least the minimum, within the budget, recorded
    on the ledger, with both aggregators' sealed, noised aggregate shares."""
    if not isinstance(body, dict) or not isinstance(body.get("task"), str) or type(body.get("period")) is not int:
        raise InvalidInput('the body is {"task": "<id>", "period": <n>}')
    task, period = task_of(node, body["task"]), body["period"]
    if task.leader != node.did:
        raise PermissionDenied(f"this node is not the leader of task {task.id}", f"collect from {task.leader_url}")
    if who != task.collector:
        raise PermissionDenied(f"only the task's collector {task.collector} collects task {task.id}")
    with _batch_lock(node, task.id):
        batch = store.batch(task.id, period)
        done = store.released(task.id, period)
        if done is None:
            if len(batch) < task.min_batch:
                raise PermissionDenied(f"period {period} of task {task.id} has {len(batch)} accepted reports; "
                                       f"the task releases only batches of at least {task.min_batch}",
                                       "wait for more reports")  # fmt: skip
            if period not in task.batches:
                budget.check_budget(task)
                root = merkle.root_hash(leaves(batch)).hex()
                env = node.home.sign("aggregate.batch", {"task": task.id, "period": period, "count": len(batch),
                                                         "root": root, "epsilon": task.epsilon,
                                                         "collector": task.collector})  # fmt: skip
                node.submit([env])
                task = task_of(node, task.id)
            count, root, _ = task.batches[period]
            if count != len(batch) or root != merkle.root_hash(leaves(batch)).hex():
                raise IntegrityError(f"the batch on the ledger for period {period} is not the reports kept here")
            vdaf = vdaf_of(task)
            mine = store.release(task.id, period, root, count, _share(node, task, vdaf, [a.out_share for a in batch],
                                                                       period, root, LEADER))  # fmt: skip
            done = store.released(task.id, period)
    assert done is not None
    root, count, mine = done
    try:
        theirs = peer.call("POST", "/stats/helper/aggregate", {"task": task.id, "period": period,
                                                               "reports": [a.id for a in batch]})  # fmt: skip
    except httpx.TransportError as e:  # the batch is on the ledger and this share kept: asking again is safe
        raise Unavailable(
            f"the task's helper at {task.helper_url} did not answer: {e}", "collect again in a moment"
        ) from None
    return {"task": task.id, "period": period, "count": count, "root": root, "epsilon": task.epsilon,
            "leader_share": mine, "helper_share": theirs["share"]}  # fmt: skip


def helper_aggregate(node: Any, store: StatsStore, who: str, body: Any) -> dict[str, Any]:
    """The helper's aggregate share of a batch the leader recorded on the ledger: every report named
    must be one it accepted, and their root the ledger's; its noised share is drawn once and kept."""
    if not isinstance(body, dict) or not isinstance(body.get("task"), str) or type(body.get("period")) is not int \
            or not isinstance(body.get("reports"), list):  # fmt: skip
        raise InvalidInput('the body is {"task": "<id>", "period": <n>, "reports": ["<id>", …]}')
    task, period = task_of(node, body["task"]), body["period"]
    if task.helper != node.did or who != task.leader:
        raise PermissionDenied(f"only the leader of task {task.id} asks this node for its aggregate share")
    if period not in task.batches:
        node.catch_up()
        task = task_of(node, task.id)
    if period not in task.batches:
        raise NotFound(f"period {period} of task {task.id} has no aggregate.batch on the ledger",
                       "the leader records the batch before it asks")  # fmt: skip
    count, root, _ = task.batches[period]
    done = store.released(task.id, period)
    if done is None:
        mine = {a.id: a for a in store.batch(task.id, period)}
        wanted = body["reports"]
        if len(set(map(str, wanted))) != len(wanted) or any(str(i) not in mine for i in wanted):
            raise IntegrityError("the batch names reports this helper did not accept")
        batch = sorted((mine[str(i)] for i in wanted), key=lambda a: a.id)
        if len(batch) != count or merkle.root_hash(leaves(batch)).hex() != root:
            raise IntegrityError(f"the reports named are not the batch recorded on the ledger for period {period}")
        vdaf = vdaf_of(task)
        share = store.release(task.id, period, root, count, _share(node, task, vdaf, [a.out_share for a in batch],
                                                                    period, root, HELPER))  # fmt: skip
    else:
        share = done[2]
    return {"task": task.id, "period": period, "count": count, "root": root, "share": share}


def batch_leaves(node: Any, store: StatsStore, task_id: str, period: int, who: str) -> dict[str, Any]:
    """The leaves of a released batch (which reports, from whom), for its participants to check against
    the root on the ledger: its aggregators, its collector and the reporters counted in it (taking part
    in a statistic can itself be sensitive, so nobody else learns who did); nothing before the batch is
    released."""
    from qdsn.node.node import PUBLIC_RECENT

    task = task_of(node, task_id, recent=PUBLIC_RECENT)  # asked before the asker is known to take part
    if period not in task.batches:
        raise NotFound(f"period {period} of task {task_id} has not been released")
    batch = store.batch(task_id, period)
    if who not in (task.leader, task.helper, task.collector) and all(a.reporter != who for a in batch):
        raise PermissionDenied(f"who reported to period {period} of task {task_id} is shown only to its "
                               "aggregators, its collector and the reporters counted in it",
                               "sign the request as one of them")  # fmt: skip
    count, root, _ = task.batches[period]
    return {"task": task_id, "period": period, "count": count, "root": root,
            "reports": [{"id": a.id, "reporter": a.reporter} for a in batch]}  # fmt: skip


def open_store(home: Any) -> StatsStore:
    """The node's private-aggregation store: beside its ledger (SQL URL) or `stats.db` in its home."""
    url = home.ledger_location()
    return StatsStore(url if "://" in url else str(home.path / "stats.db"))
