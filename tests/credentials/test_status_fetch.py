"""A status list token comes from a URI its issuer chose, and whatever answers there is an adversary:
a verifier takes at most a token's worth of bytes within a deadline, follows no redirect, remembers a
failure for a while, and reports an unreachable list as a failed status line — never an exception
or a 500."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.errors import Unavailable
from qdsn.node import verification
from qdsn.node.verification import TOKEN_BYTES, fetch_token, verify_online

from ..conftest import LOOPBACK
from .consortium import build


class Hostile(BaseHTTPRequestHandler):
    sent: ClassVar[dict[str, int]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self):
        Hostile.hits[self.path] = Hostile.hits.get(self.path, 0) + 1
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/token")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/error":
            self.send_error(500)
            return
        if self.path == "/token":
            self._ok(b"eyJ0eXAiOiJzdGF0dXNsaXN0K2p3dCJ9.e30.c2ln")
            return
        self.send_response(200)  # /big and /slow: no Content-Length, so only the bytes read can tell
        self.send_header("Connection", "close")
        self.end_headers()
        chunk, pause = (b"A" * 65536, 0) if self.path == "/big" else (b"A", 0.2)
        sent = 0
        try:
            for _ in range(150 * 16 if self.path == "/big" else 1000):
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                time.sleep(pause)
        except OSError:
            pass
        finally:
            Hostile.sent[self.path] = sent

    def _ok(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_a_token_is_fetched(server):
    assert fetch_token(f"{server}/token").startswith("eyJ")


def test_a_huge_answer_is_cut_off_at_a_tokens_size(server):
    with pytest.raises(Unavailable, match=f"more than the {TOKEN_BYTES:,} bytes taken"):
        fetch_token(f"{server}/big")
    time.sleep(0.5)
    assert Hostile.sent["/big"] < 32 << 20  # the server could not push its 150 MiB: the verifier hung up


def test_a_trickle_ends_at_the_deadline(server, monkeypatch):
    monkeypatch.setattr(verification, "FETCH_SECONDS", 1.0)
    t = time.monotonic()
    with pytest.raises(Unavailable, match="took more than 1 s"):
        fetch_token(f"{server}/slow")
    assert time.monotonic() - t < 3


def test_redirects_are_not_followed_and_failures_are_remembered(server):
    with pytest.raises(Unavailable, match="redirects are not followed"):
        fetch_token(f"{server}/redirect")
    assert Hostile.hits.get("/token", 0) == 0 or Hostile.hits["/redirect"] == 1
    for _ in range(3):
        with pytest.raises(Unavailable, match=r"unreachable: it answered HTTP 500.*try again later"):
            fetch_token(f"{server}/error")
    assert Hostile.hits["/error"] == 1  # asked once; the failure is remembered


def test_an_unreachable_status_list_is_a_failed_status_line(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    c = build(tmp_path)
    try:
        shown = c.present(c.issue(uri=f"http://127.0.0.1:{port}/status-lists/1"))
        by = {x.name: x for x in verify_online(c.plant, shown, aud="did:web:buyer.example", nonce="n-1")}
        assert not by["status"].ok and "unreachable" in by["status"].detail
        assert "try again later" in by["status"].detail
        client = TestClient(
            create_app(c.plant, public_url="http://testserver"), raise_server_exceptions=False, client=LOOPBACK
        )
        r = client.post("/verify", json={"presentation": shown, "aud": "did:web:buyer.example", "nonce": "n-1"})
        assert r.status_code == 200 and r.json()["ok"] is False, r.text
        (status,) = [x for x in r.json()["checks"] if x["name"] == "status"]
        assert "unreachable" in status["detail"]
    finally:
        c.close()
