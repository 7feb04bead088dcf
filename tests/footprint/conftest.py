"""A footprint owner's node served over HTTPS on loopback (a test CA), a buyer with an agreement for
its footprints and PACT client credentials, and a plain-HTTP twin of the same node."""

import copy
import json
import ssl
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import trustme
import uvicorn

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.node import pact as host
from qdsn.node.consumer import negotiate
from qdsn.node.provider import publish

FAST = 2**4
EXAMPLE = json.loads((Path(__file__).parent / "example-footprint.json").read_text())
EVENTS_URL = "https://buyer.example/3/events"


def footprint(
    product,
    *,
    company="urn:company:example:maker",
    country="CN",
    classification="urn:pact:cpc:46340",
    start="2025-01-01T00:00:00Z",
    end="2025-12-31T00:00:00Z",
    valid=None,
    preceding=None,
    pcf="1.25",
):
    pf = copy.deepcopy(EXAMPLE)
    pf.update(id=str(uuid.uuid4()), productIds=[product], companyIds=[company], productClassifications=[classification])
    pf["pcf"].update(referencePeriodStart=start, referencePeriodEnd=end, pcfExcludingBiogenicUptake=pcf)
    pf["pcf"].pop("geographyCountrySubdivision", None)
    pf["pcf"]["geographyCountry"] = country
    pf.pop("validityPeriodStart", None)
    pf.pop("validityPeriodEnd", None)
    if valid:
        pf["validityPeriodStart"], pf["validityPeriodEnd"] = valid
    if preceding:
        pf["precedingPfIds"] = preceding
    return pf


def offer(maker, dataset, uid, *, count=None):
    cons = [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "supply-chain"}]
    if count is not None:
        cons.append({"leftOperand": "count", "operator": "lteq", "rightOperand": count})
    return {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
            "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": f"urn:qdsn:dataset:{dataset}",
            "permission": [{"action": "read", "constraint": cons}]}  # fmt: skip


def serve(app, **tls):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", **tls))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the node did not start"
        time.sleep(0.01)
    return server, server.servers[0].sockets[0].getsockname()[1]


class World:
    """Everything a test needs: the owner's node, its URLs, the buyer's credentials."""

    def __init__(self, tmp):
        reg = NodeHome.init(tmp / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
        shared = str(tmp / "reg" / "ledger.db")
        self.homes = {n: NodeHome.init(tmp / n, "enterprise", n, "pw", ledger_url=shared, scrypt_n=FAST)
                      for n in ("maker", "buyer", "rival")}  # fmt: skip
        for h in self.homes.values():
            reg.submit("identity.register", h.registration())
        self.reg = reg
        reg.submit("identity.endpoint", {"did": self.homes["buyer"].did, "url": "https://buyer.example"})
        self.maker = self.homes["maker"]
        self.node = Node(self.maker, operator=True)
        old = footprint("urn:gtin:1000", pcf="2.5")
        self.pfs = [
            old,
            footprint("urn:gtin:1000", preceding=[old["id"]], pcf="1.9"),  # old is now Deprecated
            footprint("urn:gtin:2000", country="DE", classification="urn:pact:cpc:46210"),
            footprint(
                "urn:gtin:3000",
                company="urn:company:example:sister",
                start="2022-01-01T00:00:00Z",
                end="2022-12-31T00:00:00Z",
            ),  # valid until the end of 2025
            footprint("urn:gtin:4000", valid=("2026-01-01T00:00:00Z", "2026-06-30T00:00:00Z")),
        ] + [footprint(f"urn:gtin:9{i:03d}") for i in range(7)]
        host.add_footprints(self.node, "pcf", self.pfs)
        self.secret_pf = footprint("urn:gtin:7777")
        host.add_footprints(self.node, "pcf-private", [self.secret_pf])
        publish(self.node, "pcf", offer(self.maker, "pcf", "urn:qdsn:offer:pcf"))
        publish(self.node, "pcf", offer(self.maker, "pcf", "urn:qdsn:offer:pcf:once", count=1))
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "node.pem"))
        self.ca = ssl.create_default_context()
        ca.configure_trust(self.ca)
        self.ca_pem = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem))
        app = create_app(self.node)
        self.server, port = serve(app, ssl_certfile=str(tmp / "node.pem"), ssl_keyfile=str(tmp / "node.pem"))
        self.base = f"https://127.0.0.1:{port}"
        self.plain_server, plain_port = serve(create_app(self.node))
        self.plain = f"http://127.0.0.1:{plain_port}"
        self.http = httpx.Client(verify=self.ca, timeout=10)
        self.peers = {n: NodeClient(self.base, h.key(), h.did, verify=self.ca) for n, h in self.homes.items()}
        self.agreement = self.agree("buyer", "urn:qdsn:offer:pcf")
        self.creds = self.credentials("buyer", self.agreement)

    def agree(self, who, offer_uid):
        return negotiate(self.peers[who], self.node.policies.offer(offer_uid)[1])["uid"]

    def credentials(self, who, agreement, purpose="supply-chain", events=None):
        events = events or (EVENTS_URL if who == "buyer" else None)  # at the node the ledger records for it
        body = {"agreement": agreement, "purpose": purpose} | ({"events": events} if events else {})
        return self.peers[who].call("POST", "/pact/clients", body)

    def token(self, creds=None):
        c = creds or self.creds
        r = self.http.post(self.base + "/auth/token", data={"grant_type": "client_credentials"},
                           auth=(c["client_id"], c["client_secret"]))  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def get(self, path, token=None, **kw):
        headers = {"authorization": f"Bearer {token or self.token()}"} | kw.pop("headers", {})
        return self.http.get(self.base + path, headers=headers, **kw)

    def decisions(self):
        from qdsn.ledger import tx

        rows = self.node.ledger.store.rows_of_type("access.decision")
        return [tx.from_leaf(r.leaf).payload for r in rows]

    def close(self):
        self.server.should_exit = self.plain_server.should_exit = True
        self.http.close()
        for p in self.peers.values():
            p.close()
        self.node.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("pact"))
    yield w
    w.close()
