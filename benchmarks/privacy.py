"""Private statistics benchmark: end-to-end Prio3 reports per second — the client shards its measurement
and seals each input share to its aggregator with the project's HPKE (qdsn.crypto.hpke, to the X25519
key of the aggregator's did:key); the leader and the helper each open their share and run verify_init;
the leader combines the verifier shares into the verifier message; each runs verify_next and adds the
output share into its aggregate share; the collector unshards — for Prio3Count, Prio3Sum (max 255),
Prio3Histogram (10 buckets) and Prio3SumVec (length 10, max 255), beside Paillier (`phe` with gmpy2,
2048-bit keys) encrypting each of the same Prio3Sum values, adding the ciphertexts and decrypting the
total, in the same run. Upload = nonce + public share + both sealed input shares (Paillier: one
ciphertext). Each is timed on one core, then with independent reports spread over both cores (a process
pool, one batch of reports per worker, started before the clock), and the aggregate result checked. The
schemes take turns (`--rounds` slices of each) so that a slow spell of the machine falls on all alike.
A last Prio3 row runs the Prio3Sum reports with the input shares passed in the clear: the VDAF's own cost.
On a shared machine the rates swing with its load: the best slice's rate on one core (and its ratio to
Paillier's best slice) is printed beside them, and the CPU time per value on one core (not counting the
collector's last step), which a busy machine does not inflate as much.
Targets: Prio3Sum(255) ≥ 20× Paillier's rate, ≥ 1,500 reports/s on both cores, upload ≤ 1 KiB.

    python benchmarks/privacy.py [--n 3000] [--paillier-n 300] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rich.console import Console
from rich.table import Table

from qdsn.crypto import hpke
from qdsn.crypto.keys import SigningKey
from qdsn.privacy import Prio3, Prio3Count, Prio3Histogram, Prio3Sum, Prio3SumVec, field

CTX = b"qdsn benchmark task"
VERIFY_KEY = bytes(range(32))
AGGREGATORS = [SigningKey.from_seed(bytes([i]) * 32) for i in (1, 2)]  # leader, helper
OPENERS = [hpke.agreement_key(k) for k in AGGREGATORS]
RECIPIENTS = [k.public_key().public_bytes_raw() for k in OPENERS]

UNSEALED = "Prio3Sum(255), shares not sealed"
VARIANTS: dict[str, Any] = {
    "Prio3Count": (lambda: Prio3Count(2), lambda r: r.randrange(2)),
    "Prio3Sum(255)": (lambda: Prio3Sum(2, 255), lambda r: r.randrange(256)),
    "Prio3Histogram(10)": (lambda: Prio3Histogram(2, 10, 3), lambda r: r.randrange(10)),
    "Prio3SumVec(10)": (lambda: Prio3SumVec(2, 10, 255, 9), lambda r: [r.randrange(256) for _ in range(10)]),
    # the VDAF's own share of the cost: the same reports with the input shares passed in the clear
    UNSEALED: (lambda: Prio3Sum(2, 255), lambda r: r.randrange(256)),
}


def measurements(name: str, n: int, seed: int = 1) -> list[Any]:
    r = random.Random(seed)
    return [VARIANTS[name][1](r) for _ in range(n)]


def upload(vdaf: Prio3, measurement: Any, seal: bool = True) -> tuple[bytes, bytes, list[bytes]]:
    """The client: nonce, public share, and each input share sealed to its aggregator."""
    nonce = os.urandom(vdaf.NONCE_SIZE)
    public, shares = vdaf.shard(CTX, measurement, nonce, os.urandom(vdaf.RAND_SIZE))
    if not seal:
        return nonce, vdaf.encode_public_share(public), [vdaf.encode_input_share(s) for s in shares]
    sealed = [
        hpke.seal(RECIPIENTS[j], vdaf.encode_input_share(s), b"qdsn prio3 input share" + bytes([j]) + nonce)
        for j, s in enumerate(shares)
    ]
    return nonce, vdaf.encode_public_share(public), sealed


def aggregate(name: str, batch: list[Any]) -> tuple[list[bytes], int, int]:
    """Clients' uploads, then both aggregators' verification and aggregation of each: the encoded aggregate
    shares, the reports counted, and the upload bytes."""
    vdaf = VARIANTS[name][0]()
    aggs = [vdaf.agg_init(None), vdaf.agg_init(None)]
    counted = size = 0
    seal = name != UNSEALED
    for m in batch:
        nonce, public_bytes, sealed = upload(vdaf, m, seal)
        size += len(nonce) + len(public_bytes) + sum(map(len, sealed))
        states, verifier_shares = [], []
        for j in (0, 1):  # each aggregator on its own: open, decode, verify_init, send its verifier share
            opened = (
                hpke.unseal(OPENERS[j], sealed[j], b"qdsn prio3 input share" + bytes([j]) + nonce)
                if seal
                else sealed[j]
            )
            share = vdaf.decode_input_share(j, opened)
            state, vshare = vdaf.verify_init(
                VERIFY_KEY, CTX, j, None, nonce, vdaf.decode_public_share(public_bytes), share
            )
            states.append(state)
            verifier_shares.append(vdaf.decode_verifier_share(vdaf.encode_verifier_share(vshare)))
        message = vdaf.verifier_shares_to_message(CTX, None, verifier_shares)
        for j in (0, 1):
            aggs[j] = vdaf.agg_update(None, aggs[j], vdaf.verify_next(CTX, states[j], message))
        counted += 1
    return [vdaf.encode_agg_share(a) for a in aggs], counted, size


def collect(name: str, parts: list[tuple[list[bytes], int, int]]) -> Any:
    vdaf = VARIANTS[name][0]()
    shares = [vdaf.merge(None, [vdaf.decode_agg_share(p[0][j]) for p in parts]) for j in (0, 1)]
    return vdaf.unshard(None, shares, sum(p[1] for p in parts))


def expected(name: str, batch: list[Any]) -> Any:
    if name.startswith("Prio3Histogram"):
        return [sum(1 for m in batch if m == b) for b in range(10)]
    if name.startswith("Prio3SumVec"):
        return [sum(col) for col in zip(*batch, strict=True)]
    return sum(batch)


def paillier_part(values: list[int]) -> Any:
    public, _ = KEYS
    total = public.encrypt(values[0])
    for v in values[1:]:
        total = total + public.encrypt(v)
    return total.ciphertext(be_secure=False)


KEYS: Any = None


def _init_paillier(keys: Any) -> None:
    global KEYS
    KEYS = keys


def main() -> None:
    global KEYS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="reports per Prio3 variant")
    ap.add_argument("--paillier-n", type=int, default=300, help="values for Paillier")
    ap.add_argument("--rounds", type=int, default=6, help="turns taken by the schemes")
    args = ap.parse_args()
    cores, rounds = min(2, os.cpu_count() or 1), args.rounds
    console = Console(width=175)
    hot = "C kernel" if field.kernel is not None else "Python"
    console.print(f"load average before: {os.getloadavg()[0]:.2f} · field arithmetic: {hot} · {cores} cores")
    from phe import paillier as phe_paillier

    KEYS = phe_paillier.generate_paillier_keypair(n_length=2048)
    public, private = KEYS
    batches = {name: measurements(name, args.n) for name in VARIANTS}
    values = measurements("Prio3Sum(255)", args.paillier_n)
    one: dict[str, float] = dict.fromkeys([*VARIANTS, "Paillier"], 0.0)
    both = dict(one)
    parts_one: dict[str, list[Any]] = {k: [] for k in one}
    parts_both: dict[str, list[Any]] = {k: [] for k in one}
    sizes: dict[str, int] = dict.fromkeys(VARIANTS, 0)

    best: dict[str, float] = dict.fromkeys(one, float("inf"))  # the fastest slice's seconds per report, one core

    def timed(spent: dict[str, float], key: str, f: Any, *a: Any) -> Any:
        t = time.perf_counter()
        out = f(*a)
        spent[key] += time.perf_counter() - t
        return out

    cpu: dict[str, float] = dict.fromkeys(one, 0.0)  # this process's CPU seconds, one core: what the load can't inflate

    def slice_timed(key: str, f: Any, chunk: list[Any]) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = timed(one, key, f, key, chunk) if key != "Paillier" else timed(one, key, f, chunk)
        best[key] = min(best[key], (time.perf_counter() - t) / len(chunk))
        cpu[key] += time.process_time() - c
        return out

    with (
        ProcessPoolExecutor(cores) as pool,
        ProcessPoolExecutor(cores, initializer=_init_paillier, initargs=(KEYS,)) as ppool,
    ):
        list(pool.map(aggregate, ["Prio3Count"] * cores, [[1]] * cores))  # start the workers
        list(ppool.map(paillier_part, [[1]] * cores))
        for name in VARIANTS:
            aggregate(name, batches[name][:20])  # warm the caches, as in a running node
        # The schemes take turns, a slice of each per round, so that a slow spell of the shared machine
        # falls on all of them alike.
        for r in range(rounds):
            for name in VARIANTS:
                chunk = batches[name][r::rounds]
                part = slice_timed(name, aggregate, chunk)
                parts_one[name].append(part)
                sizes[name] += part[2]
                parts = timed(
                    both,
                    name,
                    lambda c=chunk, n=name: list(pool.map(aggregate, [n] * cores, [c[i::cores] for i in range(cores)])),
                )
                parts_both[name] += parts
            chunk = values[r::rounds]
            parts_one["Paillier"].append(slice_timed("Paillier", paillier_part, chunk))
            parts_both["Paillier"] += timed(
                both, "Paillier", lambda c=chunk: list(ppool.map(paillier_part, [c[i::cores] for i in range(cores)]))
            )

    def decrypt(cts: list[int]) -> int:
        total = phe_paillier.EncryptedNumber(public, cts[0])
        for c in cts[1:]:
            total = total + phe_paillier.EncryptedNumber(public, c)
        return private.decrypt(total)

    for spent, parts in ((one, parts_one), (both, parts_both)):
        for name in VARIANTS:
            assert timed(spent, name, collect, name, parts[name]) == expected(name, batches[name])
        assert timed(spent, "Paillier", decrypt, parts["Paillier"]) == sum(values)
    rate_one = {k: (args.paillier_n if k == "Paillier" else args.n) / v for k, v in one.items()}
    rate_both = {k: (args.paillier_n if k == "Paillier" else args.n) / v for k, v in both.items()}
    size = ((public.n**2).bit_length() + 7) // 8

    cpu_each = {k: v / (args.paillier_n if k == "Paillier" else args.n) for k, v in cpu.items()}
    title = f"Private sums, end to end: {args.n:,} reports per Prio3 variant, {args.paillier_n:,} Paillier values"
    table = Table(title=title)
    for col in (
        "scheme", "one core", "both cores", "× Paillier, one core", "× Paillier, both", "best slice, one core",
        "CPU / report", "upload"
    ):  # fmt: skip
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for name in VARIANTS:
        table.add_row(name, f"{rate_one[name]:,.0f} /s", f"{rate_both[name]:,.0f} /s",
                      f"{rate_one[name] / rate_one['Paillier']:.1f}", f"{rate_both[name] / rate_both['Paillier']:.1f}",
                      f"{1 / best[name]:,.0f} /s ({best['Paillier'] / best[name]:.1f}×)",
                      f"{cpu[name] / args.n * 1e6:,.0f} µs ({cpu_each['Paillier'] / cpu_each[name]:.1f}×)",
                      f"{sizes[name] / args.n:,.0f} B")  # fmt: skip
    table.add_row("Paillier 2048 (phe + gmpy2), no validity proof", f"{rate_one['Paillier']:,.0f} /s",
                  f"{rate_both['Paillier']:,.0f} /s", "1.0", "1.0", f"{1 / best['Paillier']:,.0f} /s",
                  f"{cpu['Paillier'] / args.paillier_n * 1e6:,.0f} µs", f"{size:,} B")  # fmt: skip
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
