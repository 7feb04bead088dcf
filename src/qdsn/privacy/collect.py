"""The collector's side of a task (the regulator): ask the leader for a period's aggregate, open both
aggregators' sealed shares, check the batch against its own replica of the ledger, unshard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdsn.crypto import hpke
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import IntegrityError, PermissionDenied
from qdsn.privacy import budget
from qdsn.privacy.aggregator import aggregate_info, task_of
from qdsn.privacy.task import HELPER, LEADER, Task, vdaf_of


@dataclass(frozen=True)
class Figure:
    """A released aggregate: the noised result, how many reports it rests on and their root."""

    task: str
    period: int
    vdaf: str
    result: int | list[int]
    count: int
    root: str
    epsilon: float
    spent: float
    budget: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect(node: Any, task_id: str, period: int, leader: Any) -> Figure:
    """A period's figure from the leader (`leader`, a client of its API), checked and unsharded."""
    task = task_of(node, task_id)
    if task.collector != node.did:
        raise PermissionDenied(f"this node is not the collector of task {task_id} ({task.collector} is)")
    got = leader.call("POST", "/stats/collect", {"task": task_id, "period": period})
    node.catch_up()
    # The leader put the batch on the log after this replica was opened; when this node operates the
    # log, its own server appended it, so read the state as committed rather than as first loaded.
    state = node.ledger.store.load_state(node.ledger.origin) if node.link is None else node.ledger.state
    task = Task.from_state(state, task_id)
    if period not in task.batches:
        raise IntegrityError(f"the leader answered, but no aggregate.batch for period {period} is on the ledger")
    count, root, _ = task.batches[period]
    if got.get("count") != count or got.get("root") != root:
        raise IntegrityError("the leader's batch is not the one it recorded on the ledger")
    vdaf = vdaf_of(task)
    shares = []
    for agg_id, name in ((LEADER, "leader_share"), (HELPER, "helper_share")):
        try:
            sealed = b64url_decode(str(got[name]))
        except (KeyError, ValueError):
            raise IntegrityError(f"the leader's answer has no {name}") from None
        plain = hpke.unseal(node.home.key(), sealed, aggregate_info(task, period, root, agg_id))
        shares.append(vdaf.decode_agg_share(plain))
    values = [budget.signed(vdaf.field.MODULUS, x) for x in vdaf.merge(None, shares)]
    result: int | list[int] = values[0] if task.vdaf in ("Prio3Count", "Prio3Sum") else values
    return Figure(task_id, period, task.vdaf, result, count, root, task.epsilon, task.spent, task.budget)
