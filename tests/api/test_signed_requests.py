"""Signed requests between nodes, attacked as another organisation would on real nodes on loopback: a
request signed for one node replayed at another, a captured delivery replayed after the provider
restarts, large chunked bodies sent before any check, and keyids nobody knows sent to a follower."""

import os
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.api.signatures import sign
from qdsn.crypto import SigningKey
from qdsn.errors import InvalidInput
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.consumer import negotiate, transfer
from qdsn.node.provider import publish

from ..conftest import LOOPBACK
from ..services import free_port
from .conftest import FAST, answering


def serve(home, port, *args, **env):
    """`qdsn node start` for `home` as its own process on `port`; returns it once it answers."""
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(home.path)} | env
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port), "--monitor", "0.3", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return answering(proc, home.name, port)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=15)


def signed_get(home, url):
    return url, sign("GET", url, [], b"", home.key(), home.did)


# -- 1. a signature is bound to the node it was sent to --------------------------------------------


def test_a_request_signed_for_one_node_is_refused_at_another(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", origin=reg.origin, scrypt_n=FAST)
    for h in (maker, cqc):
        reg.submit("identity.register", h.registration())
    a, b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"
    procs = [serve(reg, a)]
    try:
        procs.append(serve(maker, b, "--operator", url_a))
        path = "/ledger/entries?start=0&end=0"
        url, headers = signed_get(cqc, url_a + path)
        assert httpx.get(url_b + path, headers=headers).status_code == 401  # sent as it is: B's own Host
        replayed = [(k, v) for k, v in headers] + [("Host", f"127.0.0.1:{a}")]
        r = httpx.get(url_b + path, headers=replayed)  # the attacker makes it look addressed to A
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:qdsn:problem:bad-signature"
        assert f"127.0.0.1:{a}" in r.json()["detail"] and f"127.0.0.1:{b}" in r.json()["detail"]
        assert httpx.get(url, headers=headers).status_code == 200  # at A, the node it was signed for
        _, for_b = signed_get(cqc, url_b + path)
        assert httpx.get(url_b + path, headers=for_b).status_code == 200  # and B takes one signed for B
    finally:
        for p in procs:
            stop(p)


def test_the_public_url_names_the_node_behind_its_address(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    node = Node(reg)
    node.public_url = "https://reg.example:8443"
    http = TestClient(create_app(node), base_url="https://reg.example:8443", client=LOOPBACK)
    ours = NodeClient("https://reg.example:8443", reg.key(), reg.did, http=http)
    assert ours.call("GET", "/ledger/entries?start=0&end=0")["size"] == 1
    # a request signed for another node
    other = TestClient(create_app(node), base_url="https://maker.example", client=LOOPBACK)
    r = NodeClient("https://maker.example", reg.key(), reg.did, http=other).request("GET", "/ledger/entries")
    assert r.status_code == 401 and "maker.example" in r.json()["detail"] and "reg.example:8443" in r.json()["detail"]
    headers = sign("GET", "https://maker.example/ledger/entries", [], b"", reg.key(), reg.did)
    r = http.get("/ledger/entries", headers=headers)  # the right Host, a signature over another node's URI
    assert r.status_code == 401 and r.json()["type"] == "urn:qdsn:problem:bad-signature"
    spoofed = http.get("/.well-known/jwt-vc-issuer", headers={"Host": "evil.example"})
    assert spoofed.json()["issuer"] == "https://reg.example:8443"  # its own URL, not the client's Host
    with pytest.raises(InvalidInput, match="not a node's public URL"):
        create_app(node, public_url="https://reg.example/api")
    node.close()


def test_a_node_serves_under_the_public_url_in_its_configuration(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    port = free_port()
    with (reg.path / "node.toml").open("a") as f:
        f.write(f'\n[service]\npublic_url = "http://reg.example:{port}"\n')
    proc = serve(reg, port)
    try:
        local = f"http://127.0.0.1:{port}/ledger/entries"
        r = httpx.get(local, headers=sign("GET", local, [], b"", reg.key(), reg.did))
        assert r.status_code == 401 and f"this node is http://reg.example:{port}" in r.json()["detail"]
        public = f"http://reg.example:{port}/ledger/entries"
        headers = sign("GET", public, [], b"", reg.key(), reg.did) + [("Host", f"reg.example:{port}")]
        assert httpx.get(local, headers=headers).status_code == 200  # reached through any address
        headers = sign("GET", public, [], b"", reg.key(), reg.did) + [("Host", f"reg.example:{port}")]
        with ThreadPoolExecutor(8) as pool:  # one request sent eight times at once: it is used once
            codes = sorted(pool.map(lambda _: httpx.get(local, headers=headers).status_code, range(8)))
        assert codes == [200] + [401] * 7
    finally:
        stop(proc)
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(reg.path)}
    bad = subprocess.run([sys.executable, "-m", "qdsn", "node", "start", "--public-url", "ftp://reg"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode != 0 and "--public-url" in bad.stdout + bad.stderr


# -- 2. a signed request is used once, across restarts --------------------------------------------


def test_a_captured_delivery_replayed_after_a_restart_is_refused_and_not_billed(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=FAST)
    for h in (maker, cqc):
        reg.submit("identity.register", h.registration())
    node = Node(maker, operator=True)
    node.submit([maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"})])
    node.vault.create("line-1", "measurements")
    rows = [{"characteristic": "resistance", "value": 17 + i / 1000, "time": "2026-03-01T08:00:00Z"} for i in range(20)]
    batch = node.vault.add_batch("line-1", rows)
    node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    publish(node, "line-1", {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:read",
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:line-1",
        "permission": [{"action": "read", "assignee": cqc.did, "duty": [{"action": "compensate", "refinement": [
            {"leftOperand": "payAmount", "operator": "eq", "rightOperand": 50, "unit": "CNY"}]}]}],
    })  # fmt: skip
    node.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(maker, port, QDSN_OPERATOR="1")
    try:
        c = NodeClient(base, cqc.key(), cqc.did)
        (ds,) = c.call("POST", "/catalog/request", {})["dcat:dataset"]
        agreement = negotiate(c, ds["odrl:hasPolicy"][0])
        t = transfer(c, agreement["uid"], "sealed-delivery", records={"first": 0, "count": 20})
        url = base + t["dspace:dataAddress"]["dspace:endpoint"]
        captured = sign("POST", url, [], b"", cqc.key(), cqc.did)
        assert httpx.post(url, headers=captured).status_code == 200
        assert httpx.post(url, headers=captured).status_code == 401  # replayed at once
        billed = c.call("GET", f"/usage?agreement={agreement['uid']}")
        stop(proc)
        proc = serve(maker, port, QDSN_OPERATOR="1")
        r = httpx.post(url, headers=captured)  # replayed after the provider restarted
        assert r.status_code == 401, r.text[:300]
        assert "replays" in r.json()["detail"]
        assert c.call("GET", f"/usage?agreement={agreement['uid']}") == billed
        assert billed["meters"][0]["uses"] == 1 and billed["meters"][0]["records"] == 20
        assert billed["invoice"]["totals"] == {"CNY": 50.0}  # charged once
    finally:
        stop(proc)
    ledger = maker.ledger()
    uses = [e for e in map(tx.from_leaf, ledger.store.leaves(0, ledger.size))
            if e.type == "access.decision" and e.payload["point"] == "use"]  # fmt: skip
    ledger.close()
    assert len(uses) == 1


# -- 3. bodies are bounded while they stream, and unsigned requests refused before them -----------


def _memory(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024


def _chunked(port, path, *, total, extra=b""):
    """POST `total` bytes of JSON-ish chunks to `path` until the node answers; returns (status, bytes sent)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port + extra
              + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    piece = b"[" + b"1," * (1 << 19)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent, pending, answer, ended = 0, b"", b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s] if pending or not ended else [], [], 5)
            if readable:
                answer = s.recv(65536)
                break
            if writable:
                if not pending:
                    pending, ended = (b"0\r\n\r\n", True) if sent >= total else (chunk, False)
                n = s.send(pending)
                pending, sent = pending[n:], sent + n
    except (BrokenPipeError, ConnectionResetError):
        answer = answer or s.recv(65536)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 "), f"no answer after {sent} bytes: {answer!r}"
    return int(answer.split()[1]), sent


def test_large_chunked_bodies_are_refused_while_they_stream(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    port = free_port()
    proc = serve(reg, port)
    try:
        base = f"http://127.0.0.1:{port}"
        for path in ("/negotiations/request", "/verify"):  # warm up both routes
            httpx.post(base + path, json={"presentation": "x"})
        _, before = _memory(proc.pid)
        total = 96 << 20
        status, sent = _chunked(port, "/negotiations/request", total=total)
        assert sent < 16 << 20 and status == 401, (status, sent)  # unsigned: refused before its body is read
        status, sent = _chunked(port, "/verify", total=total)  # public, but never more than the limit
        assert sent < 16 << 20 and status == 413, (status, sent)
        forged = b'Signature-Input: qdsn=("@method" "@target-uri" "content-digest");created=1;keyid="did:x"\r\n'
        status, sent = _chunked(port, "/ledger/transactions", total=total, extra=forged)
        assert sent < 16 << 20 and status == 401, (status, sent)
        key = SigningKey.generate()
        for signer, did, expected in (
            (key, did_key_from_public_key(key.verify_key.raw), 403),
            (reg.key(), reg.did, 413),
        ):
            lines = sign("POST", base + "/ledger/transactions", [], b"{}", signer, did)
            extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in lines)
            status, sent = _chunked(port, "/ledger/transactions", total=total, extra=extra)
            assert sent < 16 << 20 and status == expected, (status, sent)  # a stranger; a participant's, too large
        _, after = _memory(proc.pid)
        assert after - before < 24 << 20, f"the node grew by {(after - before) >> 20} MiB"
        r = httpx.post(base + "/verify", content=b"x" * (2 << 20))
        assert r.status_code == 413 and r.json()["type"] == "urn:qdsn:problem:too-large"
        assert httpx.get(base + "/.well-known/did.json").status_code == 200  # and it still serves
    finally:
        stop(proc)


# -- 4. strangers cannot make a follower ask the operator at will ---------------------------------


class Counting:
    """An ASGI app that counts the requests its node answers."""

    def __init__(self, app):
        self.app, self.calls = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.calls.append(scope["path"])
        await self.app(scope, receive, send)


def test_unknown_keyids_cost_the_operator_a_bounded_number_of_calls(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    member = NodeHome.init(tmp_path / "member", "enterprise", "Member", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", member.registration())
    operator = Node(reg)
    counted = Counting(create_app(operator))
    server = uvicorn.Server(uvicorn.Config(counted, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    op_url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    follower = Node(member, link=NodeClient(op_url, member.key(), member.did))
    try:
        http = TestClient(create_app(follower), client=LOOPBACK)
        answers = []
        for _ in range(50):
            key = SigningKey.generate()
            did = did_key_from_public_key(key.verify_key.raw)
            answers.append(http.get("/ledger/entries", headers=sign("GET", "http://testserver/ledger/entries",
                                                                    [], b"", key, did)))  # fmt: skip
        assert {r.status_code for r in answers} == {403, 429}
        limited = next(r for r in answers if r.status_code == 429)
        assert limited.json()["type"] == "urn:qdsn:problem:rate-limited" and int(limited.headers["retry-after"]) >= 1
        assert len(counted.calls) <= 10, f"{len(counted.calls)} calls to the operator for 50 strangers"
        newcomer = NodeHome.init(tmp_path / "new", "enterprise", "New", "pw", origin=reg.origin, scrypt_n=FAST)
        operator.order([reg.sign("identity.register", newcomer.registration())])
        time.sleep(2.1)  # a participant admitted since is found once the limit allows a lookup
        r = http.get("/ledger/entries", headers=sign("GET", "http://testserver/ledger/entries", [], b"",
                                                     newcomer.key(), newcomer.did))  # fmt: skip
        assert r.status_code == 200, r.text
        counted.calls.clear()
        key = SigningKey.generate()
        did = did_key_from_public_key(key.verify_key.raw)
        good = sign("GET", "http://testserver/ledger/entries", [], b"", key, did)
        malformed = [
            [(k, v.replace(":", ":AAAA", 1) if k == "Signature" else v) for k, v in good],  # not 64 bytes
            [(k, v.replace('"content-digest"', "") if k == "Signature-Input" else v) for k, v in good],
            [(k, v.replace("created=", "created=1") if k == "Signature-Input" else v) for k, v in good],
            [(k, v.replace('alg="ed25519"', 'alg="rsa-pss-sha512"') if k == "Signature-Input" else v) for k, v in good],
            [(k, v.replace("nonce=", 'nonce="x",x=') if k == "Signature-Input" else v) for k, v in good],
        ]
        for headers in malformed * 4:
            r = http.get("/ledger/entries", headers=headers)
            assert r.status_code == 401, r.text
        assert counted.calls == []  # refused on their form: no lookup at all
    finally:
        follower.close()
        server.should_exit = True
        operator.close()
