"""Learned quality models beside T²: an unsupervised anomaly detector (scikit-learn's Isolation Forest)
and a predictive-quality model (a characteristic predicted from process parameters by ridge regression,
with its cross-validated error). Pure functions over numpy arrays.

Isolation Forest rather than Local Outlier Factor: LOF scores a new row by its distances to the training
rows, so its fitted model *is* the owner's data; a forest keeps split points only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from qdsn.errors import InvalidInput
from qdsn.quality.multivariate import _rows

# Scoring walks every tree for every row, so its time is proportional to the trees (about 40 ns a tree and
# row). On the benchmark's process (`benchmarks/ai.py`, 8 processes × 2 forest seeds) 64 trees detect as
# 100 do — ROC-AUC 0.691 ± 0.038 against 0.696 ± 0.033, PR-AUC 0.0170 against 0.0171 — in 64 % of the time;
# below 48 trees the spread between forests grows (± 0.045 and more). Threads do not pay here: two
# threads walking the trees over halves of the rows took 0.9 of one thread's time on two shared cores.
TREES = 64
# The smallest validation error a predictive model reports, as a share of the characteristic's standard
# deviation: below it the error is floating-point rounding, not the model's; a perfectly linear
# characteristic would otherwise have an error of 0 and every residual an infinite score.
RESOLUTION = 1e-9


def fit_isolation_forest(x: Any, *, seed: int = 0, trees: int = TREES, contamination: float | str = "auto") -> Any:
    """A fitted `sklearn.ensemble.IsolationForest` (256 rows per tree, as Liu, Ting and Zhou propose)."""
    from sklearn.ensemble import IsolationForest

    a = _rows(x)
    if a.shape[0] < 16:
        raise InvalidInput(f"{a.shape[0]} rows are too few for an isolation forest", "fit on at least 16 rows")
    return IsolationForest(n_estimators=trees, max_samples=min(256, a.shape[0]), contamination=contamination,
                           random_state=seed).fit(a)  # fmt: skip


def anomaly_score(forest: Any, x: Any) -> np.ndarray:
    """Higher is more anomalous (the negated `score_samples`, in (0, 1]), the whole batch in one call."""
    return np.asarray(-forest.score_samples(_rows(x)))


@dataclass(frozen=True)
class Predictive:
    """y ≈ intercept + x·coef, with the penalty chosen and the error measured by k-fold cross-validation."""

    coef: np.ndarray
    intercept: float
    penalty: float
    cv_rmse: float  # root mean squared error on held-out folds, at least RESOLUTION · σ(y)
    cv_r2: float
    folds: int

    def __post_init__(self) -> None:
        # the unit of `residual_score`: a model from elsewhere with an error of 0, or not a number, is refused
        if not (math.isfinite(self.cv_rmse) and self.cv_rmse > 0):
            raise InvalidInput(f"a predictive model's cross-validated error must be a positive number, not "
                               f"{self.cv_rmse}", "refit it with `qdsn ai train --method predictive`")  # fmt: skip
        numbers = [self.intercept, self.penalty, self.cv_r2, *np.asarray(self.coef, float).reshape(-1)]
        if not all(math.isfinite(v) for v in numbers) or self.folds < 2:
            raise InvalidInput("a predictive model's coefficients, penalty and R² must be finite numbers, on 2 or "
                               "more folds")  # fmt: skip

    def predict(self, x: Any) -> np.ndarray:
        a = _rows(x)
        if a.shape[1] != self.coef.shape[0]:
            raise InvalidInput(f"the model takes {self.coef.shape[0]} process parameters, the data has {a.shape[1]}")
        return a @ self.coef + self.intercept

    def residual_score(self, x: Any, y: Any) -> np.ndarray:
        """|y − ŷ| in units of the cross-validated error: how surprising each observed characteristic is."""
        return np.asarray(np.abs(np.asarray(y, float) - self.predict(x)) / self.cv_rmse)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"kind": np.array("ridge"), "coef": self.coef, "intercept": np.array(self.intercept),
                "penalty": np.array(self.penalty), "cv_rmse": np.array(self.cv_rmse), "cv_r2": np.array(self.cv_r2),
                "folds": np.array(self.folds)}  # fmt: skip

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Predictive:
        try:
            if str(a["kind"]) != "ridge":
                raise ValueError("kind is not ridge")
            return cls(np.asarray(a["coef"], float).reshape(-1), float(a["intercept"]), float(a["penalty"]),
                       float(a["cv_rmse"]), float(a["cv_r2"]), int(a["folds"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a predictive model's parameters: {e}") from None


def fit_predictive(x: Any, y: Any, *, folds: int = 5, seed: int = 0) -> Predictive:
    """Ridge regression of y on x: the penalty chosen from a log grid by generalised cross-validation,
    then the model's error measured on `folds` held-out folds (the penalty re-chosen inside each)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_validate

    a, t = _rows(x, "the process parameters"), _rows(y, "the characteristic")
    if t.shape[1] != 1 or t.shape[0] != a.shape[0]:
        raise InvalidInput(f"give one characteristic value per row: {a.shape[0]} rows of parameters, "
                           f"{t.shape[0]}×{t.shape[1]} values")  # fmt: skip
    if a.shape[0] < max(2 * folds, a.shape[1] + 2):
        raise InvalidInput(f"{a.shape[0]} rows are too few to fit {a.shape[1]} parameters and validate on {folds} "
                           "folds", "collect more rows")  # fmt: skip
    if not np.ptp(t) > 0:
        raise InvalidInput("the characteristic does not vary: there is nothing to predict")
    t = t[:, 0]
    grid = np.logspace(-4, 4, 17)
    cv = cross_validate(RidgeCV(alphas=grid), a, t, cv=KFold(folds, shuffle=True, random_state=seed),
                        scoring=("neg_root_mean_squared_error", "r2"))  # fmt: skip
    ridge = RidgeCV(alphas=grid).fit(a, t)
    rmse, r2 = float(-cv["test_neg_root_mean_squared_error"].mean()), float(cv["test_r2"].mean())
    rmse = max(rmse, RESOLUTION * float(np.std(t)))  # a perfect fit's error is rounding: see RESOLUTION
    return Predictive(np.asarray(ridge.coef_, float), float(ridge.intercept_), float(ridge.alpha_), rmse, r2, folds)
