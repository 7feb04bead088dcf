"""A body must arrive within its deadline: a client trickling a byte now and then to the public
`POST /verify` gets a 408 problem and its connection closed, instead of holding it open for ever."""

import socket
import threading
import time

import orjson
import pytest
import uvicorn

from qdsn.api import app as app_module
from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome

from .conftest import FAST


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "BODY_SECONDS", 1.0)
    monkeypatch.setattr(app_module, "BODY_RATE", 1 << 40)
    node = Node(NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST))
    server = uvicorn.Server(uvicorn.Config(create_app(node), host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    node.close()


def _answer(k: socket.socket) -> bytes:
    k.settimeout(5)
    got = b""
    while chunk := k.recv(4096):
        got += chunk
    return got  # read until the node closes the connection


def test_a_trickled_body_gets_408_and_the_connection_closed(served):
    k = socket.create_connection(("127.0.0.1", served))
    k.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")  # fmt: skip
    t = time.monotonic()
    try:
        for _ in range(8):  # a byte every 0.3 s: never done, never idle long
            time.sleep(0.3)
            k.sendall(b"1\r\n \r\n")
    except OSError:
        pass  # closed by the node already
    got = _answer(k)
    assert time.monotonic() - t < 5
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"application/problem+json" in head.lower(), got[:300]
    assert orjson.loads(body)["type"] == "urn:qdsn:problem:too-slow"


def test_a_body_sent_in_time_is_answered(served):
    body = orjson.dumps({"presentation": "x~"})
    k = socket.create_connection(("127.0.0.1", served))
    k.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    assert not _answer(k).startswith(b"HTTP/1.1 408")
