"""Console benchmark: server time of the regulator's overview, member registry and ledger explorer pages
for a region of 20,000 members and a log of 1,000,000 entries, p50 and p95, beside the same node answering
its plain JSON API (`/members`, `/explorer/entries`, signed as a member's node signs) for the same data in
the same run, through a real server on loopback (uvicorn, HTTP/1.1 keep-alive).

    python benchmarks/console.py [--members 20000] [--entries 1000000] [--requests 200] [--keep DIR]

What the data is, and what is shortcut:

- real, through the full validator (`Ledger.append`: schema, role, signature, nonce, fold): the regulator's
  genesis, a certification body, and each of the 20,000 enterprises' `identity.register` with a valid
  unified social credit code, a GB/T 2260 county of Zhejiang in use today, a GB/T 4754 industry class and an
  address;
- shortcut, written straight through `Store.batch` in batches of 20,000 without validation: every other entry.
  Each enterprise declares one dataset (`dataset.declare`), then `dataset.anchor` batches follow round-robin
  until the log holds `--entries`; every 10,000 entries the regulator signs a checkpoint (C2SP signed note,
  kept as the log operator keeps it) and 20 of the members cosign it (`checkpoint.cosign`, recorded in the
  cosignatures table). Every one of these envelopes is really signed by its submitter's key, its leaf and
  Merkle nodes are the real ones (so proofs and checkpoints hold), and the datasets table is written as the
  fold would leave it; what is not real is the anchors' roots (random: no vault holds the records) and that
  nothing checked them on the way in. Building 1,000,000 entries this way takes a minute or two instead of
  validating a million signatures; `--keep DIR` keeps the home to run again without building.

Each page is asked `--requests` times after one warm-up request (which fills the per-process type tally
the overview shows); the pages asked are those a regulator's officer walks through: the overview, the
registry's first page, a region filter (a prefecture) and its next page, the log's newest page, entries of
one type two pages deep.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table
from stdnum.cn import uscc

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.crypto import SigningKey, sha256
from qdsn.crypto.canonical import plain_json
from qdsn.crypto.encoding import b64url_encode
from qdsn.identity import did_key_from_public_key, multikey_from_public_key, organization
from qdsn.ledger import merkle, tx
from qdsn.ledger.checkpoint import Checkpoint, NoteSigner, cosigned_message, sign_note
from qdsn.ledger.state import Cosignature, Dataset
from qdsn.ledger.store import Row
from qdsn.node import Node, NodeHome
from qdsn.web.staff import StaffStore

console = Console()
INDUSTRIES = ["C3831", "C3832", "C3811", "C2710", "C3360", "C3670", "C3982", "C1810", "C2651", "C3420"]
CHECKPOINT_EVERY = 10_000
WITNESSES = 20
BATCH = 20_000
PASSWORD = "bench-console-pw"


def zhejiang_counties() -> list[str]:
    """GB/T 2260 county-level divisions of Zhejiang in use today, from the list the regulator checks."""
    out = []
    for prefecture in range(1, 12):
        for county in range(1, 100):
            code = f"33{prefecture:02d}{county:02d}"
            try:
                if organization.region(code).level == "county":
                    out.append(code)
            except Exception:  # not a division, or retired
                continue
    return out


def credit_code(region: str, i: int) -> str:
    body = f"{i:08d}"
    code = f"91{region}{body}{organization._organization_check(body)}"
    return code + uscc.calc_check_digit(code)


class Signer:
    """Signs envelopes the way `tx.sign_tx` does, without re-checking each generated payload's schema."""

    def __init__(self, key: SigningKey, did: str) -> None:
        self.key, self.did = key, did

    def sign(self, type: str, payload: dict, created: str) -> tx.Envelope:
        nonce = os.urandom(16).hex()
        body = {"created": created, "nonce": nonce, "payload": payload, "submitter": self.did, "type": type}
        return tx.Envelope(type, payload, self.did, nonce, created, b64url_encode(self.key.sign(plain_json(body))))


def build(home: NodeHome, n_members: int, n_entries: int) -> None:
    """The regulator's replica in `home`, grown to `n_members` enterprises and `n_entries` entries."""
    rng = random.Random(22)
    ledger = home.ledger()
    t0 = time.perf_counter()
    counties = zhejiang_counties()
    clock = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    members = []
    with console.status(f"registering {n_members:,} members through the validator"):
        cqc_key = SigningKey.generate()
        cqc = Signer(cqc_key, did_key_from_public_key(cqc_key.verify_key.raw))
        envs = [home.sign("identity.register", {"did": cqc.did, "role": "certifier", "name": "中国质量认证中心",
                                                "key": multikey_from_public_key(cqc_key.verify_key.raw)})]  # fmt: skip
        for i in range(n_members):
            key = SigningKey.generate()
            m = Signer(key, did_key_from_public_key(key.verify_key.raw))
            members.append(m)
            region = counties[i % len(counties)]
            payload = {"did": m.did, "role": "enterprise", "name": f"浙江某某{INDUSTRIES[i % 10]}制造有限公司 {i:05d}",
                       "key": multikey_from_public_key(key.verify_key.raw), "credit_code": credit_code(region, i),
                       "region": region, "industry": INDUSTRIES[rng.randrange(len(INDUSTRIES))],
                       "address": f"浙江省某某路 {i} 号"}  # fmt: skip
            envs.append(home.sign("identity.register", payload))
        for i in range(0, len(envs), 1000):
            ledger.append(envs[i : i + 1000])
    console.print(f"  {ledger.size:,} entries validated and folded in {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    store, state = ledger.store, ledger.state
    frontier = store.frontier.copy()
    log_signer = NoteSigner(home.origin, home.key())
    witnesses = members[:WITNESSES]
    anchored = [0] * n_members
    rows: list[Row] = []
    nodes: list[tuple[int, int, bytes]] = []
    pending_cosigns: list[Cosignature] = []

    def add(env: tx.Envelope) -> int:
        leaf = plain_json(env.to_json())  # the canonical leaf: these payloads are plain (ASCII, no floats)
        seq = frontier.size
        nodes.extend(frontier.append(merkle.leaf_hash(leaf)))
        rows.append(Row(seq, sha256(leaf).hex(), env.type, env.submitter, env.nonce, leaf))
        return seq

    def flush() -> None:
        state.new_cosignatures.extend(pending_cosigns)
        with store.batch(rows, frontier.copy(), nodes, state):
            pass
        state.clean()
        rows.clear(), nodes.clear(), pending_cosigns.clear()

    i = 0
    with console.status(f"writing {n_entries - ledger.size:,} signed entries straight to the store"):
        while frontier.size < n_entries:
            clock += timedelta(seconds=3)
            created = clock.strftime("%Y-%m-%dT%H:%M:%SZ")
            k = i % n_members
            m, ds = members[k], f"line-{k:05d}"
            if i < n_members:
                seq = add(m.sign("dataset.declare", {"dataset": ds, "title": f"Line {k}", "kind": "measurements"},
                                 created))  # fmt: skip
                state.datasets[ds] = Dataset(ds, m.did, f"Line {k}", "measurements", 0, 0, False, seq, seq)
            else:
                payload = {"dataset": ds, "first": anchored[k], "count": 256, "root": rng.randbytes(32).hex()}
                seq = add(m.sign("dataset.anchor", payload, created))
                anchored[k] += 256
                d = state.datasets[ds]
                state.datasets[ds] = Dataset(ds, d.owner, d.title, d.kind, anchored[k], d.batches + 1, False,
                                             d.declared, seq)  # fmt: skip
            state.dirty_datasets.add(ds)
            i += 1
            if frontier.size % CHECKPOINT_EVERY == 0:
                size, root = frontier.size, frontier.root()
                text = Checkpoint(home.origin, size, root).text()
                store.save_checkpoint(size, sign_note(text, log_signer))
                stamp = int(clock.timestamp())
                for w in witnesses:
                    sig = b64url_encode(w.key.sign(cosigned_message(text, stamp)))
                    env = w.sign("checkpoint.cosign", {"origin": home.origin, "size": size, "root": root.hex(),
                                                       "timestamp": stamp, "signature": sig}, created)  # fmt: skip
                    pending_cosigns.append(Cosignature(add(env), home.origin, size, root, w.did, stamp))
            if len(rows) >= BATCH:
                flush()
        flush()
    console.print(f"  {store.size:,} entries in the log after {time.perf_counter() - t1:.1f} s more")
    ledger.close()


def serve(node: Node) -> tuple[uvicorn.Server, str]:
    config = uvicorn.Config(create_app(node), host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def timed(n: int, get) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds of `n` requests, after one warm-up; each must answer 200."""
    get()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = get()
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[:500]
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def measure(home: NodeHome, n: int, slow: int = 3) -> None:
    """Each page beside the JSON API answering the same data, in the same run, on the same server."""
    node = Node(home, operator=True)
    staff = StaffStore(home.path)
    if "officer" not in {a["name"] for a in staff.list()}:
        staff.add("officer", "viewer", PASSWORD)
    server, base = serve(node)
    browser = httpx.Client(base_url=base, timeout=60, follow_redirects=True)
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/console/login").text)[1]
    signed_in = browser.post("/console/login", data={"name": "officer", "password": PASSWORD, "csrf": token})
    assert signed_in.status_code == 200 and "/console/regulator/overview" in str(signed_in.url), signed_in.text[:300]
    api = NodeClient(base, home.key(), home.did, http=httpx.Client(base_url=base, timeout=60))
    region = zhejiang_counties()[0][:4] + "00"  # a prefecture
    older = api.call("GET", f"/members?region={region}&limit=50")["older"] or node.ledger.size
    cosigns = api.call("GET", "/explorer/entries?type=checkpoint.cosign&limit=50")["older"]
    deeper = (
        api.call("GET", f"/explorer/entries?type=checkpoint.cosign&limit=50&before={cosigns}")["older"]
        if (cosigns is not None)
        else None
    )
    deeper = deeper if deeper is not None else node.ledger.size  # a small log: its first page
    overview_json = ["/explorer/entries?limit=10", "/explorer/checkpoints?limit=1", "/explorer/witnesses?limit=200",
                     "/members/regions"]  # fmt: skip
    t = time.perf_counter()
    assert browser.get("/console/regulator/overview").status_code == 200
    first = (time.perf_counter() - t) * 1000  # counts the entries by type of the whole log, once per process
    # The risk classes and a prefecture's indicators: the first view in a process folds the log's evidence
    # (every anchor's time) and makes the prefecture's summary; later views page through what was kept.
    cold = {}
    for name, path in (("risk classes", "/console/regulator/risk"),
                       (f"indicators of {region}", f"/console/regulator/indicators?region={region}")):  # fmt: skip
        t = time.perf_counter()
        assert browser.get(path).status_code == 200, path
        cold[name] = (time.perf_counter() - t) * 1000
    in_region = api.call("GET", f"/members?region={region}&role=enterprise&limit=1")["total"]
    middle = in_region // 2 // 50 * 50  # the offset of the prefecture's middle page
    pages = [
        ("overview", "/console/regulator/overview", overview_json),
        ("member registry, newest page", "/console/regulator/members", ["/members"]),
        (f"registry, one prefecture ({region})", f"/console/regulator/members?region={region}",
         [f"/members?region={region}"]),
        ("registry, that prefecture's next page", f"/console/regulator/members?region={region}&before={older}",
         [f"/members?region={region}&before={older}"]),
        ("ledger explorer, newest page", "/console/regulator/ledger", ["/explorer/entries"]),
        ("ledger, one type, third page", f"/console/regulator/ledger?type=checkpoint.cosign&before={deeper}",
         [f"/explorer/entries?type=checkpoint.cosign&before={deeper}"]),
        ("risk classes, first page", "/console/regulator/risk", ["/supervision/risk"]),
        ("risk classes, one prefecture, middle page", f"/console/regulator/risk?region={region[:4]}&start={middle}",
         ["/supervision/risk"]),
        (f"indicators of {region}, first page", f"/console/regulator/indicators?region={region}",
         [f"/indicators/regions/{region}"]),
        (f"indicators of {region}, middle page", f"/console/regulator/indicators?region={region}&offset={middle}",
         [f"/indicators/regions/{region}"]),
    ]  # fmt: skip
    table = Table(title=f"regulator's console, {node.ledger.size:,} entries, "
                        f"{len(node.ledger.state.identities):,} members; {n} requests each (ms)")  # fmt: skip
    for col in ("page", "page p50", "page p95", "JSON p50", "JSON p95", "ratio p50"):
        table.add_column(col, justify="left" if col == "page" else "right")
    worst = 0.0
    for name, path, json_paths in pages:
        page = timed(n, lambda path=path: browser.get(path))
        # The JSON of the risk classes and a region's indicators is every enterprise at once, made per request:
        # asked `slow` times (their p95 is then the slowest of those).
        k = slow if json_paths[0].startswith(("/supervision/", "/indicators/")) else n
        plain = timed(k, lambda paths=json_paths: [api.request("GET", x) for x in paths][-1])
        worst = max(worst, p(page, 95))
        table.add_row(name, f"{p(page, 50):.1f}", f"{p(page, 95):.1f}", f"{p(plain, 50):.1f}", f"{p(plain, 95):.1f}",
                      f"{p(page, 50) / p(plain, 50):.2f}")  # fmt: skip
    console.print(table)
    console.print(
        f"The overview's first request in this process, which counts the log's entries by type: "
        f"{first:,.0f} ms (later ones count only the entries appended since)."
    )
    for name, ms in cold.items():
        console.print(f"The first view of the {name} in this process: {ms:,.0f} ms.")
    console.print(f"Enterprises in {region}: {in_region:,} (middle page at {middle}); JSON of the risk classes and the "
                  f"indicators asked {slow} times each.")  # fmt: skip
    console.print("JSON: signed requests (RFC 9421) as a member's node sends them; the overview's JSON is its four "
                  "requests in a row. Targets: page p50 ≤ 300 ms, p95 ≤ 1000 ms.")  # fmt: skip
    server.should_exit = True
    node.close()


def prepared(folder: Path, n_members: int, n_entries: int) -> NodeHome:
    """The regulator's home in `folder`: built now, or kept from an earlier run of the same size."""
    path = folder / "reg"
    if (path / "node.toml").exists():
        home = NodeHome.open(path, PASSWORD, scrypt_n=2**4)
        ledger = home.ledger()
        size = ledger.size
        ledger.close()
        if size >= n_entries:
            console.print(f"kept: {path} with {size:,} entries")
            return home
        raise SystemExit(f"{path} holds a log of {size:,} entries, fewer than {n_entries:,}: give another --keep")
    home = NodeHome.init(path, "regulator", "浙江省市场监督管理局", PASSWORD, scrypt_n=2**4)
    build(home, n_members, n_entries)
    return home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=20_000)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="requests per page")
    ap.add_argument("--slow", type=int, default=3, help="requests of the whole-region JSON (risk, indicators)")
    ap.add_argument("--keep", type=Path, help="build into (or reuse) this folder instead of a temporary one")
    ap.add_argument("--build-only", action="store_true", help="build the data and stop")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="qdsn-console-"))
    folder.mkdir(parents=True, exist_ok=True)
    home = prepared(folder, args.members, args.entries)
    if args.build_only:
        return
    measure(home, args.requests, args.slow)


if __name__ == "__main__":
    main()
