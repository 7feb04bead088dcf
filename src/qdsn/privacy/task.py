"""An aggregation task as the ledger holds it (`aggregate.task`): what is measured, who aggregates,
who collects, who may report, in which periods, and the privacy budget. Pure: reads ledger state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from qdsn.clock import parse_time
from qdsn.crypto import canonical_json, sha256
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.ledger.state import AggregateTask, State

if TYPE_CHECKING:
    from qdsn.ledger.ledger import Ledger

CTX = b"qdsn-dap"  # the VDAF application context, followed by the task id (DAP: "dap-18" || task_id)
LEADER, HELPER = 0, 1  # VDAF aggregator ids


@dataclass(frozen=True)
class Task:
    """A task's specification, typed; `spent` and `batches` as the ledger had them when read."""

    id: str
    title: str
    vdaf: str
    params: dict[str, int]
    leader: str
    leader_url: str
    helper: str
    helper_url: str
    collector: str
    reporters: tuple[str, ...]
    attributes: dict[str, str]
    start: datetime
    period: int
    min_batch: int
    epsilon: float
    budget: float
    spent: float
    batches: dict[int, tuple[int, str, int]]
    spec: dict[str, Any]

    @classmethod
    def from_state(cls, state: State, task_id: str) -> Task:
        """The task `task_id` on this replica, or NotFound."""
        if not isinstance(task_id, str) or not 0 < len(task_id) <= 128:
            raise InvalidInput("a task id is a string of 1 to 128 characters")
        t = state.tasks.get(task_id)
        if t is None:
            raise NotFound(f"no aggregation task {task_id!r} on the ledger",
                           "check the id with `qdsn stats show`, or catch up with the log")  # fmt: skip
        return cls.of(t)

    @classmethod
    def of(cls, t: AggregateTask) -> Task:
        s = t.spec
        return cls(t.id, s["title"], s["vdaf"], dict(s["params"]), s["leader"], s["leader_url"], s["helper"],
                   s["helper_url"], s["collector"], tuple(s["reporters"]), dict(s["attributes"]),
                   parse_time(s["start"]), s["period"], s["min_batch"], s["epsilon"], s["budget"], t.spent,
                   dict(t.batches), s)  # fmt: skip

    @property
    def ctx(self) -> bytes:
        """The VDAF context string of this task: reports of one task never verify under another."""
        return CTX + self.id.encode()

    @cached_property
    def config_hash(self) -> bytes:
        """SHA-256 of the task's canonical specification, bound into every sealed input share (DAP's
        TaskConfiguration in InputShareAad)."""
        return sha256(canonical_json(self.spec))

    def period_of(self, when: datetime) -> int:
        """The period a time falls in; InvalidInput before the task starts."""
        seconds = (when - self.start).total_seconds()
        if seconds < 0:
            raise InvalidInput(f"task {self.id} starts at {self.spec['start']}", "report once it has started")
        return int(seconds // self.period)

    def role_of(self, did: str) -> int | None:
        """LEADER, HELPER or None."""
        return {self.leader: LEADER, self.helper: HELPER}.get(did)

    def check_reporter(self, ledger: Ledger, did: str) -> None:
        """PermissionDenied unless `did` may report for this task: named in its list, or a registered
        enterprise whose registration (`qdsn member add`) records every attribute the task asks for."""
        if did in self.reporters:
            return
        who = ledger.state.identities.get(did)
        if self.attributes and who is not None and who.role == "enterprise":
            have = ledger.registration(did)
            if all(have.get(k) == v for k, v in self.attributes.items()):
                return
        asked = " and ".join(f"{k}={v}" for k, v in self.attributes.items())
        also = f", and members with {asked}" if asked else ""
        raise PermissionDenied(f"{did} is not an eligible reporter of task {self.id} (it names {len(self.reporters)} "
                               f"members{also})", "only the members the task names report to it")  # fmt: skip

    def sensitivity(self) -> int:
        """How far one reporter's measurement can move the aggregate, in L1 (adding or removing one
        report): what the noise is calibrated to."""
        p = self.params
        if self.vdaf in ("Prio3Count", "Prio3Histogram"):
            return 1
        if self.vdaf == "Prio3Sum":
            return p["max_measurement"]
        if self.vdaf == "Prio3SumVec":
            return p["length"] * p["max_measurement"]
        return p["max_weight"]  # Prio3MultihotCountVec

    def output_length(self) -> int:
        """How many numbers an aggregate holds."""
        return self.params.get("length", 1)

    def check_measurement(self, measurement: Any) -> None:
        """InvalidInput unless `measurement` has the type the task's VDAF measures. Its range is not
        checked here: the aggregators' validity proof does that, and refuses what is outside."""

        def whole(m: Any) -> bool:
            return isinstance(m, int) and not isinstance(m, bool)

        if self.vdaf == "Prio3SumVec":
            ok = isinstance(measurement, list) and all(whole(x) for x in measurement)
        elif self.vdaf == "Prio3MultihotCountVec":
            ok = isinstance(measurement, list) and all(isinstance(x, bool) for x in measurement)
        else:
            ok = whole(measurement)
        if not ok:
            shape = {"Prio3SumVec": "a list of whole numbers", "Prio3MultihotCountVec": "a list of true/false"}
            raise InvalidInput(f"task {self.id} ({self.vdaf}) measures {shape.get(self.vdaf, 'a whole number')}, "
                               f"not {measurement!r}")  # fmt: skip


def tasks(state: State) -> list[Task]:
    """Every task on this replica, by id."""
    return [Task.of(t) for _, t in sorted(state.tasks.items())]


def vdaf_of(task: Task) -> Any:
    """The Prio3 instance of a task: two aggregators, its measurement type and parameters."""
    from qdsn.privacy.prio3 import from_params

    return from_params(task.vdaf, task.params)


VDAF_NAMES = {"count": "Prio3Count", "sum": "Prio3Sum", "sumvec": "Prio3SumVec", "histogram": "Prio3Histogram",
              "multihot": "Prio3MultihotCountVec"}  # fmt: skip
FOOTPRINT_MAX = 100_000  # grams CO2e per declared unit one footprint may add to a category's total


def _chunk(length: int) -> int:
    """The chunk length the draft recommends for a measurement of `length` field elements: about its root."""
    return max(1, round(length**0.5))


def default_leader(state: State) -> str:
    """The leader when none is named: the ledger's one certification body."""
    bodies = [i.did for i in state.identities.values() if i.role == "certifier"]
    if len(bodies) != 1:
        raise InvalidInput(f"the ledger has {len(bodies)} certification bodies", "name the leader")
    return bodies[0]


def new_spec(task: str, title: str, vdaf: str, *, leader: str, leader_url: str, helper: str, helper_url: str,
             collector: str, start: str, max_measurement: int | None = None, length: int | None = None,
             max_weight: int | None = None, reporters: list[str] | None = None, region: str | None = None,
             industry: str | None = None, period: int = 30 * 86400, min_batch: int = 5, epsilon: float = 1.0,
             budget: float = 4.0) -> dict[str, Any]:  # fmt: skip
    """The `aggregate.task` payload of a new task, checked whole (by Prio3 and the transaction's schema)
    before anything is signed: `vdaf` is count, sum, sumvec, histogram or multihot."""
    from qdsn.ledger import tx
    from qdsn.privacy.prio3 import from_params

    name = VDAF_NAMES.get(vdaf.lower())
    if name is None:
        raise InvalidInput(f"the VDAF is one of {', '.join(VDAF_NAMES)}, not {vdaf!r}")
    given = {"max_measurement": max_measurement, "length": length, "max_weight": max_weight}
    wanted = {"Prio3Count": (), "Prio3Sum": ("max_measurement",), "Prio3SumVec": ("length", "max_measurement"),
              "Prio3Histogram": ("length",), "Prio3MultihotCountVec": ("length", "max_weight")}[name]  # fmt: skip
    params: dict[str, int] = {}
    for p in wanted:
        if given[p] is None:
            what = {"max_measurement": "max (the largest value)", "length": "length (of the vector)",
                    "max_weight": "max-weight (most entries that may be true)"}[p]  # fmt: skip
            raise InvalidInput(f"a {vdaf} task needs its {what}")
        params[p] = int(given[p])  # type: ignore[arg-type]
    if "length" in params:
        params["chunk_length"] = _chunk(params["length"] * (max_measurement or 1).bit_length())
    from_params(name, params)  # parameters Prio3 refuses are refused here, before anything is signed
    spec = {"task": task, "title": title, "vdaf": name, "params": params, "leader": leader,
            "leader_url": leader_url.rstrip("/"), "helper": helper, "helper_url": helper_url.rstrip("/"),
            "collector": collector, "reporters": reporters or [],
            "attributes": {k: v for k, v in (("region", region), ("industry", industry)) if v},
            "start": start, "period": period, "min_batch": min_batch, "epsilon": epsilon,
            "budget": budget}  # fmt: skip
    tx.check_payload("aggregate.task", spec)
    return spec
