"""Ingestion benchmark: measurement records per second through settling with the ledger, each record's
content key and the count of those the dataset holds (so the same records are never stored twice), seal
(AES-256-GCM) + store (with the batch's record keys) + batch root + anchor on the ledger, beside a plain
SQLite insert of the same records in the same run.

    python benchmarks/ingest.py [--records 200000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from qdsn.crypto import SigningKey, hkdf_sha256
from qdsn.data.ingest import unheld
from qdsn.data.vault import Batch, Vault
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.node.home import find_anchor

console = Console()


def readings(n: int) -> list[dict]:
    rng = random.Random(1)
    return [
        {
            "characteristic": "conductor resistance",
            "value": round(rng.gauss(17.6, 0.12), 3),
            "time": f"2026-03-01T08:{(i // 60) % 60:02d}:{i % 60:02d}+08:00",
            "lot": f"L{i // 5000}",
            "device": "ohmmeter-3",
            "subgroup": i // 5,
        }
        for i in range(n)
    ]


def bench_vault(records: list[dict], batch: int, folder: Path) -> float:
    owner = SigningKey.generate()
    did = did_key_from_public_key(owner.verify_key.raw)
    ledger = Ledger.open(str(folder / "ledger.db"), origin="bench/ingest")
    mk = multikey_from_public_key(owner.verify_key.raw)
    reg = SigningKey.generate()
    reg_did = did_key_from_public_key(reg.verify_key.raw)
    ledger.append(
        [
            tx.sign_tx(
                "identity.register",
                {"did": reg_did, "role": "regulator", "name": "R", "key": multikey_from_public_key(reg.verify_key.raw)},
                reg,
                reg_did,
            ),
            tx.sign_tx("identity.register", {"did": did, "role": "enterprise", "name": "E", "key": mk}, reg, reg_did),
            tx.sign_tx("dataset.declare", {"dataset": "d", "title": "bench", "kind": "measurements"}, owner, did),
        ]
    )
    vault = Vault(str(folder / "vault.db"), lambda kid=None: ("k", hkdf_sha256(owner.seed(), b"qdsn/vault/kek/v1")))
    vault.create("d", "measurements")
    # Untimed: a running node has its sealing helper process up; a first batch would wait for it to start.
    vault.create("warm-up", "measurements")
    vault.add_batch("warm-up", records[:batch])

    orderer = EmbeddedOrderer(ledger)  # the operator's one write path, as `qdsn ingest` on its home takes it

    def anchor(b: Batch) -> str:
        return orderer.submit([tx.sign_tx("dataset.anchor", b.anchor_payload(), owner, did)])[0].txid  # type: ignore[union-attr]

    def lookup(dataset: str, first: int) -> tuple[str, Batch] | None:
        return find_anchor(ledger, did, dataset, first)

    t = time.perf_counter()
    # as `qdsn ingest` does it: settled with the ledger first, only records the dataset does not hold
    vault.settle("d", anchor, lookup)
    new = unheld(vault, "d", records)
    assert len(new.records) == len(records)
    for b in new.stream(vault, "d", batch):
        vault.anchor_batch(b, anchor, lookup)
    rate = len(records) / (time.perf_counter() - t)
    assert vault.verify("d") == len(records)
    return rate


def bench_plain(records: list[dict], batch: int, folder: Path) -> float:
    db = sqlite3.connect(folder / "plain.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE records (dataset TEXT, seq INTEGER, record BLOB, PRIMARY KEY (dataset, seq))")
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        with db:
            db.executemany(
                "INSERT INTO records VALUES (?, ?, ?)",
                [("d", i + j, orjson.dumps(r)) for j, r in enumerate(records[i : i + batch])],
            )
    return len(records) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()
    records = readings(args.records)
    with tempfile.TemporaryDirectory() as d:
        plain = bench_plain(records, args.batch, Path(d))
        ours = bench_vault(records, args.batch, Path(d))
    table = Table(title=f"QDSN ingestion on {os.cpu_count()} cores")
    for col in ("measure", "rate", "baseline", "baseline rate", "ratio"):
        table.add_column(col, justify="right" if col in ("rate", "baseline rate", "ratio") else "left")
    table.add_row(
        f"sealed, stored, anchored (batches of {args.batch})",
        f"{ours:,.0f} records/s",
        "plain SQLite insert, same rows",
        f"{plain:,.0f} records/s",
        f"{ours / plain:.2f}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
