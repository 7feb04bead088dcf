"""The outbound-fetch policy: which URLs a node fetches for someone else, and that the connection goes to
the address that was checked (a second DNS answer cannot swap it)."""

import http.server
import ipaddress
import socket
import threading
from typing import ClassVar

import pytest

from qdsn.errors import InvalidInput, Unavailable
from qdsn.net import outbound
from qdsn.net.outbound import Policy, Refused

LOOPBACK = Policy((ipaddress.ip_network("127.0.0.1/32"),))


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "240.0.0.1",
])  # fmt: skip
def test_addresses_inside_a_network_are_not_public(ip):
    assert not outbound.public(ipaddress.ip_address(ip))
    with pytest.raises(Refused, match="not a public address"):
        outbound.target(f"https://{ip if ':' not in ip else f'[{ip}]'}/x", Policy(), None)


@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:4700::6810:85e5", "8.8.8.8"])
def test_public_addresses_are(ip):
    assert outbound.public(ipaddress.ip_address(ip))
    t = outbound.target(f"https://{ip if ':' not in ip else f'[{ip}]'}:8443/sl?x=1", Policy(), None)
    assert (str(t.ip), t.port, t.path) == (ip, 8443, "/sl?x=1")


@pytest.mark.parametrize("url,said", [
    ("http://93.184.216.34/x", "plain http"), ("ftp://93.184.216.34/x", "not an https URL"),
    ("https://u:p@93.184.216.34/x", "not an https URL"), ("https://93.184.216.34/x#f", "not an https URL"),
    ("https://93.184.216.34:99999/x", "not a URL"), ("https:///x", "not an https URL"),
])  # fmt: skip
def test_what_is_not_an_https_url_is_refused(url, said):
    with pytest.raises(Refused, match=said):
        outbound.target(url, Policy(), None)


def test_the_operator_allows_its_own_networks_and_plain_http_only_there():
    assert outbound.target("http://127.0.0.1:8080/x", LOOPBACK, None).ip == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(Refused, match="not a public address"):
        outbound.target("http://127.0.0.2:8080/x", LOOPBACK, None)
    with pytest.raises(Refused, match="not a public address"):  # a name is judged by what it resolves to
        outbound.target("https://localhost/x", Policy(), None)


def test_only_the_recorded_origins_are_reached():
    ok = outbound.target("https://93.184.216.34:8443/x", Policy(), ["https://93.184.216.34:8443"])
    assert ok.port == 8443
    with pytest.raises(Refused, match="not the node the ledger records"):
        outbound.target("https://93.184.216.34/x", Policy(), ["https://93.184.216.34:8443"])
    with pytest.raises(Refused, match="not the node the ledger records"):  # none recorded: no public host
        outbound.target("https://93.184.216.34/x", Policy(), [])
    assert outbound.target("http://127.0.0.1:1/x", LOOPBACK, []).port == 1  # none recorded: what the operator allows


def test_the_policy_is_read_from_the_service_table_and_the_environment(monkeypatch):
    monkeypatch.delenv(outbound.ALLOW_ENV, raising=False)
    p = Policy.of({"outbound_allow": ["10.0.0.0/8", "::1"], "operator_ca": "/ca.pem"})
    assert p.allowed(ipaddress.ip_address("10.2.3.4")) and p.allowed(ipaddress.ip_address("::1")) and p.ca == "/ca.pem"
    assert not Policy.of({}).allow
    monkeypatch.setenv(outbound.ALLOW_ENV, "192.168.0.0/16")
    assert Policy.of({"outbound_allow": ["10.0.0.0/8"]}).allow == (ipaddress.ip_network("192.168.0.0/16"),)
    monkeypatch.setenv(outbound.ALLOW_ENV, "not-a-network")
    with pytest.raises(InvalidInput, match="outbound_allow"):
        Policy.of({})


class Seen(http.server.BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_GET(self):
        Seen.hosts.append(self.headers["Host"])
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2/")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_the_connection_goes_to_the_address_checked_whatever_a_second_lookup_says(monkeypatch):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Seen)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2"])  # a rebinding name server: allowed first, then internal

    def rebinding(host, *args, **kwargs):
        if host == "holder.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        assert outbound.get(f"http://holder.example:{port}/x", LOOPBACK, accept="*/*", max_bytes=10, seconds=5) == b"ok"
        assert Seen.hosts[-1] == f"holder.example:{port}"  # the name is the Host; 127.0.0.1 was connected to
        with pytest.raises(Unavailable, match="redirects are not followed"):
            outbound.get(f"http://127.0.0.1:{port}/away", LOOPBACK, accept="*/*", max_bytes=10, seconds=5)
    finally:
        srv.shutdown()


def test_a_pinned_client_reaches_no_other_origin():
    with outbound.client("http://127.0.0.1:9/x", LOOPBACK) as http, pytest.raises(Refused, match="not at"):
        http.get("http://127.0.0.2:9/x")
