"""`qdsn node start` as its own process on loopback, over HTTPS with its own certificate: a member
reads the log and submits a transaction with signed requests."""

import os
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import trustme

from qdsn.api.client import NodeClient
from qdsn.errors import BadSignature
from qdsn.node import NodeHome

from ..services import free_port
from .conftest import FAST


@pytest.fixture
def served(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "node.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(tmp_path / "reg")}
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port),
           "--tls-cert", str(tmp_path / "node.pem"), "--tls-key", str(tmp_path / "node.pem")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/.well-known/did.json", verify=trusting, timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the node did not start: {proc.stdout.read().decode()}")
            time.sleep(0.1)
    yield base, maker, trusting, reg
    proc.terminate()
    proc.wait(timeout=10)


def test_signed_requests_over_https(served):
    base, maker, ca, reg = served
    c = NodeClient(base, maker.key(), maker.did, verify=ca)
    assert c.call("GET", "/ledger/entries")["size"] == 2
    env = maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"})
    (receipt,) = c.call("POST", "/ledger/transactions", {"transactions": [env.to_json()]})["receipts"]
    assert receipt["seq"] == 2
    assert c.call("GET", "/ledger/checkpoint", signed=False).startswith(reg.origin + "\n3\n")
    with pytest.raises(BadSignature):
        c.call("GET", "/ledger/entries", signed=False)
    c.close()
    untrusting = NodeClient(base, maker.key(), maker.did)
    with pytest.raises(httpx.ConnectError):  # the node's certificate is not trusted without its CA
        untrusting.call("GET", "/.well-known/did.json", signed=False)
    untrusting.close()


def test_connections_are_capped(served):
    """Idle connections past the node's cap make new requests wait for none: they are refused at once
    with 503, and served again once the others close."""
    from qdsn.api.app import MAX_CONNECTIONS

    base, _, ca, _ = served
    host, port = base.removeprefix("https://").split(":")
    idle = [ca.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
            for _ in range(MAX_CONNECTIONS + 4)]  # fmt: skip
    time.sleep(0.5)
    try:
        r = httpx.get(base + "/.well-known/did.json", verify=ca, timeout=5)
        assert r.status_code == 503, r.text
    finally:
        for k in idle:
            k.close()
    time.sleep(0.5)
    assert httpx.get(base + "/.well-known/did.json", verify=ca, timeout=5).status_code == 200
