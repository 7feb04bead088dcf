"""The built-in multivariate-monitoring model in the sandbox: T², MCD, isolation forest and predictive
quality on rows of readings, its parameters leaving as a safe file whose hash is in the attested output."""

import base64

import jsonschema
import numpy as np
import orjson
import pytest

from qdsn.compute import package, params, sandbox
from qdsn.quality import learn
from qdsn.quality import multivariate as mv

NAMES = ["diameter", "tension", "temperature"]
SPEC = [{"name": n, "unit": "mm"} for n in NAMES]


def rows(m: int, seed: int = 0, shift_last: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.array([[0.1, 0, 0], [3.0, 20.0, 0], [1.0, 2.0, 8.0]])
    x = np.array([10.0, 200.0, 200.0]) + rng.normal(size=(m, 3)) @ a.T
    if shift_last:
        x[-shift_last:, 0] += 0.6  # a shift of the diameter alone, against its correlation with tension
    return x


def records(x: np.ndarray) -> list[dict]:
    return [{"characteristic": n, "value": float(v),
             "time": f"2026-03-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"}
            for i, row in enumerate(x) for n, v in zip(NAMES, row, strict=True)]  # fmt: skip


def run(parameters, x):
    folder = package.builtin("multivariate-monitoring")
    m = package.load(folder)[1]
    job = {"parameters": parameters, "datasets": [{"id": "d", "kind": "measurements", "characteristics": SPEC,
                                                   "records": records(x)}]}  # fmt: skip
    package.check_parameters(m, parameters)
    r = sandbox.run(folder, m.entrypoint, orjson.dumps(job))
    assert r.ok, r.stderr
    out = orjson.loads(r.stdout)
    jsonschema.validate(out, m.outputs)
    assert set(out) <= set(m.exports)
    return out


def test_t2_in_the_sandbox_gives_the_model_fitted_outside_it():
    x = rows(400)
    out = run({"method": "t2", "characteristics": NAMES}, x)
    assert out["pass"] and out["rows"] == 400 and out["variables"] == NAMES
    blob = base64.b64decode(out["parameters"])
    model = mv.T2Model.from_arrays(params.load_arrays(blob, out["parameters_sha256"]))
    outside = mv.phase1(x, names=tuple(NAMES))
    assert np.allclose(model.cov, outside.cov, rtol=1e-12) and out["ucl"] == pytest.approx(outside.ucl)
    assert out["ucl_phase1"] == pytest.approx(outside.ucl_phase1) and out["excluded"] == len(outside.excluded)


@pytest.mark.parametrize(("method", "shifted"), [("t2", 40), ("mcd", 100), ("isolation-forest", 100)])
def test_a_shifted_process_fails(method, shifted):
    """Phase I T² finds 8 % shifted rows; with 20 % they inflate the covariance and mask themselves (the
    classical estimate's weakness), which the MCD and the forest are there for."""
    out = run({"method": method, "max_signal_rate": 0.05}, rows(500, seed=1, shift_last=shifted))
    assert not out["pass"] and out["signal_rate"] > 0.05, out
    assert len(out["parameters_sha256"]) == 64 and out["parameters_format"] in ("npz", "skops")


def test_predictive_quality_reports_its_validation_error():
    x = rows(300, seed=2)
    out = run({"method": "predictive", "target": "temperature"}, x)
    model = learn.Predictive.from_arrays(params.load_arrays(base64.b64decode(out["parameters"]),
                                                            out["parameters_sha256"]))  # fmt: skip
    assert out["cv_rmse"] == pytest.approx(model.cv_rmse) and 7 < out["cv_rmse"] < 9  # the noise's σ is 8
    assert out["target"] == "temperature" and out["pass"]


def test_too_few_rows_or_a_constant_characteristic_fail_with_the_reason():
    out = run({"method": "t2"}, rows(4))
    assert not out["pass"] and "4 rows are too few for 3 variables" in out["reason"]
    x = rows(50)
    x[:, 1] = 200.0
    out = run({"method": "mcd"}, x)
    assert not out["pass"] and "tension do(es) not vary" in out["reason"]
    assert "reason" in run({"method": "predictive"}, x)


def test_the_attestation_names_the_trained_parameters(tmp_path):
    """Run through `execute` on anchored readings: the attestation's measurements carry the SHA-256 of the
    parameters file the output holds, and it verifies against the ledger."""
    from qdsn.compute import attest
    from qdsn.compute.job import Range, execute
    from qdsn.node import Node, NodeHome
    from qdsn.node.jobs import owner

    from .test_job import FAST, publish

    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", ledger_url=shared, scrypt_n=FAST)
    for h in (cqc, maker):
        reg.submit("identity.register", h.registration())
    node = Node(maker, operator=True)
    try:
        node.submit([maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                                    "characteristics": SPEC})])  # fmt: skip
        node.vault.create("line-1", "measurements")
        batch = node.vault.add_batch("line-1", records(rows(120)))
        node.vault.mark_anchored(batch, node.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
        blob, m = package.load(package.builtin("multivariate-monitoring"))
        publish(node, cqc, blob, m)
        r = execute(owner(node), blob, {"method": "t2", "characteristics": NAMES}, [Range("line-1", 0, 360)], "n-1",
                    job="job-1")  # fmt: skip
        assert r.status == "ok", r
        claims = attest.verify(r.attestation, node.ledger, output=r.output, nonce="n-1")
        trained = claims["measurements"]["trained"]
        assert trained == {"sha256": r.output["parameters_sha256"], "format": "npz"}
        data = base64.b64decode(r.output["parameters"])
        assert params.digest(data) == trained["sha256"]
        assert mv.T2Model.from_arrays(params.load_arrays(data, trained["sha256"])).n == 120
    finally:
        node.close()


def test_a_forest_is_attested_by_the_digest_its_owner_can_refit():
    """The forest's trees stay in the sandbox; the digest it exports is the one a refit of the same rows with
    the same seed gives outside it, and the one any saved copy of that forest opens under."""
    x = rows(300, seed=5)
    out = run({"method": "isolation-forest", "seed": 11, "characteristics": NAMES}, x)
    refit = learn.fit_isolation_forest(x, seed=11)
    assert out["parameters_format"] == "skops" and out["parameters_sha256"] == params.forest_digest(refit)
    from qdsn.compute import monitor

    blob = params.dump_estimator(refit)
    assert monitor.open_model(blob, out["parameters_sha256"]).digest == out["parameters_sha256"]
    assert params.forest_digest(learn.fit_isolation_forest(x, seed=12)) != out["parameters_sha256"]
