"""Large bodies never sit whole in a node's memory: a sealed backup streams into a file in the keeper's
folder while its digest is computed, and is kept only once that digest is the signed one; at most
LARGE_AT_ONCE large bodies arrive at once and LARGE_PER_SIGNER from one member (503 with Retry-After
beyond); two uploads of one owner never leave a mixture. Measured on a real node process on loopback."""

import base64
import os
import subprocess
import sys
import threading
import time

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from qdsn.api import bodies
from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.api.signatures import sign
from qdsn.data import backup
from qdsn.node import Node, NodeHome
from qdsn.node.keeper import Keeper

from .conftest import FAST

MiB = 1 << 20
SERVER = """
import sys, uvicorn
from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.node.keeper import Keeper
node = Node(NodeHome.open(sys.argv[1], "pw", scrypt_n=16))
uvicorn.run(create_app(node), host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""


def sealed_like(owner: str, size: int) -> bytes:
    """A body of `size` bytes whose clear header is a sealed backup's for `owner` (what a keeper checks)."""
    prefix = base64.b64encode(b"7" * 7).decode()
    header = {"owner": owner, "kid": "k1", "created": "2026-03-01T08:00:00Z", "prefix": prefix}
    head = backup.MAGIC + orjson.dumps(header) + b"\n"
    return head + os.urandom(64) * ((size - len(head)) // 64)


def peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def keeper(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    members = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", "pw", origin=reg.origin, scrypt_n=FAST)
               for i in range(3)]  # fmt: skip
    for m in members:
        reg.submit("identity.register", m.registration())
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "reg"), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/.well-known/did.json", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the keeper did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)
    yield proc, url, reg, members
    proc.kill()
    proc.wait()


def put(url, member, body):
    target = f"{url}/backups/{member.did}"
    headers = sign("PUT", target, [("content-type", "application/octet-stream")], body, member.key(), member.did)
    return httpx.put(target, content=body, headers=dict(headers), timeout=120)


def test_concurrent_large_uploads_stay_out_of_memory_and_are_bounded(keeper):
    proc, url, reg, members = keeper
    size = 96 * MiB
    payloads = {m.did: sealed_like(m.did, size) for m in members[:2]}
    httpx.get(url + "/stats/tasks")  # the node's routes warmed up before the baseline
    before = peak_kib(proc.pid)
    answers, start = {}, threading.Barrier(2)

    def upload(m):
        start.wait()
        answers[m.did] = put(url, m, payloads[m.did])

    threads = [threading.Thread(target=upload, args=(m,)) for m in members[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grew = (peak_kib(proc.pid) - before) // 1024
    print(f"keeper peak RSS: {before // 1024} MiB before, grew {grew} MiB receiving 2 x {size // MiB} MiB at once")
    assert [a.status_code for a in answers.values()] == [201, 201], [a.text for a in answers.values()]
    for m in members[:2]:
        assert Keeper(reg.path / "kept-backups").fetch(m.did) == payloads[m.did]
    # two bodies of 96 MiB at once: held whole, the node's peak would grow by 192 MiB or more
    assert grew < 48, f"the keeper's peak RSS grew by {grew} MiB receiving 2 x {size // MiB} MiB"


def test_large_bodies_at_once_and_per_member_are_bounded(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    members = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", "pw", origin=reg.origin, scrypt_n=FAST)
               for i in range(3)]  # fmt: skip
    for m in members:
        reg.submit("identity.register", m.registration())
    node = Node(reg)
    app = create_app(node)
    gate = app.state.large_bodies
    http = TestClient(app)
    try:
        body = sealed_like(members[0].did, 2 * MiB)
        gate.enter(members[0].did)  # an upload of the member's under way
        r = http.put(
            f"/backups/{members[0].did}",
            content=body,
            headers=dict(
                sign("PUT", f"{http.base_url}/backups/{members[0].did}", [], body, members[0].key(), members[0].did)
            ),
        )
        assert r.status_code == 503 and r.headers["retry-after"] == str(bodies.RETRY_AFTER), r.text
        assert "already sending" in r.json()["detail"]
        gate.enter(members[1].did)  # and another member's: the node's LARGE_AT_ONCE
        body = sealed_like(members[2].did, 2 * MiB)
        r = http.put(
            f"/backups/{members[2].did}",
            content=body,
            headers=dict(
                sign("PUT", f"{http.base_url}/backups/{members[2].did}", [], body, members[2].key(), members[2].did)
            ),
        )
        assert r.status_code == 503 and "receiving 2 large requests" in r.json()["detail"]
        gate.leave(members[0].did)
        gate.leave(members[1].did)
        r = http.put(
            f"/backups/{members[2].did}",
            content=body,
            headers=dict(
                sign("PUT", f"{http.base_url}/backups/{members[2].did}", [], body, members[2].key(), members[2].did)
            ),
        )
        assert r.status_code == 201 and node.keeper.fetch(members[2].did) == body
        owner = NodeClient(str(http.base_url), members[2].key(), members[2].did, http=http)
        assert owner.call("GET", f"/backups/{members[2].did}") == body  # sent back as it was kept
        assert gate.in_flight() == 0  # released when answered
        # a body that is not the one signed is refused, and nothing of it is kept
        other = sealed_like(members[2].did, 2 * MiB)
        headers = sign("PUT", f"{http.base_url}/backups/{members[2].did}", [], body, members[2].key(), members[2].did)
        r = http.put(f"/backups/{members[2].did}", content=other, headers=dict(headers))
        assert r.status_code == 401 and "Content-Digest is not the body's" in r.json()["detail"]
        assert node.keeper.fetch(members[2].did) == body
        assert [p.name for p in (reg.path / "kept-backups").iterdir() if p.name.endswith(".partial")] == []
    finally:
        node.close()


def test_one_owners_uploads_never_leave_a_mixture(tmp_path):
    keeper = Keeper(tmp_path / "kept")
    owner = "did:key:z6MkOwner"
    versions = [sealed_like(owner, 4 * MiB) for _ in range(6)]
    failed = []

    def keep(v):
        try:
            keeper.keep(owner, v)
        except Exception as e:  # one shared file for all: moved away under another upload's feet
            failed.append(e)

    threads = [threading.Thread(target=keep, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    assert keeper.fetch(owner) in versions  # one whole upload, never pieces of two
    assert [p.name for p in (tmp_path / "kept").iterdir()] == [keeper.path_of(owner).name]


def test_a_job_request_waits_its_turn_among_large_bodies(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    lab = NodeHome.init(tmp_path / "lab", "certifier", "Lab", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", lab.registration())
    node = Node(reg)
    app = create_app(node)
    http = TestClient(app)
    try:
        body = orjson.dumps({"agreementId": "x", "archive": "", "datasets": [], "nonce": "n"})
        app.state.large_bodies.enter(lab.did)  # the lab's last large request is still arriving
        r = http.post("/jobs", content=body, headers=dict(sign("POST", f"{http.base_url}/jobs",
                      [("content-type", "application/json")], body, lab.key(), lab.did)))  # fmt: skip
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        app.state.large_bodies.leave(lab.did)
        r = http.post("/jobs", content=body, headers=dict(sign("POST", f"{http.base_url}/jobs",
                      [("content-type", "application/json")], body, lab.key(), lab.did)))  # fmt: skip
        assert r.status_code not in (503, 500) and app.state.large_bodies.in_flight() == 0, r.text
    finally:
        node.close()


def test_a_crashs_leftover_upload_is_swept_and_a_live_one_kept(tmp_path):
    keeper = Keeper(tmp_path / "kept")
    f, live = keeper.receiving()
    f.close()
    old = tmp_path / "kept" / ".upload-crashed.partial"
    old.write_bytes(b"half a backup")
    os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    g, part = keeper.receiving()
    g.close()
    assert not old.exists() and live.exists() and part.exists()
