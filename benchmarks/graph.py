"""Regional quality graph benchmark: a synthetic region of 20,000 enterprises, 100,000 products, 60,000
certificates and 60,000 supply relations, written as a replica's entries into SQLite, built by
`RegionGraph.update` (read, parse, fold) — target < 2 s — and then recall-impact queries from random
suppliers — target p50 ≤ 5 ms — beside networkx answering the same queries on the same graph in the same
run.

The supply network has five tiers (raw materials 8,000 … final assembly 700); each relation goes from one
tier to the next, and 0.5 % of them are returned the other way (a customer that also supplies its supplier),
so supply has cycles. The entries are written straight into the `entries` table of a real replica file:
the graph reads only those, and what it folds a replica has already validated (signing 240,000 entries
would time the ledger, which `benchmarks/ledger.py` does).

    python benchmarks/graph.py [--queries 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import networkx as nx
import numpy as np
import rustworkx as rx
from rich.console import Console
from rich.table import Table

from qdsn.crypto import canonical_json, sha256
from qdsn.graph.region import RegionGraph
from qdsn.ledger.store import Store, entries, insert_many

TIERS = (8000, 6000, 3500, 1800, 700)
PRODUCTS_EACH = 5
CERTIFICATES = 60_000
RELATIONS = 60_000
PROVINCES = ("330", "320", "310", "340", "440", "370", "110", "510")
INDUSTRIES = ("C3831", "C3612", "C2710", "C3311", "C3979", "C2927", "C3435", "C1713")


def did(i: int) -> str:
    return f"did:web:firm{i}.example"


def region_entries(seed: int) -> list[tuple[str, str, dict]]:
    """(type, submitter, payload) of the synthetic region, in log order."""
    rng = np.random.default_rng(seed)
    regulator, certifier = "did:web:samr.example", "did:web:cqc.example"
    key = "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    out: list[tuple[str, str, dict]] = [
        ("identity.register", regulator, {"did": regulator, "role": "regulator", "name": "市场监管局", "key": key}),
        ("identity.register", regulator, {"did": certifier, "role": "certifier", "name": "认证中心", "key": key}),
    ]
    n = sum(TIERS)
    for i in range(n):
        code = f"{PROVINCES[i % len(PROVINCES)]}{1 + i % 5:01d}0{1 + i % 9:01d}"
        code = code[:2] + "0" + code[3:] if code[:2] in ("11", "31") else code
        out.append(("identity.register", regulator, {"did": did(i), "role": "enterprise", "name": f"企业{i}",
                                                     "key": key, "region": code[:6],
                                                     "industry": INDUSTRIES[i % len(INDUSTRIES)]}))  # fmt: skip
    starts = np.cumsum((0, *TIERS))
    weights = np.array(TIERS[:-1], dtype=float) / sum(TIERS[:-1])
    pairs: set[tuple[int, int]] = set()
    named: set[tuple[int, int]] = set()
    while len(pairs) < RELATIONS:
        t = int(rng.choice(len(weights), p=weights))
        s = int(rng.integers(starts[t], starts[t + 1]))
        c = int(rng.integers(starts[t + 1], starts[t + 2]))
        if rng.random() < 0.005:
            s, c = c, s  # a customer that supplies its supplier: a cycle
        if (s, c) in pairs:
            continue
        pairs.add((s, c))
        p = int(rng.integers(PRODUCTS_EACH))
        named.add((s, p))
        out.append(("supply.relation", did(s), {"supplier": did(s), "customer": did(c), "product": f"P{s}-{p}"}))
    for i in range(CERTIFICATES):
        holder = int(rng.integers(n))
        cert = {
            "credential": f"CQC-{i:06d}",
            "vct": "urn:qdsn:vct:quality",
            "subject": did(holder),
            "hash": "ab" * 32,
            "status_list": "https://cqc.example/status/1",
            "index": i,
        }
        out.append(("credential.issue", certifier, cert))
    for i in rng.choice(CERTIFICATES, CERTIFICATES // 20, replace=False):
        out.append(("credential.status", certifier, {"credential": f"CQC-{int(i):06d}", "status": "suspended",
                                                     "reason": "continuous certification"}))  # fmt: skip
    for s in range(n):  # every product inspected or named on a relation: 100,000 products in all
        for p in range(PRODUCTS_EACH):
            if (s, p) not in named:
                result = {
                    "enterprise": did(s),
                    "product": f"P{s}-{p}",
                    "standard": "GB/T 5023",
                    "passed": bool(rng.random() > 0.13),
                    "date": "2026-11-02",
                }
                out.append(("inspection.result", regulator, result))
    return out


def write_replica(path: str, rows: list[tuple[str, str, dict]]) -> Store:
    """The entries of a replica file, as `ledger.store` lays them out."""
    store = Store(path)
    records = []
    for seq, (type_, submitter, payload) in enumerate(rows):
        nonce = os.urandom(16)
        leaf = canonical_json({"created": "2026-12-01T00:00:00Z", "nonce": nonce.hex(), "payload": payload,
                               "signature": "A" * 86, "submitter": submitter, "type": type_})  # fmt: skip
        records.append((seq, sha256(leaf), type_, submitter, nonce, leaf))
    with store.engine.begin() as c:
        insert_many(c, entries, records)
    store.size = len(records)
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = region_entries(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_replica(os.path.join(tmp, "ledger.db"), rows)
        t, cpu = time.perf_counter(), time.process_time()
        g = RegionGraph()
        g.update(store)
        assert g.graph.num_nodes() == len(g._keys)  # handed to rustworkx, as the first query would
        build, build_cpu = time.perf_counter() - t, time.process_time() - cpu
        store.close()
    s = g.summary()

    edges = g.graph.edge_list()
    t = time.perf_counter()
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(g.graph.num_nodes()))
    nxg.add_edges_from(edges)
    nx_build = time.perf_counter() - t
    t = time.perf_counter()
    rxg = rx.PyDiGraph()
    rxg.add_nodes_from(range(g.graph.num_nodes()))
    rxg.add_edges_from_no_data(edges)
    rx_build = time.perf_counter() - t

    rng = np.random.default_rng(args.seed + 1)
    suppliers = sorted({s for s, _ in g.relations})
    picks = [suppliers[int(i)] for i in rng.integers(len(suppliers), size=args.queries)]
    ours, theirs, reach = [], [], []
    for d in picks:  # the two take turns, so a slow spell of the machine falls on both
        t = time.perf_counter()
        impact = g.recall(d)
        ours.append(time.perf_counter() - t)
        start = g._nodes[("org", d)]
        t = time.perf_counter()
        other = g._impact(d, "supplier", nx.descendants(nxg, start))
        theirs.append(time.perf_counter() - t)
        assert other == impact
        reach.append(len(impact.enterprises))

    def ms(xs: list[float], q: float) -> float:
        return float(np.quantile(xs, q) * 1000)

    table = Table(title=f"Regional graph: {s['enterprises']:,} enterprises, {s['products']:,} products, "
                        f"{s['certificates']:,} certificates, {s['relations']:,} supply relations "
                        f"({s['entries']:,} entries; {s['nodes']:,} nodes, {s['edges']:,} edges)")  # fmt: skip
    table.add_column("measure")
    table.add_column("rustworkx (QDSN)", justify="right")
    table.add_column("networkx, same run", justify="right")
    table.add_column("networkx ÷ QDSN", justify="right")
    table.add_row("build from the replica (read, parse, fold)", f"{build:.2f} s ({build_cpu:.2f} s CPU)", "", "")
    table.add_row(
        "graph of the same edges alone",
        f"{rx_build * 1000:.0f} ms",
        f"{nx_build * 1000:.0f} ms",
        f"{nx_build / rx_build:.1f}×",
    )
    for q, label in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        table.add_row(
            f"recall impact {label}",
            f"{ms(ours, q):.2f} ms",
            f"{ms(theirs, q):.2f} ms",
            f"{ms(theirs, q) / ms(ours, q):.1f}×",
        )
    Console().print(table)
    print(
        f"{args.queries} recalls from random suppliers; downstream enterprises: median "
        f"{statistics.median(reach):.0f}, max {max(reach)}. Targets: build < 2 s "
        f"({'met' if build < 2 else 'NOT met'}), recall p50 ≤ 5 ms ({'met' if ms(ours, 0.5) <= 5 else 'NOT met'})."
    )


if __name__ == "__main__":
    main()
