"""Multivariate process monitoring on rows of readings taken at the same time.

Reads one job on stdin — {"parameters", "datasets": [{"id", "kind", "characteristics", "records"}]} —
and prints one JSON document. A row is one time stamp at which every chosen characteristic was read.
t2: phase I (rows above the beta limit dropped and the estimates refitted), then each row judged
against the phase II F limit. mcd: the robust estimates, χ² limit. isolation-forest: rows scoring above
the anomaly score 0.5 (Liu, Ting and Zhou). predictive: `target` from the other characteristics by ridge
regression, rows whose residual exceeds the normal quantile of 1 − α/2 in units of the cross-validated
error. The fitted parameters go out as plain arrays (an .npz, base64) with their SHA-256, which the
attestation then signs with the rest of the output; a forest's trees exceed the output bound, so only
their canonical digest leaves (`compute.forest`: the same for the same trees, however saved), which the
owner re-derives with `qdsn ai train` from the same rows and seed.
"""

import base64
import sys

import numpy as np
import orjson
from scipy import stats

from qdsn.compute import params
from qdsn.errors import InvalidInput
from qdsn.quality import learn
from qdsn.quality import multivariate as mv


def table(job: dict, names: list[str]) -> np.ndarray:
    """Rows × characteristics, in time order, keeping the times at which every one was read."""
    at: dict[str, dict[str, float]] = {}
    for ds in job["datasets"]:
        for r in ds["records"]:
            if r["characteristic"] in names:
                at.setdefault(r["time"], {})[r["characteristic"]] = r["value"]
    rows = [[v[n] for n in names] for _, v in sorted(at.items()) if len(v) == len(names)]
    return np.array(rows, dtype=float).reshape(len(rows), len(names))


def fit(p: dict, x: np.ndarray, names: list[str], doc: dict) -> tuple[np.ndarray, float, bytes, str]:
    """(scores, limit, parameters file, its format) for the chosen method."""
    alpha, seed, method = p.get("alpha", mv.ALPHA), p.get("seed", 0), doc["method"]
    if method == "predictive":
        target = p["target"]
        i = names.index(target)
        model = learn.fit_predictive(np.delete(x, i, axis=1), x[:, i], seed=seed)
        doc.update(cv_rmse=model.cv_rmse, cv_r2=model.cv_r2)
        limit = float(stats.norm.ppf(1 - alpha / 2))
        return model.residual_score(np.delete(x, i, axis=1), x[:, i]), limit, params.dump_arrays(model.arrays()), "npz"
    if method == "isolation-forest":
        forest = learn.fit_isolation_forest(x, seed=seed)  # limit 0.5: Liu, Ting and Zhou's anomaly score
        return learn.anomaly_score(forest, x), float(-forest.offset_), params.dump_estimator(forest), "skops"
    model = mv.phase1(x, alpha=alpha, names=tuple(names)) if method == "t2" else \
        mv.fit_mcd(x, alpha=alpha, names=tuple(names), seed=seed)  # fmt: skip
    doc.update(ucl_phase1=model.ucl_phase1, excluded=len(model.excluded))
    return model.score(x), model.ucl, params.dump_arrays(model.arrays()), "npz"


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    declared = sorted({c["name"] for ds in job["datasets"] for c in ds["characteristics"]})
    names = list(p.get("characteristics") or declared)
    doc: dict = {"pass": False, "method": p.get("method", "t2"), "variables": names, "rows": 0}
    if doc["method"] == "predictive":
        if p.get("target") not in names:
            doc["reason"] = "the predictive model needs a target among the characteristics"
            sys.stdout.buffer.write(orjson.dumps(doc))
            return
        doc["target"] = p["target"]
    x = table(job, names)
    doc["rows"] = int(x.shape[0])
    try:
        scores, limit, blob, form = fit(p, x, names, doc)
    except InvalidInput as e:  # too few rows, a constant or dependent characteristic: said, and a fail
        doc["reason"] = e.what[:500]
        sys.stdout.buffer.write(orjson.dumps(doc))
        return
    signals = int((scores > limit).sum())
    rate = signals / len(scores)
    doc.update(
        alpha=p.get("alpha", mv.ALPHA),
        ucl=limit,
        signals=signals,
        signal_rate=rate,
        parameters_format=form,
        # a forest's skops bytes differ on every dump and its trees stay here: its canonical digest is what
        # the owner can re-derive (`qdsn ai train` with the same rows and seed prints it)
        parameters_sha256=params.forest_digest(params.load_estimator(blob, params.digest(blob)))
        if form == "skops"
        else params.digest(blob),
    )
    if len(blob) * 4 // 3 + 4 <= 262144:
        doc["parameters"] = base64.b64encode(blob).decode()
    doc["pass"] = rate <= p.get("max_signal_rate", 0.01)
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
