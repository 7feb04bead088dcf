"""The public verify page follows a certificate's link only to a member node the ledger records (or, where
it records none, an address the operator allows), never inside the node's network; it never shows what
a host answered, and says one thing whatever went wrong, so that it reads nothing and maps no port."""

import html
import http.server
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome

from ..api.conftest import FAST
from .test_verify_qr_page import error_of, send

PATH = "/console/enterprise/presentations/" + "A" * 22


class Panel(http.server.BaseHTTPRequestHandler):
    body = b"INTERNAL-ADMIN-PANEL: db_password=hunter2; build 4.2.1; only reachable inside the plant"
    hits = 0

    def do_GET(self):
        Panel.hits += 1
        self.send_response(200)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def serve(host: str, handler=Panel):
    srv = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def closed_port(host: str) -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def said(r, port) -> str:
    """The page's error with the port of the link given taken out."""
    return html.unescape(error_of(r)).replace(f":{port}", ":PORT")


@pytest.fixture
def world(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    node = Node(reg, operator=True)
    yield node, reg, TestClient(create_app(node))
    node.close()


def test_an_internal_service_is_neither_read_nor_told_from_a_closed_port(world):
    _, _, page = world
    srv, port = serve("127.0.0.2")  # inside the node's network; the tests allow 127.0.0.1 alone
    try:
        Panel.hits = 0
        shut = closed_port("127.0.0.2")
        opened = send(page, None, presentation=f"http://127.0.0.2:{port}{PATH}")
        closed = send(page, None, presentation=f"http://127.0.0.2:{shut}{PATH}")
        assert "hunter2" not in html.unescape(opened.text) and Panel.hits == 0
        assert opened.status_code == closed.status_code == 503
        assert "could not be fetched" in said(opened, port) and "Connection refused" not in html.unescape(closed.text)
        assert said(opened, port) == said(closed, shut)
    finally:
        srv.shutdown()


def test_what_an_allowed_host_answers_is_never_shown(world):
    _, _, page = world
    srv, port = serve("127.0.0.1")  # an address the operator allows, answering with something else
    try:
        r = send(page, None, presentation=f"http://127.0.0.1:{port}{PATH}")
        assert r.status_code == 503 and "hunter2" not in html.unescape(r.text), error_of(r)
        assert "could not be fetched" in error_of(r)
        shut = closed_port("127.0.0.1")
        closed = send(page, None, presentation=f"http://127.0.0.1:{shut}{PATH}")
        assert said(closed, shut) == said(r, port)
    finally:
        srv.shutdown()


def test_once_the_ledger_records_nodes_only_those_are_asked(world):
    node, reg, page = world
    srv, port = serve("127.0.0.1")
    try:
        node.submit([reg.sign("identity.endpoint", {"did": reg.did, "url": "https://reg.example"})])
        Panel.hits = 0
        r = send(page, None, presentation=f"http://127.0.0.1:{port}{PATH}")
        assert r.status_code == 503 and Panel.hits == 0, error_of(r)
    finally:
        srv.shutdown()


def test_a_link_to_a_member_node_the_ledger_records_is_followed(world):
    from qdsn.node import verification
    from qdsn.web import qr

    node, reg, page = world
    srv, port = serve("127.0.0.1")
    try:
        node.submit([reg.sign("identity.endpoint", {"did": reg.did, "url": f"https://127.0.0.1:{port}"})])
        assert verification.member_origins(node) == [f"https://127.0.0.1:{port}"]
        Panel.hits = 0
        got = qr.fetch_published(f"http://127.0.0.1:{port}{PATH}", policy=verification.policy_of(node),
                                 origins=verification.member_origins(node))  # fmt: skip
        assert got == Panel.body.decode() and Panel.hits == 1
        r = send(page, None, presentation=f"http://127.0.0.1:{port}{PATH}")  # followed; what it gave is not shown
        assert Panel.hits == 2 and "hunter2" not in html.unescape(r.text)
    finally:
        srv.shutdown()
