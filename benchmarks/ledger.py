"""Ledger benchmarks: validated appends against the raw Ed25519 verification bound, and inclusion
proofs on a 1,000,000-leaf store against pymerkle 7's SqliteTree on the same leaves.

    python benchmarks/ledger.py [--tx 20000] [--batch 1000] [--leaves 1000000] [--proofs 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qdsn.crypto import SigningKey, verify_batch
from qdsn.crypto.encoding import b64url_decode
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, merkle, tx
from qdsn.ledger.store import Row, Store

console = Console()


def _register(key: SigningKey, i: int) -> dict:
    return {
        "did": did_key_from_public_key(key.verify_key.raw),
        "role": "enterprise",
        "name": f"Factory {i}",
        "key": multikey_from_public_key(key.verify_key.raw),
    }


def _signed(n: int) -> tuple[SigningKey, str, list[tx.Envelope]]:
    reg = SigningKey.generate()
    did = did_key_from_public_key(reg.verify_key.raw)
    with console.status(f"signing {n} transactions"):
        envs = [tx.sign_tx("identity.register", _register(SigningKey.generate(), i), reg, did) for i in range(n)]
    return reg, did, envs


def _fresh_ledger(folder: Path, name: str, reg: SigningKey, did: str) -> Ledger:
    ledger = Ledger.open(str(folder / f"{name}.db"), origin="bench/appends")
    ledger.append([tx.sign_tx("identity.register", {**_register(reg, 0), "role": "regulator"}, reg, did)])
    return ledger


def bench_appends(n: int, batch: int, folder: Path) -> dict[str, float]:
    reg, did, envs = _signed(n)
    ledger = _fresh_ledger(folder, "one-by-one", reg, did)
    t = time.perf_counter()
    for i in range(0, n, batch):
        ledger.append(envs[i : i + batch])
    appends = n / (time.perf_counter() - t)
    assert ledger.size == n + 1
    ledger.close()

    reg2, did2, envs2 = _signed(n)
    ledger = _fresh_ledger(folder, "pipelined", reg2, did2)
    t = time.perf_counter()
    for _ in ledger.append_stream(envs2[i : i + batch] for i in range(0, n, batch)):
        pass
    pipelined = n / (time.perf_counter() - t)
    assert ledger.size == n + 1
    ledger.close()

    items = [(reg.verify_key, b64url_decode(e.signature), e.signing_input()) for e in envs]
    t = time.perf_counter()
    for k, s, m in items:
        k.verify(s, m)
    one_core = n / (time.perf_counter() - t)
    t = time.perf_counter()
    assert all(verify_batch(items))
    all_cores = n / (time.perf_counter() - t)
    return {"appends": appends, "pipelined": pipelined, "verify_1": one_core, "verify_all": all_cores}


def build_store(path: Path, leaves: list[bytes]) -> Store:
    store = Store(str(path))
    frontier = store.frontier.copy()
    step = 100_000
    for start in range(0, len(leaves), step):
        rows, nodes = [], []
        for i in range(start, min(start + step, len(leaves))):
            nodes.extend(frontier.append(merkle.leaf_hash(leaves[i])))
            rows.append(Row(i, leaves[i].hex(), "bench", "did:key:bench", f"{i:032x}", leaves[i]))
        store.commit(rows, frontier.copy(), nodes)
    return store


def bench_proofs(n_leaves: int, n_proofs: int, folder: Path) -> dict[str, float]:
    from pymerkle import SqliteTree, verify_inclusion

    rng = random.Random(2)
    leaves = [rng.randbytes(32) for _ in range(n_leaves)]
    with console.status(f"building a {n_leaves:,}-leaf QDSN store"):
        store = build_store(folder / "proofs.db", leaves)
    with console.status(f"building a {n_leaves:,}-leaf pymerkle SqliteTree"):
        pm = SqliteTree(str(folder / "pymerkle.db"))
        pm.append_entries(leaves)
    size = n_leaves
    root = store.frontier.root()
    assert pm.get_root() == root, "pymerkle and QDSN disagree on the root of the same leaves"
    indices = [rng.randrange(size) for _ in range(n_proofs)]

    t = time.perf_counter()
    for i in indices:
        merkle.inclusion_proof(i, size, store)
    ours = n_proofs / (time.perf_counter() - t)
    proof = merkle.inclusion_proof(indices[0], size, store)
    merkle.verify_inclusion(merkle.leaf_hash(leaves[indices[0]]), indices[0], size, proof, root)

    t = time.perf_counter()
    for i in indices:
        pm.prove_inclusion(i + 1, size)  # pymerkle counts leaves from 1
    theirs = n_proofs / (time.perf_counter() - t)
    pp = pm.prove_inclusion(indices[0] + 1, size)
    verify_inclusion(merkle.leaf_hash(leaves[indices[0]]), root, pp)
    pm.close()
    store.close()
    return {"ours": ours, "pymerkle": theirs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tx", type=int, default=20_000, help="transactions to append")
    ap.add_argument("--batch", type=int, default=1000, help="transactions per batch")
    ap.add_argument("--leaves", type=int, default=1_000_000, help="leaves in the proof store")
    ap.add_argument("--proofs", type=int, default=2000, help="inclusion proofs to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        a = bench_appends(args.tx, args.batch, Path(d))
        p = bench_proofs(args.leaves, args.proofs, Path(d)) if args.leaves else None
    table = Table(title=f"QDSN ledger on {os.cpu_count()} cores")
    for col in ("measure", "rate", "baseline", "baseline rate", "ratio"):
        table.add_column(col, justify="right" if col in ("rate", "baseline rate", "ratio") else "left")
    table.add_row(
        f"validated signed appends (batches of {args.batch})",
        f"{a['appends']:,.0f} tx/s",
        "raw Ed25519 verify, all cores",
        f"{a['verify_all']:,.0f} /s",
        f"{a['appends'] / a['verify_all']:.2f}",
    )
    table.add_row(
        "", "", "raw Ed25519 verify, one core", f"{a['verify_1']:,.0f} /s", f"{a['appends'] / a['verify_1']:.2f}"
    )
    table.add_row(
        "the same, pipelined (queued batches, append_stream)",
        f"{a['pipelined']:,.0f} tx/s",
        "raw Ed25519 verify, all cores",
        f"{a['verify_all']:,.0f} /s",
        f"{a['pipelined'] / a['verify_all']:.2f}",
    )
    if p:
        table.add_row(
            f"inclusion proofs, {args.leaves:,}-leaf store",
            f"{p['ours']:,.0f} /s",
            "pymerkle 7 SqliteTree",
            f"{p['pymerkle']:,.0f} /s",
            f"{p['ours'] / p['pymerkle']:.1f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()
