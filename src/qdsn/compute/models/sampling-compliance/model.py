"""Sampling compliance: each lot judged by the ISO 2859-1 plan the switching rules had in force."""

import sys

import orjson

from qdsn import quality


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    rules = quality.Switching(p["lot_size"], p.get("level", "II"), p["aql"])
    lots = sorted((r for ds in job["datasets"] for r in ds["records"]), key=lambda r: r["time"])
    accepted = rejected = under = wrong = 0
    for r in lots:
        if rules.state == "discontinued":
            break
        plan = rules.plan()
        under += r["sample_size"] < plan.n
        expected = plan.decide(r["defects"])
        wrong += expected != "undecided" and expected != r["decision"]
        accepted, rejected = accepted + (r["decision"] == "accept"), rejected + (r["decision"] == "reject")
        rules.record(r["defects"])
    ok = bool(lots) and not under and not wrong and rules.state != "discontinued"
    doc = {
        "pass": ok,
        "lots": len(lots),
        "accepted": accepted,
        "rejected": rejected,
        "undersampled": under,
        "wrong_decisions": wrong,
        "state": rules.state,
    }
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
