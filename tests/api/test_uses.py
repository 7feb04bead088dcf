"""Counting an agreement's uses off the ledger, incrementally: each count reads only what was
appended since the last, and concurrent counts never count a decision twice."""

import threading

from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node import Node, NodeHome, transfer

from .conftest import FAST


def test_uses_are_counted_once_each_as_the_log_grows(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "m", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    ledger = reg.ledger()
    node, orderer = Node(maker, ledger=ledger), EmbeddedOrderer(ledger)
    orderer.submit([maker.sign("dataset.declare", {"dataset": "d", "title": "Line", "kind": "measurements"})])

    def decided(agreement, allowed=True, point="use"):
        payload = {"dataset": "d", "requester": reg.did, "action": "read", "point": point, "allowed": allowed,
                   "rule": "r", "reason": "ok", "agreement": agreement}  # fmt: skip
        return maker.sign("access.decision", payload)

    orderer.submit([decided("a"), decided("b"), decided("a", allowed=False), decided("a", point="transfer")])
    assert (transfer.uses(node, "a"), transfer.uses(node, "b")) == (1, 1)
    orderer.submit([decided("a") for _ in range(200)])
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(transfer.uses(node, "a"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [201] * 8 and transfer.uses(node, "c") == 0
    again = Node(maker, ledger=ledger)  # another view of the same replica shares the count
    assert transfer.uses(again, "a") == 201
    node.close()
    again.close()
    ledger.close()
