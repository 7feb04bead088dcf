"""Sandbox benchmark: the wall time of a trivial model under bubblewrap beside the same model as a bare
`python3` subprocess in the same run (the sandbox's overhead; target ≤ 200 ms), and a
process-capability job over 1,000,000 anchored measurements end to end — decrypt the pinned range,
run the model in the sandbox, validate and attest — beside decrypting the same records and computing
the same capability in-process.

    python benchmarks/sandbox.py [--runs 20] [--records 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from qdsn import quality
from qdsn.compute import package, sandbox
from qdsn.compute.job import Range, execute
from qdsn.node import Node, NodeHome
from qdsn.node.jobs import owner

TRIVIAL = "import sys\nsys.stdout.write(sys.stdin.read())\n"


def trivial(runs: int) -> tuple[float, float]:
    """Median seconds of the trivial model: bare subprocess, then under bwrap."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.py").write_text(TRIVIAL)
        bare, boxed = [], []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-I", "-B", str(Path(d) / "m.py")], input=b"{}", capture_output=True,
                           check=True)  # fmt: skip
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert sandbox.run(Path(d), "m.py", b"{}").ok
            boxed.append(time.perf_counter() - t)
    return statistics.median(bare), statistics.median(boxed)


def capability_job(records: int) -> tuple[float, float]:
    """Seconds for the sandboxed, attested job, and for decrypt + in-process capability."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        reg = NodeHome.init(root / "reg", "regulator", "SAMR", "pw", scrypt_n=2**4)
        shared = str(root / "reg" / "ledger.db")
        maker = NodeHome.init(root / "maker", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=2**4)
        cqc = NodeHome.init(root / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=2**4)
        for h in (maker, cqc):
            reg.submit("identity.register", h.registration())
        node = Node(maker, operator=True)
        spec = {"name": "r", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}
        declare = {"dataset": "line-1", "title": "Line 1", "kind": "measurements", "characteristics": [spec]}
        node.submit([maker.sign("dataset.declare", declare)])
        node.vault.create("line-1", "measurements")
        values = np.random.default_rng(1).normal(17.55, 0.08, records).round(4)
        step = 100_000
        for first in range(0, records, step):
            rows = [{"characteristic": "r", "value": float(v), "time": f"2026-03-01T08:00:{i % 60:02d}Z"}
                    for i, v in enumerate(values[first : first + step], start=first)]  # fmt: skip
            batch = node.vault.add_batch("line-1", rows)
            receipt = node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0]
            node.vault.mark_anchored(batch, receipt.txid)
        blob, m = package.load(package.builtin("process-capability"))
        node.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(blob),
                                               "manifest": m.model_dump(mode="json")})])  # fmt: skip
        t = time.perf_counter()
        r = execute(owner(node), blob, {}, [Range("line-1", 0, records)], "bench-nonce", job="bench")
        boxed = time.perf_counter() - t
        assert r.status == "ok", r.reason
        t = time.perf_counter()
        x = [rec["value"] for rec in node.vault.records("line-1", 0, records)]
        quality.capability(quality.subgroup(x, 5), lsl=17.0, usl=18.1)
        plain = time.perf_counter() - t
        node.close()
    return boxed, plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--records", type=int, default=1_000_000)
    a = ap.parse_args()
    if (why := sandbox.bwrap_works()) is not None:
        sys.exit(f"benchmarks/sandbox.py needs bubblewrap: {why}")
    bare, boxed = trivial(a.runs)
    job, plain = capability_job(a.records)
    table = Table(title="QDSN sandbox")
    for col in ("measure", "time", "baseline", "baseline time", "ratio"):
        table.add_column(col, justify="right" if "time" in col or col == "ratio" else "left")
    table.add_row("trivial model under bwrap (median)", f"{boxed * 1000:.0f} ms", "bare python3 subprocess",
                  f"{bare * 1000:.0f} ms", f"{boxed / bare:.2f}")  # fmt: skip
    table.add_row(f"process-capability job, {a.records:,} records", f"{job:.2f} s",
                  "decrypt + capability in-process", f"{plain:.2f} s", f"{job / plain:.2f}")  # fmt: skip
    Console().print(table)
    print(f"sandbox overhead: {(boxed - bare) * 1000:.0f} ms (target ≤ 200 ms)")


if __name__ == "__main__":
    main()
