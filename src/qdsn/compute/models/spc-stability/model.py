"""SPC stability: no run-rule violations in the last N subgroups of each critical characteristic.

Limits come from the whole period read (phase I); violations are counted only where they end in the
last N subgroups, so an old, corrected excursion does not fail today's process.
"""

import sys

import orjson

from qdsn import quality


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    size, last = p.get("subgroup", 5), p.get("last", 25)
    rules = p.get("rules", ["nelson1", "nelson2", "nelson3", "nelson4"])
    wanted: set[str] = set(p.get("characteristics", ()))
    values: dict[str, list[tuple[str, float]]] = {}
    for ds in job["datasets"]:
        critical = {c["name"] for c in ds["characteristics"] if c.get("critical")}
        for r in ds["records"]:
            if r["characteristic"] in (wanted or critical):
                values.setdefault(r["characteristic"], []).append((r["time"], r["value"]))
    out = []
    for name in sorted(wanted or values):
        x = [v for _, v in sorted(values.get(name, []))]
        groups = len(x) // size if size > 1 else len(x)
        if groups < max(last, 2):
            out.append({"name": name, "chart": "none", "subgroups": groups, "violations": {}, "pass": False})
            continue
        chart = quality.xbar_r(quality.subgroup(x, size), rules=rules) if size > 1 else quality.imr(x, rules=rules)
        start = chart.statistic.size - last
        counts: dict[str, int] = {}
        for v in chart.violations:
            if v.index >= start:
                counts[v.rule] = counts.get(v.rule, 0) + 1
        out.append(
            {
                "name": name,
                "chart": "xbar-r" if size > 1 else "imr",
                "subgroups": last,
                "violations": counts,
                "pass": not counts,
            }
        )
    doc = {"pass": bool(out) and all(c["pass"] for c in out), "rules": rules, "characteristics": out}
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
