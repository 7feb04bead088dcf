"""A saved quality model applied to new rows (phase II): open its parameters file — hash first, plain
arrays or trusted skops types only — and score rows against its limit."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from qdsn.compute import params
from qdsn.errors import InvalidInput
from qdsn.quality import learn
from qdsn.quality import multivariate as mv


@dataclass(frozen=True)
class Saved:
    """A model opened from its file: the method, the model and the columns it reads, in order."""

    method: str
    model: Any
    names: tuple[str, ...]


def open_model(data: bytes, sha256: str) -> Saved:
    """The model in a parameters file whose SHA-256 is `sha256` (IntegrityError when it is not)."""
    params.check(data, sha256, "parameters file")  # before its format is even looked at
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        members = []
    if "schema.json" in members:
        forest = params.load_estimator(data, sha256)
        return Saved("isolation-forest", forest, ())
    arrays = params.load_arrays(data, sha256)
    if str(arrays.get("kind", "")) == "ridge":
        names = tuple(str(n) for n in arrays.get("names", []))
        return Saved("predictive", learn.Predictive.from_arrays(arrays), names)
    model = mv.T2Model.from_arrays(arrays)
    return Saved(model.method, model, model.names)


def score(saved: Saved, rows: Any, alpha: float = mv.ALPHA) -> tuple[np.ndarray, float, str]:
    """(scores, limit, what the score is) of each row. A predictive model's rows hold the target first."""
    x = np.asarray(rows, dtype=float) if not isinstance(rows, np.ndarray) else rows
    if x.ndim != 2:
        raise InvalidInput("rows are a list of lists of numbers, one list per observation")
    if saved.method == "predictive":
        if x.shape[1] < 2:
            raise InvalidInput("a predictive model's rows hold the characteristic and then the process parameters")
        limit = float(stats.norm.ppf(1 - alpha / 2))
        return saved.model.residual_score(x[:, 1:], x[:, 0]), limit, "|r|/σ"
    if saved.method == "isolation-forest":
        if x.shape[1] != saved.model.n_features_in_:
            raise InvalidInput(f"the forest reads {saved.model.n_features_in_} variables, the rows have {x.shape[1]}")
        return learn.anomaly_score(saved.model, x), float(-saved.model.offset_), "anomaly score"
    return saved.model.score(x), saved.model.ucl, "T²"


def answer(body: Any) -> dict[str, Any]:
    """The API's `POST /ai/score`: {"model": base64 parameters file, "sha256": hex, "rows": [[number, …], …]}
    → each row's score, the limit and the rows above it (numbered from 1)."""
    import base64
    import binascii

    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(body.get("sha256"), str) \
            or not isinstance(body.get("rows"), list):  # fmt: skip
        raise InvalidInput('the body is {"model": "<base64 parameters file>", "sha256": "<hex>", "rows": [[…], …]}')
    try:
        data = base64.b64decode(body["model"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("model is not base64") from None
    rows = body["rows"]
    if not rows or not all(isinstance(r, list) and r and len(r) == len(rows[0]) for r in rows) or not all(
            type(v) in (int, float) for r in rows for v in r):  # fmt: skip
        raise InvalidInput("rows are lists of numbers, all of one length, at least one row")
    saved = open_model(data, body["sha256"])
    scores, limit, label = score(saved, np.array(rows, dtype=float))
    if not np.isfinite(scores).all():
        raise InvalidInput("the rows hold values too large to score")
    return {"method": saved.method, "statistic": label, "limit": limit, "variables": list(saved.names),
            "scores": [float(s) for s in scores],
            "signals": [int(i) + 1 for i in np.flatnonzero(scores > limit)]}  # fmt: skip
