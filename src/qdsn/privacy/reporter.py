"""A manufacturer's node as a reporter: make and upload its report for the current period, and later
prove from the ledger that it was counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdsn.clock import Clock, system_clock
from qdsn.errors import IntegrityError, NotFound, PermissionDenied, QDSNError
from qdsn.ledger import merkle
from qdsn.privacy import report
from qdsn.privacy.aggregator import task_of
from qdsn.privacy.store import StatsStore
from qdsn.privacy.task import Task, vdaf_of


def send(node: Any, store: StatsStore, task_id: str, measurement: Any, leader: Any, *,
         encoded: list[int] | None = None, clock: Clock = system_clock) -> dict[str, Any]:  # fmt: skip
    """Shard, seal, sign and upload this node's measurement to the task's leader (`leader`, a client of
    its API); the leader's answer. Refusals are raised with the leader's reason."""
    task = task_of(node, task_id)
    task.check_reporter(node.ledger, node.did)
    keys = [node.key_of(d) for d in (task.leader, task.helper)]
    if None in keys:
        raise NotFound(f"the task's aggregators {task.leader}, {task.helper} are not both on this ledger")
    period = task.period_of(clock())
    rep = report.make(task, vdaf_of(task), measurement, node.home.key(), node.did, period, keys[0], keys[1],
                      encoded=encoded)  # type: ignore[arg-type]  # fmt: skip
    store.remember_sent(task.id, period, rep["id"], "sent")
    try:
        got: dict[str, Any] = leader.call("POST", "/stats/reports", rep)
    except QDSNError as e:
        store.remember_sent(task.id, period, rep["id"], f"refused: {e.what}")
        raise
    store.remember_sent(task.id, period, rep["id"], "accepted")
    return got


@dataclass(frozen=True)
class Inclusion:
    """A reporter's proof that its report is one of the batch a released figure rests on."""

    task: str
    period: int
    report: str
    index: int
    count: int
    root: str
    proof: list[str]


def check_leaves(node: Any, task_id: str, period: int, listed: dict[str, Any]) -> tuple[list[bytes], str]:
    """The leaves the leader lists for a released batch, checked against the root and count on this
    node's own replica of the ledger: (leaves, root)."""
    node.catch_up()
    state = node.ledger.store.load_state(node.ledger.origin) if node.link is None else node.ledger.state
    task = Task.from_state(state, task_id)
    if period not in task.batches:
        raise NotFound(f"period {period} of task {task_id} has no aggregate.batch on the ledger")
    count, root, _ = task.batches[period]
    try:
        leaves = [report.leaf(str(r["id"]), str(r["reporter"])) for r in listed["reports"]]
    except (KeyError, TypeError):
        raise IntegrityError("the leader's list of reports is not a list of {id, reporter}") from None
    if len(leaves) != count or merkle.root_hash(leaves).hex() != root:
        raise IntegrityError(f"the reports the leader lists are not the {count} the ledger's batch root commits to")
    return leaves, root


def prove(node: Any, store: StatsStore, task_id: str, period: int, leader: Any) -> Inclusion:
    """The inclusion proof of this node's report in a released batch, verified against the ledger."""
    sent = store.sent_report(task_id, period)
    if sent is None:
        raise NotFound(f"this node sent no report for period {period} of task {task_id}")
    listed = leader.call("GET", f"/stats/tasks/{task_id}/periods/{period}")
    leaves, root = check_leaves(node, task_id, period, listed)
    mine = report.leaf(sent[0], node.did)
    if mine not in leaves:
        raise PermissionDenied(f"report {sent[0]} is not in the batch of period {period}: it was not counted "
                               f"({sent[1]})")  # fmt: skip
    index = leaves.index(mine)
    proof = merkle.inclusion_proof(index, len(leaves), merkle.MemoryTree(leaves))
    merkle.verify_inclusion(merkle.leaf_hash(mine), index, len(leaves), proof, bytes.fromhex(root))
    return Inclusion(task_id, period, sent[0], index, len(leaves), root, [p.hex() for p in proof])
