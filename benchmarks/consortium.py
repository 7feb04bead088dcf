"""The consortium ledger on etcd: transactions committed per second on all of 3 replicas ordered by a
3-member etcd cluster on loopback, beside the embedded ledger (one replica, no etcd) on the same
transactions in the same run; and the time a replica that was down for 100,000 transactions takes to
catch up, validating every one.

    python benchmarks/consortium.py [--tx 30000] [--down 100000] [--batch 1000]

Needs etcd (apt-get install etcd-server).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.ledger.ordering.etcd import Cluster, EtcdOrderer, Follower, parse_endpoints
from qdsn.ledger.ordering.local import EtcdCluster

console = Console()
ORIGIN = "bench/consortium"


def _register(key: SigningKey, role: str = "enterprise") -> dict:
    raw = key.verify_key.raw
    return {"did": did_key_from_public_key(raw), "role": role, "name": "Factory", "key": multikey_from_public_key(raw)}


def signed(n: int) -> tuple[tx.Envelope, list[tx.Envelope]]:
    """The regulator's own registration and `n` registrations it signs."""
    reg = SigningKey.generate()
    did = did_key_from_public_key(reg.verify_key.raw)
    genesis = tx.sign_tx("identity.register", _register(reg, "regulator"), reg, did)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"signing {n:,} transactions", total=n)
        envs = []
        for i in range(n):
            envs.append(tx.sign_tx("identity.register", _register(SigningKey.generate()), reg, did))
            if i % 1000 == 0:
                bar.update(task, completed=i)
    return genesis, envs


def embedded(folder: Path, genesis: tx.Envelope, envs: list[tx.Envelope], batch: int) -> float:
    ledger = Ledger.open(str(folder / "embedded.db"), origin=ORIGIN)
    ledger.append([genesis])
    t = time.perf_counter()
    for _ in ledger.append_stream(envs[i : i + batch] for i in range(0, len(envs), batch)):
        pass
    rate = len(envs) / (time.perf_counter() - t)
    ledger.close()
    return rate


def _node(i: int, url: str, prefix: str, db: str, mine: list[bytes], end: int, batch: int, go, out) -> None:
    """One node in its own process, as deployed: submits its share through its own orderer, follows
    etcd into its own replica, and reports when it has applied the whole sequence."""
    replica = Ledger.open(db, origin=ORIGIN)
    follower = Follower(replica, Cluster(parse_endpoints(url), prefix))
    orderer = EtcdOrderer(replica, follower.cluster, follower)
    envs = [tx.from_leaf(x) for x in mine]
    go.wait()
    futures = [orderer.enqueue(envs[k : k + batch]) for k in range(0, len(envs), batch)]
    follower.wait_for(end, 600)
    assert all(not f.exception() for f in futures)
    out.put((i, time.perf_counter(), replica.size, replica.root()))
    orderer.close()
    replica.close()


def consortium(
    folder: Path, url: str, genesis: tx.Envelope, envs: list[tx.Envelope], batch: int
) -> tuple[float, bytes]:
    """3 nodes, each a process submitting a third of the load through its own orderer; the clock stops
    when every replica has applied every transaction."""
    prefix = f"/qdsn/bench-{time.time_ns()}"
    first = Ledger.open(str(folder / "seed.db"), origin=ORIGIN)
    follower = Follower(first, Cluster(parse_endpoints(url), prefix))
    EtcdOrderer(first, follower.cluster, follower).submit([genesis])
    first.close()
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    leaves = [e.leaf() for e in envs]
    shares = [[x for k, x in enumerate(leaves) if (k // batch) % 3 == i] for i in range(3)]
    procs = [ctx.Process(target=_node, args=(i, url, prefix, str(folder / f"node{i}.db"), shares[i], 1 + len(envs),
                                              batch, go, out)) for i in range(3)]  # fmt: skip
    for p in procs:
        p.start()
    time.sleep(3)  # every node has opened its replica and parsed its share
    t = time.perf_counter()
    go.set()
    done = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    rate = len(envs) / (max(d[1] for d in done) - t)
    assert len({(d[2], d[3]) for d in done}) == 1 and done[0][2] == 1 + len(envs), "the replicas disagree"
    return rate, done[0][3]


def catch_up(folder: Path, url: str, genesis: tx.Envelope, envs: list[tx.Envelope], batch: int) -> tuple[float, float]:
    """A replica that was down while `envs` were ordered starts again and applies all of them."""
    prefix = f"/qdsn/down-{time.time_ns()}"
    live = Ledger.open(str(folder / "live.db"), origin=ORIGIN)
    follower = Follower(live, Cluster(parse_endpoints(url), prefix))
    orderer = EtcdOrderer(live, follower.cluster, follower)
    orderer.submit([genesis])
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"ordering {len(envs):,} transactions while a node is down", total=len(envs))
        futures = [orderer.enqueue(envs[i : i + batch]) for i in range(0, len(envs), batch)]
        for k, f in enumerate(futures):
            f.result(600)
            bar.update(task, completed=(k + 1) * batch)
    orderer.close()
    down = Ledger.open(str(folder / "down.db"), origin=ORIGIN)
    back = Follower(down, Cluster(parse_endpoints(url), prefix))
    t = time.perf_counter()
    back.wait_for(1 + len(envs), 3600)
    seconds = time.perf_counter() - t
    follower.wait_for(1 + len(envs), 3600)
    assert (down.size, down.root()) == (live.size, live.root())
    live.close()
    down.close()
    return seconds, len(envs) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tx", type=int, default=30_000, help="transactions in the throughput run")
    ap.add_argument("--down", type=int, default=100_000, help="transactions a node misses before it catches up")
    ap.add_argument("--batch", type=int, default=1000, help="transactions per submission")
    args = ap.parse_args()
    cluster = EtcdCluster(3)
    with tempfile.TemporaryDirectory(prefix="qdsn-bench-") as d:
        folder = Path(d)
        try:
            with console.status("starting a 3-member etcd cluster"):
                cluster.start_all()
            genesis, envs = signed(args.tx)
            with console.status("embedded: one replica, no etcd"):
                base = embedded(folder, genesis, envs, args.batch)
            with console.status("consortium: 3 replicas ordered by etcd"):
                rate, _ = consortium(folder, cluster.url, genesis, envs, args.batch)
            genesis2, missed = signed(args.down)
            seconds, catch_rate = catch_up(folder, cluster.url, genesis2, missed, args.batch)
        finally:
            cluster.stop()
    table = Table(title="consortium ledger on etcd (3 members, 3 replicas, loopback)")
    for col in ("measure", "figure", "baseline", "ratio"):
        table.add_column(col)
    table.add_row(f"committed on all 3 replicas, {args.tx:,} tx", f"{rate:,.0f} tx/s",
                  f"embedded ledger: {base:,.0f} tx/s", f"{rate / base:.2f}")  # fmt: skip
    table.add_row(f"catch-up after {args.down:,} tx down", f"{seconds:.1f} s ({catch_rate:,.0f} tx/s)",
                  f"embedded ledger: {args.down / base:.1f} s", f"{catch_rate / base:.2f}")  # fmt: skip
    console.print(table)
    console.print("targets: ≥ 3,000 tx/s and ≥ 30 % of embedded")


if __name__ == "__main__":
    main()
