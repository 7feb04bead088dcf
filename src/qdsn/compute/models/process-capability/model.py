"""Process capability: Cpk and its lower confidence bound for each critical characteristic.

Reads one job on stdin — {"parameters", "datasets": [{"id", "kind", "characteristics", "records"}]} —
and prints one JSON document. Readings are cut into rational subgroups in time order; σ within is
the pooled standard deviation (c4-unbiased), the interval Bissell's.
"""

import sys

import orjson

from qdsn import quality


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    threshold, confidence, size = p.get("threshold", 1.33), p.get("confidence", 0.95), p.get("subgroup", 5)
    values: dict[str, list[float]] = {}
    limits: dict[str, tuple[float | None, float | None]] = {}
    for ds in job["datasets"]:
        for c in ds["characteristics"]:
            if c.get("critical") or c["name"] in p.get("characteristics", ()):
                limits[c["name"]] = (c.get("lsl"), c.get("usl"))
        for r in sorted(ds["records"], key=lambda r: r["time"]):
            if r["characteristic"] in limits:
                values.setdefault(r["characteristic"], []).append(r["value"])
    wanted = p.get("characteristics") or sorted(limits)
    out = []
    for name in wanted:
        x = values.get(name, [])
        lsl, usl = limits.get(name, (None, None))
        if len(x) < 2 * size or (lsl is None and usl is None):
            out.append({"name": name, "n": len(x), "cpk": 0.0, "cpk_lower": 0.0, "pass": False})
            continue
        try:
            cap = quality.capability(quality.subgroup(x, size), lsl=lsl, usl=usl, confidence=confidence)
        except ValueError:  # readings that do not vary: a stuck gauge, not a capable process
            out.append({"name": name, "n": len(x), "cpk": 0.0, "cpk_lower": 0.0, "pass": False})
            continue
        low = cap.intervals["cpk"].low
        out.append(
            {
                "name": name,
                "n": len(x),
                "cpk": round(cap.cpk, 4),
                "cpk_lower": round(low, 4),
                "pass": bool(low >= threshold),
            }
        )
    doc = {
        "pass": bool(out) and all(c["pass"] for c in out),
        "threshold": threshold,
        "confidence": confidence,
        "characteristics": out,
    }
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
