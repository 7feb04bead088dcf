"""Data integrity: is the feed complete, timely and traceable to its instruments?

Per characteristic, the readings expected over the period are its span divided by the interval, plus
one; completeness is what arrived over what was expected, summed over characteristics. A reading
counts as signed when the vault kept its device's verified signature with it (the node marks it
`"signed": true`).
"""

import itertools
import sys
from datetime import datetime

import orjson


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    interval = p["interval_seconds"]
    times: dict[str, list[float]] = {}
    signed = total = 0
    for ds in job["datasets"]:
        for r in ds["records"]:
            t = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
            times.setdefault(r["characteristic"], []).append(t)
            total += 1
            signed += r.get("signed", False) is True
    expected = gap = 0.0
    period = 0.0
    for ts in times.values():
        ts.sort()
        expected += (ts[-1] - ts[0]) / interval + 1
        gap = max([gap, *(b - a for a, b in itertools.pairwise(ts))])
        period = max(period, ts[-1] - ts[0])
    completeness = min(total / expected, 1.0) if expected else 0.0
    share = signed / total if total else 0.0
    max_gap = p.get("max_gap_seconds", 3 * interval)
    ok = total > 0 and completeness >= p.get("min_completeness", 0.98) and gap <= max_gap
    ok = ok and share >= p.get("min_signed", 0)
    doc = {
        "pass": ok,
        "readings": total,
        "completeness": round(completeness, 4),
        "max_gap_seconds": gap,
        "signed": round(share, 4),
        "characteristics": len(times),
        "period_seconds": period,
    }
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
