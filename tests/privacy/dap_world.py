"""A consortium on one shared ledger, in one process, for the aggregation tests: a regulator (the
log operator, the helper and the collector), a certification body (the leader) and manufacturers
(the reporters). The leader reaches the helper through `Direct`, which calls the helper's handler
as the API would after checking the leader's signature; the tests under tests/api cross processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from qdsn.clock import format_time
from qdsn.node import Node, NodeHome
from qdsn.privacy import aggregator
from qdsn.privacy.store import StatsStore

PW = "pw"
FAST = 2**4
START = datetime(2026, 1, 1, tzinfo=UTC)


class Direct:
    """The helper's API for the leader, in process: each call is the leader's, as a signed request is."""

    def __init__(self, leader: Node, helper: Node, store: StatsStore, clock: Any) -> None:
        self.leader, self.helper, self.store, self.clock = leader, helper, store, clock

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        who = self.leader.did
        if path == "/stats/helper/verify":
            return aggregator.helper_verify(self.helper, self.store, who, payload, clock=self.clock)
        if path == "/stats/helper/aggregate":
            return aggregator.helper_aggregate(self.helper, self.store, who, payload)
        raise AssertionError(path)


class World:
    def __init__(self, tmp_path, makers: int = 3) -> None:
        self.reg_home = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", PW, scrypt_n=FAST)
        shared = str(tmp_path / "reg" / "ledger.db")
        self.cqc_home = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, ledger_url=shared, scrypt_n=FAST)
        self.maker_homes = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", PW, ledger_url=shared,
                                          scrypt_n=FAST) for i in range(makers)]  # fmt: skip
        regions = ["330100", "330200", "110000"]  # the makers' GB/T 2260 regions, as `qdsn member add` records
        for i, h in enumerate((self.cqc_home, *self.maker_homes)):
            extra = {"region": regions[(i - 1) % 3], "industry": "C38"} if i else {}
            self.reg_home.submit("identity.register", h.registration() | extra)
        self.reg = Node(self.reg_home, operator=True)
        self.cqc = Node(self.cqc_home, ledger=self.reg.ledger, operator=True)
        self.makers = [Node(h, ledger=self.reg.ledger, operator=True) for h in self.maker_homes]
        self.now = START + timedelta(minutes=5)
        self.stores = {n.did: StatsStore(str(tmp_path / f"stats-{i}.db"))
                       for i, n in enumerate([self.reg, self.cqc, *self.makers])}  # fmt: skip

    def clock(self) -> datetime:
        return self.now

    def store(self, node: Node) -> StatsStore:
        return self.stores[node.did]

    def task(self, task: str = "t1", vdaf: str = "Prio3Sum", params: dict | None = None, **over: Any) -> dict:
        spec = {"task": task, "title": "Units nonconforming, Zhejiang cable makers", "vdaf": vdaf,
                "params": {"max_measurement": 255} if params is None else params,
                "leader": self.cqc.did, "leader_url": "http://127.0.0.1:1", "helper": self.reg.did,
                "helper_url": "http://127.0.0.1:2", "collector": self.reg.did,
                "reporters": [m.did for m in self.makers], "attributes": {}, "start": format_time(START),
                "period": 3600, "min_batch": 2, "epsilon": 1.0, "budget": 2.0, **over}  # fmt: skip
        self.reg.submit([self.reg_home.sign("aggregate.task", spec)])
        return spec

    def to_helper(self) -> Direct:
        return Direct(self.cqc, self.reg, self.store(self.reg), self.clock)

    def upload(self, maker: Node, rep: dict) -> dict:
        return aggregator.upload(self.cqc, self.store(self.cqc), maker.did, rep, self.to_helper(), clock=self.clock)

    def close(self) -> None:
        for s in self.stores.values():
            s.close()
        for n in (*self.makers, self.cqc, self.reg):
            n.close()
