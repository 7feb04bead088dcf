"""The node's ingestion status: the readings that never arrived (gaps in the devices' sequence numbers),
for the data's owner only."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import PermissionDenied
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


def test_the_owner_sees_the_gaps_and_no_one_else_does(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    homes = {n: NodeHome.init(tmp_path / n, "enterprise", n, "pw", ledger_url=shared, scrypt_n=FAST)
             for n in ("maker", "rival")}  # fmt: skip
    for h in homes.values():
        reg.submit("identity.register", h.registration())
    node = Node(homes["maker"], operator=True)
    try:
        node.vault.create("line-1", "measurements")
        node.vault.create("line-2", "measurements")
        rows = [{"characteristic": "d", "value": 1.0, "time": "2026-03-01T08:00:00Z", "device": "gw-1", "seq": n}
                for n in (1, 2, 3, 7, 8, 12)]  # fmt: skip
        node.vault.add_batch("line-1", rows)
        node.vault.add_batch("line-2", [{**r, "device": "gw-2"} for r in rows[:3]])
        http = TestClient(create_app(node), client=LOOPBACK)
        maker, rival = (
            NodeClient(str(http.base_url), homes[n].key(), homes[n].did, http=http) for n in ("maker", "rival")
        )
        status = maker.call("GET", "/status/ingest")
        assert status["missing"] == 6
        by_name = {d["dataset"]: d["devices"] for d in status["datasets"]}
        assert by_name["line-1"] == [{"device": "gw-1", "boot": None, "last": 12, "arrived": 6, "missing": 6,
                                      "gaps": [[4, 6], [9, 11]]}]  # fmt: skip
        assert by_name["line-2"][0]["missing"] == 0
        with pytest.raises(PermissionDenied):
            rival.call("GET", "/status/ingest")
    finally:
        node.close()
