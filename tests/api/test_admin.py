"""The running node's admin socket: only this user opens it, and it relays only the node's own transactions."""

import stat
import time

from fastapi.testclient import TestClient

from qdsn.api.admin import AdminClient, create_admin_app, serve
from qdsn.errors import Unavailable
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


def test_the_socket_relays_only_the_nodes_own_transactions(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    other = NodeHome.init(tmp_path / "x", "enterprise", "X", "pw", origin=reg.origin, scrypt_n=FAST)
    node = Node(reg, operator=True)
    try:
        client = TestClient(create_admin_app(node), client=LOOPBACK)
        forged = client.post(
            "/ledger/transactions",
            json={
                "transactions": [
                    other.sign("dataset.declare", {"dataset": "d", "title": "D", "kind": "measurements"}).to_json()
                ]
            },
        )
        assert forged.status_code == 403 and "only its own transactions" in forged.json()["detail"]
        assert client.post("/ledger/transactions", json={"transactions": []}).status_code == 400
        assert client.post("/ledger/transactions", json={"transactions": [{"type": "x"}]}).status_code == 400
        env = reg.sign("identity.register", other.registration())
        first = client.post("/ledger/transactions", json={"transactions": [env.to_json()]}).json()
        assert first["receipts"][0]["seq"] == 1 and node.ledger.size == 2
        again = client.post("/ledger/transactions", json={"transactions": [env.to_json()]}).json()
        assert again["receipts"] == first["receipts"] and node.ledger.size == 2  # sent twice, written once
    finally:
        node.close()


def test_the_socket_is_the_users_alone_and_answers_a_command(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    node = Node(reg, operator=True)
    path = tmp_path / "node.sock"
    path.write_text("left by a killed node")
    thread, server = serve(node, path)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
        command = AdminClient(str(path))
        for _ in range(100):  # until the server thread listens
            try:
                assert command.catch_up() == 1
                break
            except Unavailable:
                time.sleep(0.05)
        other = NodeHome.init(tmp_path / "x", "enterprise", "X", "pw", origin=reg.origin, scrypt_n=FAST)
        (receipt,) = command.submit([reg.sign("identity.register", other.registration())])
        assert receipt["seq"] == 1
        command.close()
    finally:
        server.should_exit = True
        thread.join(5)
        node.close()
