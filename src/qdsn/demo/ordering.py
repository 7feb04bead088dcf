"""The demo's closing steps: the consortium moves its ordering to an etcd cluster (when etcd is
installed here) and survives losing the etcd leader; then backups that verify themselves."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qdsn.data import backup as vault_backup
from qdsn.errors import QDSNError
from qdsn.ledger import Ledger, tx
from qdsn.ledger import backup as ledger_backup
from qdsn.ledger.ordering.local import EtcdCluster
from qdsn.node import Node, NodeHome, witness
from qdsn.node.follow import log_key


def etcd_ordering(console: Console, root: Path, homes: list[NodeHome], ledgers: dict[str, Ledger]) -> None:
    """Three nodes order through a 3-member etcd cluster on loopback while its leader is killed."""
    console.print(
        "\n[bold]16. The consortium outgrows one operator.[/] Ordering moves to a 3-member etcd cluster (Raft, "
        "the engine under Hyperledger Fabric's orderer): a batch takes its place by compare-and-swap; every "
        "node follows the sequence into its own replica, validates each transaction itself, and cosigns "
        "its own root at the regulator's checkpoints. The more nodes, the safer the data (节点越多数据越安全)."
    )
    if shutil.which("etcd") is None:
        console.print("  [yellow]etcd is not installed here[/] (apt-get install etcd-server); the consortium "
                      "keeps its embedded ordering.")  # fmt: skip
        return
    cluster = EtcdCluster(3)
    cluster.dir = tempfile.mkdtemp(prefix="etcd-", dir=root)
    nodes: list[Node] = []
    try:
        cluster.start_all()
        nodes = [Node(h, ordering=cluster.url, ledger=ledgers[h.did], quorum=2) for h in homes]
        for n in nodes:
            n.start(every=0.2)
        maker = next(n for n in nodes if n.home.role == "enterprise")
        done = threading.Event()
        acked: list[str] = []

        def load() -> None:
            while not done.is_set():
                envs = [maker.home.sign("dataset.declare", {"dataset": f"line-{uuid.uuid4().hex[:8]}",
                                                            "title": "New line", "kind": "inspections"})
                        for _ in range(10)]  # fmt: skip
                try:
                    maker.submit(envs)
                    acked.extend(tx.txid(e.leaf()) for e in envs)
                except QDSNError:
                    pass

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        time.sleep(1.0)
        leader = cluster.leader()
        cluster.kill(leader)
        console.print(f"  {maker.home.name} submits steadily; etcd member m{leader}, the leader, is killed …")
        time.sleep(1.5)
        cluster.restart(leader)
        cluster.wait_healthy()
        console.print(f"  … a new leader is elected (m{cluster.leader()}); m{leader} restarts and catches up")
        time.sleep(0.5)
        done.set()
        worker.join(30)
        _settle(nodes)
        table = Table("node", "entries", "root", "etcd position", "cosigned by both members", "alerts")
        for n in nodes:
            trusted = witness.trusted(n.ledger, 2)
            alerts = len(n.ledger.store.rows_of_type("alert.raise"))
            table.add_row(n.home.name, str(n.ledger.size), n.ledger.root().hex()[:12] + "…", str(n.etcd.position),
                          f"size {trusted[0]}" if trusted else "-",
                          "[green]none[/]" if not alerts else f"[red]{alerts}[/]")  # fmt: skip
        console.print(table)
        same = len({(n.ledger.size, n.ledger.root()) for n in nodes}) == 1
        once = all(len({n.ledger.store.entry(txid=t).seq for t in acked}) == len(acked) for n in nodes)
        mark = lambda ok: "[green]✓[/]" if ok else "[red]✗[/]"  # noqa: E731
        console.print(f"  {len(acked)} transactions acknowledged through the election, each on every replica "
                      f"exactly once {mark(once)}; every replica at the same size and root {mark(same)}")  # fmt: skip
    finally:
        for n in nodes:
            n.close()
        cluster.stop()


def _settle(nodes: list[Node], timeout: float = 30) -> None:
    """Until every node has applied all of etcd's sequence under a checkpoint that all of them cosigned."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up and not all(n.settled() for n in nodes):
        time.sleep(0.1)


def backups(console: Console, root: Path, regulator: NodeHome, maker: NodeHome, keeper: NodeHome,
            log: Ledger, passphrase: str) -> None:  # fmt: skip
    """A ledger export replayed into a new node; a vault sealed for safekeeping at another node."""
    console.print(
        "\n[bold]17. Backups that verify themselves.[/] The log is exported and restored on a new node, every "
        "entry validated again; the manufacturer's vault is sealed so that another node can keep it without "
        "reading anything in it (the real-time backup of the data space)."
    )
    export = root / "consortium-ledger.gz"
    ledger_backup.export(log, export)
    newcomer = NodeHome.init(root / "observer", "enterprise", "Observer", passphrase, origin=log.origin)
    restored = ledger_backup.restore(export, newcomer.ledger_location(), log_key)
    console.print(f"  export {export.stat().st_size:,} bytes → a new node replays {restored.size} entries: root "
                  f"{'[green]✓ matches[/]' if restored.root() == log.root() else '[red]✗[/]'}, "
                  f"{len(restored.store.checkpoint_notes())} checkpoints consistent")  # fmt: skip
    restored.close()
    sealed = root / "keeper-holds" / f"{maker.name}.vault"
    sealed.parent.mkdir()
    vault = maker.vault()
    n = vault_backup.write(vault.engine, sealed, maker.kek(), maker.did, time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    datasets = vault.datasets()
    vault.close()
    blob = sealed.read_bytes()
    leaked = [d for d in datasets if d.encode() in blob]
    console.print(f"  {maker.name}'s vault ({n:,} bytes of rows, themselves ciphertext) sealed and handed to "
                  f"{keeper.name}; dataset names in the file: {len(leaked)}")  # fmt: skip
    scratch = Path(tempfile.mkdtemp(dir=root))
    try:
        from qdsn.data.vault import Vault

        try:
            vault_backup.restore(sealed, Vault(str(scratch / "k.db"), keeper.kek).engine, keeper.kek)
            console.print("  [red]the keeper opened it?![/]")
        except QDSNError as e:
            console.print(f"  {keeper.name} tries to open it: [green]✓ refused[/] [dim]({e.what})[/]")
        mine = Vault(str(scratch / "m.db"), maker.kek)
        rows = vault_backup.restore(sealed, mine.engine, maker.kek)
        count = sum(len(mine.records(d)) for d in mine.datasets())
        console.print(f"  {maker.name} restores it with its own keystore: {rows} rows, {count} records readable ✓")
        mine.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
