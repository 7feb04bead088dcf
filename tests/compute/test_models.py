"""The built-in certification models, each run in the sandbox on crafted jobs: the verdicts a
certifier expects, outputs that fit their manifests, and no raw values among what may leave."""

import jsonschema
import numpy as np
import orjson
import pytest

from qdsn.compute import package, sandbox

SPEC = [{"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}]


def run(model, parameters, records, characteristics=SPEC):
    folder = package.builtin(model)
    m = package.load(folder)[1]
    ds = {"id": "d", "kind": m.reads.kinds[0], "characteristics": characteristics, "records": records}
    job = {"parameters": parameters, "datasets": [ds]}
    r = sandbox.run(folder, m.entrypoint, orjson.dumps(job))
    assert r.ok, r.stderr
    out = orjson.loads(r.stdout)
    jsonschema.validate(out, m.outputs)
    assert set(out) <= set(m.exports)  # everything a built-in model prints may leave
    return out


def readings(values, start=0):
    return [{"characteristic": "resistance", "value": float(v), "time": f"2026-03-01T{(start + i) // 3600:02d}:"
             f"{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}Z"} for i, v in enumerate(values)]  # fmt: skip


def test_process_capability():
    rng = np.random.default_rng(5)
    good = run("process-capability", {"threshold": 1.33}, readings(rng.normal(17.55, 0.08, 500)))
    assert good["pass"] and good["characteristics"][0]["cpk_lower"] >= 1.33
    wide = run("process-capability", {"threshold": 1.33}, readings(rng.normal(17.55, 0.2, 500)))
    assert not wide["pass"] and wide["characteristics"][0]["cpk"] < 1.0
    stuck = run("process-capability", {}, readings([17.5] * 100))  # a gauge that never moves proves nothing
    assert not stuck["pass"] and stuck["characteristics"][0]["n"] == 100


def test_spc_stability():
    rng = np.random.default_rng(6)
    steady = rng.normal(17.55, 0.05, 250)
    assert run("spc-stability", {"last": 25}, readings(steady))["pass"]
    shifted = np.concatenate([steady[:200], rng.normal(17.65, 0.05, 50)])  # a 2σ shift in the last 10 subgroups
    out = run("spc-stability", {"last": 25, "rules": ["nelson"]}, readings(shifted))
    (c,) = out["characteristics"]
    assert not out["pass"] and c["violations"] and c["subgroups"] == 25
    assert not run("spc-stability", {"last": 25}, readings(steady[:40]))["pass"]  # too little to judge


def lots(sizes_defects, decision=None):
    return [{"id": f"i{i}", "lot": f"L{i}", "time": f"2026-03-{i + 1:02d}T08:00:00Z", "sampling_plan": "II 1.0",
             "sample_size": n, "defects": d, "decision": decision or ("accept" if d <= 2 else "reject"),
             "inspector": "QC"} for i, (n, d) in enumerate(sizes_defects)]  # fmt: skip


def test_defect_rate_uses_the_upper_bound():
    clean = run("defect-rate", {"limit_ppm": 1000}, lots([(1000, 0)] * 3))
    # d = 0: the bound is 1 − α^(1/n) exactly
    assert clean["pass"] and clean["ppm"] == 0 and clean["ppm_upper"] == pytest.approx(998.079, abs=0.001)
    few = run("defect-rate", {"limit_ppm": 1000}, lots([(1000, 0)] * 2))  # not enough evidence yet
    assert not few["pass"] and few["ppm_upper"] == pytest.approx(1496.745, abs=0.001)


def test_sampling_compliance_follows_iso_2859_1():
    # lot 1000, level II, AQL 1.0: code J, normal plan n = 80, Ac 2, Re 3
    assert run("sampling-compliance", {"lot_size": 1000, "aql": 1.0}, lots([(80, 0)] * 6))["pass"]
    short = run("sampling-compliance", {"lot_size": 1000, "aql": 1.0}, lots([(80, 0), (50, 0)]))
    assert not short["pass"] and short["undersampled"] == 1
    lenient = run("sampling-compliance", {"lot_size": 1000, "aql": 1.0}, lots([(80, 3)], decision="accept"))
    assert not lenient["pass"] and lenient["wrong_decisions"] == 1
    bad = run("sampling-compliance", {"lot_size": 1000, "aql": 1.0}, lots([(80, 5)] * 2))
    assert bad["state"] == "tightened" and bad["rejected"] == 2


def test_data_integrity():
    feed = readings(np.full(100, 17.5))[::1]
    every_minute = [r | {"time": f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00Z"} for i, r in enumerate(feed)]
    full = run("data-integrity", {"interval_seconds": 60}, every_minute)
    assert full["pass"] and full["completeness"] == 1.0 and full["max_gap_seconds"] == 60
    holey = every_minute[:40] + every_minute[46:]
    gaps = run("data-integrity", {"interval_seconds": 60}, holey)
    assert not gaps["pass"] and gaps["completeness"] == 0.94 and gaps["max_gap_seconds"] == 420
    signed = run("data-integrity", {"interval_seconds": 60, "min_signed": 0.5},
                 [r | {"signed": True} if i % 2 else r for i, r in enumerate(every_minute)])  # fmt: skip
    assert signed["pass"] and signed["signed"] == 0.5
