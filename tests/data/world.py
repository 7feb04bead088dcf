"""A regulator and a manufacturer sharing one ledger, with datasets sealed in the vault and anchored:
the reference state that completeness and damage tests take apart."""

from __future__ import annotations

from pathlib import Path

from qdsn.node import NodeHome

FAST = 2**4


def reading(i: int) -> dict:
    return {"characteristic": "conductor resistance", "value": 17.5 + (i % 97) / 100, "lot": f"L{i // 100}",
            "time": "2026-03-01T08:00:00Z"}  # fmt: skip


def world(tmp: Path, datasets: dict[str, list[int]], *, pending: dict[str, int] | None = None,
          url: str = "") -> NodeHome:  # fmt: skip
    """A manufacturer whose `datasets` hold batches of the given sizes, each anchored; `pending`
    adds one sealed batch per dataset that is not anchored (a crash before the anchor). `url`: a
    database for the ledger (and then the vault) instead of SQLite files."""
    reg = NodeHome.init(tmp / "reg", "regulator", "Bureau", "pw", ledger_url=url, scrypt_n=FAST)
    acme = NodeHome.init(tmp / "acme", "enterprise", "Acme", "pw", ledger_url=url or str(tmp / "reg" / "ledger.db"),
                         scrypt_n=FAST)  # fmt: skip
    reg.submit("identity.register", acme.registration())
    vault = acme.vault()
    for name, sizes in datasets.items():
        vault.create(name, "measurements")
        acme.submit("dataset.declare", {"dataset": name, "title": name, "kind": "measurements"})
        seq = 0
        for n in sizes:
            batch = vault.add_batch(name, [reading(seq + i) for i in range(n)])
            vault.mark_anchored(batch, acme.anchor(batch))
            seq += n
        if pending and name in pending:
            vault.add_batch(name, [reading(seq + i) for i in range(pending[name])])
    vault.close()
    return acme


def home_of(node: NodeHome) -> NodeHome:
    return NodeHome.open(node.path, "pw", scrypt_n=FAST)
