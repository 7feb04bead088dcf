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

MAX_ROWS = 10_000  # rows one `POST /ai/score` scores: with the forest's bounds, about a second of one core


@dataclass(frozen=True)
class Saved:
    """A model opened from its file: the method, the model, the columns it reads, in order, and the
    digest that names it (the file's SHA-256; a forest's canonical digest, as its attestation names it)."""

    method: str
    model: Any
    names: tuple[str, ...]
    digest: str = ""


def open_model(data: bytes, sha256: str) -> Saved:
    """The model in a parameters file named by `sha256` (IntegrityError when it is not): the file's SHA-256,
    or for a forest its canonical digest. A forest is rebuilt from its checked trees (`compute.forest`)."""
    if len(data) > params.MAX_BYTES:
        raise InvalidInput(f"the parameters file is {len(data)} bytes, above the {params.MAX_BYTES}-byte bound")
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        members = []
    if "schema.json" in members:
        forest, canonical = params.load_forest(data, sha256)
        return Saved("isolation-forest", forest, (), canonical)
    arrays = params.load_arrays(data, sha256)  # the hash before its format is even looked at
    if str(arrays.get("kind", "")) == "ridge":
        names = tuple(str(n) for n in arrays.get("names", []))
        return Saved("predictive", learn.Predictive.from_arrays(arrays), names, params.digest(data))
    model = mv.T2Model.from_arrays(arrays)
    return Saved(model.method, model, model.names, params.digest(data))


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
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"{len(rows)} rows are more than the {MAX_ROWS} one request scores",
                           "send them in several requests")  # fmt: skip
    saved = open_model(data, body["sha256"])
    scores, limit, label = score(saved, np.array(rows, dtype=float))
    if not np.isfinite(scores).all():
        raise InvalidInput("the rows hold values too large to score")
    return {"method": saved.method, "statistic": label, "limit": limit, "variables": list(saved.names),
            "scores": [float(s) for s in scores],
            "signals": [int(i) + 1 for i in np.flatnonzero(scores > limit)]}  # fmt: skip
