"""Defect rate: ppm of nonconforming items over every inspection read, and its upper bound.

The bound is the exact one-sided Clopper-Pearson limit, Beta⁻¹(confidence; d + 1, n − d), so a
clean record from few samples does not pass for a low rate it has not shown.
"""

import sys

import orjson
from scipy.stats import beta

from qdsn import quality


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    limit, confidence = p.get("limit_ppm", 1000), p.get("confidence", 0.95)
    n = d = lots = 0
    for ds in job["datasets"]:
        for r in ds["records"]:
            n, d, lots = n + r["sample_size"], d + r["defects"], lots + 1
    if n == 0:
        doc = {"pass": False, "ppm": 0.0, "ppm_upper": 1e6, "limit_ppm": limit, "inspected": 0, "lots": 0}
    else:
        upper = 1.0 if d >= n else float(beta.ppf(confidence, d + 1, n - d))
        ppm = quality.dpmo(d, n)
        doc = {
            "pass": upper * 1e6 <= limit,
            "ppm": round(ppm, 3),
            "ppm_upper": round(upper * 1e6, 3),
            "limit_ppm": limit,
            "confidence": confidence,
            "inspected": n,
            "lots": lots,
            "sigma_level": round(quality.sigma_level(max(ppm, 1e-3)), 3),
        }
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
