"""API benchmark: requests/s through a real server on loopback (uvicorn, HTTP/1.1 keep-alive), for a
catalog read signed with RFC 9421 (verified against the ledger, nonce checked, offers filtered by
policy) beside the same read unsigned in the same run — the cost of trust as a ratio — and for
signed transaction submission (each request one `dataset.declare`, validated and committed); and
sealed deliveries of 1,000 records end to end (the use decided and committed on the ledger, each
record's inclusion proof, HPKE sealing; the consumer opening it and proving every record against its
replica) beside the owner simply decrypting the same records from its vault; and counting an
agreement's uses before a decision with 50,000 decisions on the ledger, beside a node's first count,
which reads them all.

    python benchmarks/api.py [--requests 2000] [--decisions 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.node.consumer import negotiate, receive, transfer
from qdsn.node.provider import publish
from qdsn.node.transfer import uses


def serve(node: Node) -> tuple[uvicorn.Server, str]:
    config = uvicorn.Config(create_app(node), host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def rate(n: int, f) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    for i in range(n):
        f(i)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--decisions", type=int, default=50_000, help="access decisions on the ledger when counting uses")
    args = ap.parse_args()
    n, n_decisions = args.requests, args.decisions
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        reg = NodeHome.init(root / "reg", "regulator", "SAMR", "pw", scrypt_n=2**4)
        shared = str(root / "reg" / "ledger.db")  # one machine: the members share the log's file
        maker = NodeHome.init(root / "maker", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=2**4)
        cqc = NodeHome.init(root / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=2**4)
        for h in (maker, cqc):
            reg.submit("identity.register", h.registration())
        maker.submit("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"})
        node = Node(maker, operator=True)
        offer = {
            "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:1",
            "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:line-1",
            "permission": [{"action": "compute", "assignee": cqc.did}],
        }  # fmt: skip
        publish(node, "line-1", offer)
        records = 1000
        node.vault.create("line-1", "measurements")
        for first in range(0, records, 250):
            rows = [{"characteristic": "resistance", "value": 17.5 + i / 1e4, "time": "2026-03-01T08:00:00Z"}
                    for i in range(first, first + 250)]  # fmt: skip
            batch = node.vault.add_batch("line-1", rows)
            node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
        read = dict(offer, uid="urn:qdsn:offer:line-1:read", permission=[{"action": "read", "assignee": cqc.did}])
        publish(node, "line-1", read)
        server, base = serve(node)
        client = NodeClient(base, maker.key(), maker.did)
        reader = NodeClient(base, cqc.key(), cqc.did)
        reader.call("POST", "/catalog/request", {})  # warm up
        unsigned = rate(n, lambda i: reader.call("POST", "/catalog/request", {}, signed=False))
        signed = rate(n, lambda i: reader.call("POST", "/catalog/request", {}))
        declare = [
            maker.sign("dataset.declare", {"dataset": f"d{i}", "title": "D", "kind": "measurements"}).to_json()
            for i in range(n // 4)
        ]
        submit = rate(
            len(declare), lambda i: client.call("POST", "/ledger/transactions", {"transactions": [declare[i]]})
        )
        agreement = negotiate(reader, read)["uid"]
        t = transfer(reader, agreement, "sealed-delivery", records={"first": 0, "count": records})
        endpoint = t["dspace:dataAddress"]["dspace:endpoint"]
        deliveries = max(n // 100, 5)
        sealed = records * rate(deliveries, lambda i: receive(node.ledger, cqc.key(), cqc.did,
                                                              reader.call("POST", endpoint)))  # fmt: skip
        plain = records * rate(deliveries, lambda i: node.vault.records("line-1", 0, records))
        decided = {"dataset": "line-1", "requester": cqc.did, "action": "read", "point": "use", "allowed": True,
                   "rule": "bench", "reason": "bench"}  # fmt: skip
        for k in range(0, n_decisions, 1000):
            node.order([maker.sign("access.decision", {**decided, "agreement": f"urn:bench:{k + j}"})
                        for j in range(min(1000, n_decisions - k))])  # fmt: skip
        fresh = Node(maker, ledger=node.ledger, operator=True)  # a node just started: counts every decision
        t = time.perf_counter()
        uses(fresh, agreement)
        full = time.perf_counter() - t
        fresh.order([maker.sign("access.decision", {**decided, "agreement": agreement})])
        t = time.perf_counter()
        uses(fresh, agreement)
        incremental = time.perf_counter() - t
        client.close()
        reader.close()
        server.should_exit = True
        node.close()
    table = Table(title=f"QDSN node API on loopback, {n} requests each")
    for col in ("measure", "rate", "baseline", "baseline rate", "ratio"):
        table.add_column(col, justify="right" if "rate" in col or col == "ratio" else "left")
    table.add_row("signed catalog read", f"{signed:,.0f} req/s", "unsigned catalog read", f"{unsigned:,.0f} req/s",
                  f"{signed / unsigned:.2f}")  # fmt: skip
    table.add_row("signed submission (1 tx, committed)", f"{submit:,.0f} req/s", "unsigned catalog read",
                  f"{unsigned:,.0f} req/s", f"{submit / unsigned:.2f}")  # fmt: skip
    table.add_row(f"sealed delivery of {records:,} records, opened and proved", f"{sealed:,.0f} rec/s",
                  "owner decrypting them from its vault", f"{plain:,.0f} rec/s", f"{sealed / plain:.2f}")  # fmt: skip
    table.add_row(f"counting an agreement's uses, {n_decisions:,} decisions logged", f"{incremental * 1e3:.2f} ms",
                  "counting every decision (a node's first count)", f"{full * 1e3:.0f} ms",
                  f"{incremental / full:.4f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
