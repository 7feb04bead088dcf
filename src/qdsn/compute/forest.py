"""An isolation forest as plain arrays: checked node by node, rebuilt from nothing else, and named by a
canonical digest.

A forest's file comes from another party (`POST /ai/score`, `qdsn ai score`), who also gives its hash, so
the hash proves nothing about what the file holds. scikit-learn's tree walker trusts its node arrays (a
child index past the end reads and jumps anywhere: a crash at best), so a loaded forest is never scored
as loaded: `canonical` takes out only the arrays scoring needs, `check` proves them a tree that
`IsolationForest.fit` could have grown (children after their parent, within the tree; features of the
data; finite thresholds; samples split exactly; depth within the fit's bound), and `rebuild` makes a fresh
forest from them — the loaded object's other attributes (its parallelism, its cached path lengths) are
dropped, the path lengths recomputed from the checked trees.

The canonical arrays are also what an attestation names (`digest`): skops writes one forest as different
bytes each time, so a file's SHA-256 names that file only, while the digest is the same for the same
trees however they were saved, and can be re-derived by the owner from a refit or any saved copy.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from qdsn.crypto import sha256
from qdsn.errors import InvalidInput

LEAF, UNDEFINED = -1, -2  # scikit-learn's TREE_LEAF and TREE_UNDEFINED
MAX_TREES = 1024  # QDSN fits 64 (`learn.TREES`)
MAX_SAMPLES = 4096  # rows per tree; QDSN fits 256, as Liu, Ting and Zhou propose
MAX_FEATURES = 256
NODE_FIELDS = ("left", "right", "feature", "threshold", "samples", "value")
VERSION = b"qdsn/isolation-forest/1"


def canonical(forest: Any) -> dict[str, Any]:
    """The arrays that define a fitted forest's scores (int64 and float64), in a fixed form; InvalidInput
    when the object is not a forest of regression trees."""
    try:
        trees = []
        for est in forest.estimators_:
            t = est.tree_
            trees.append({"left": np.array(t.children_left, dtype=np.int64),
                          "right": np.array(t.children_right, dtype=np.int64),
                          "feature": np.array(t.feature, dtype=np.int64),
                          "threshold": np.array(t.threshold, dtype=np.float64),
                          "samples": np.array(t.n_node_samples, dtype=np.int64),
                          "value": np.array(t.value, dtype=np.float64).reshape(t.node_count, -1)})  # fmt: skip
        return {"trees": trees, "features": [np.array(f, dtype=np.int64) for f in forest.estimators_features_],
                "n_features": int(forest.n_features_in_), "max_samples": int(forest.max_samples_),
                "offset": float(forest.offset_)}  # fmt: skip
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise InvalidInput(f"the model is not an isolation forest of regression trees ({e})") from None


def _bad(what: str) -> InvalidInput:
    return InvalidInput(f"the isolation forest is not one a fit could grow: {what}",
                        "use the parameters file `qdsn ai train` or the model wrote")  # fmt: skip


def check(c: dict[str, Any]) -> None:
    """InvalidInput unless `c` is a forest `IsolationForest.fit` could have grown, within QDSN's bounds."""
    p, m, trees = c["n_features"], c["max_samples"], c["trees"]
    if not 1 <= p <= MAX_FEATURES:
        raise _bad(f"it reads {p} variables (1 to {MAX_FEATURES})")
    if not 2 <= m <= MAX_SAMPLES:
        raise _bad(f"{m} rows per tree (2 to {MAX_SAMPLES})")
    if not 1 <= len(trees) <= MAX_TREES:
        raise _bad(f"{len(trees)} trees (1 to {MAX_TREES})")
    if not math.isfinite(c["offset"]):
        raise _bad("its offset is not a finite number")
    if len(c["features"]) != len(trees):
        raise _bad(f"{len(c['features'])} feature lists for {len(trees)} trees")
    for k, f in enumerate(c["features"]):
        # every variable, each once: the forests QDSN fits draw all of them (max_features = 1.0)
        if f.ndim != 1 or sorted(f.tolist()) != list(range(p)):
            raise _bad(f"tree {k + 1}'s variables are not each of the {p} once")
    depth = math.ceil(math.log2(m))  # the fit's own bound
    for k, t in enumerate(trees):
        _check_tree(k + 1, t, p, m, depth)


def _check_tree(k: int, t: dict[str, np.ndarray], p: int, m: int, depth: int) -> None:
    n = t["left"].shape[0] if t["left"].ndim == 1 else -1
    if not 1 <= n <= 2 * m - 1:
        raise _bad(f"tree {k} has {n} nodes (1 to {2 * m - 1})")
    if any(t[f].shape[0] != n or t[f].ndim != (2 if f == "value" else 1) for f in NODE_FIELDS):
        raise _bad(f"tree {k}'s node arrays differ in length")
    if t["value"].shape[1] != 1 or not np.isfinite(t["value"]).all():
        raise _bad(f"tree {k}'s values are not one finite number a node")
    left, right, feature, threshold, samples = (t[f] for f in NODE_FIELDS[:5])
    index = np.arange(n)
    leaf = left == LEAF
    if not np.array_equal(leaf, right == LEAF):
        raise _bad(f"tree {k} has a node with one child")
    inner = ~leaf
    # children after their parent and within the tree: every walk ends at a leaf, inside the arrays
    if not (
        (left[inner] > index[inner]) & (left[inner] < n) & (right[inner] > index[inner]) & (right[inner] < n)
    ).all():
        raise _bad(f"tree {k} has a child index out of its {n} nodes")
    kids = np.concatenate([left[inner], right[inner]])
    if np.unique(kids).shape[0] != kids.shape[0] or kids.shape[0] != n - 1:
        raise _bad(f"tree {k}'s nodes are not one tree (a node with two parents, or none)")
    if not ((feature[inner] >= 0) & (feature[inner] < p)).all() or not (feature[leaf] == UNDEFINED).all():
        raise _bad(f"tree {k} splits on a variable outside 0 to {p - 1}, or a leaf names one")
    if not np.isfinite(threshold[inner]).all():
        raise _bad(f"tree {k} has a threshold that is not a finite number")
    if not (samples >= 1).all() or samples[0] > m:
        raise _bad(f"tree {k}'s node sample counts are not 1 to {m}")
    if not np.array_equal(samples[left[inner]] + samples[right[inner]], samples[inner]):
        raise _bad(f"tree {k}'s children do not split their parent's samples")
    level = np.zeros(n, dtype=np.int64)
    for i in np.flatnonzero(inner):  # parents come first, so one pass gives every depth
        level[left[i]] = level[right[i]] = level[i] + 1
    if level.max() > depth:
        raise _bad(f"tree {k} is {int(level.max())} deep, past the {depth} of {m} rows")


def rebuild(c: dict[str, Any]) -> Any:
    """A fresh, scoreable `IsolationForest` made only from checked canonical arrays (call `check` first)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.ensemble._iforest import _average_path_length
    from sklearn.tree import ExtraTreeRegressor
    from sklearn.tree._tree import NODE_DTYPE, Tree

    p, m = c["n_features"], c["max_samples"]
    forest = IsolationForest(n_estimators=len(c["trees"]), max_samples=m)
    estimators = []
    for t in c["trees"]:
        n = t["left"].shape[0]
        nodes = np.zeros(n, dtype=NODE_DTYPE)
        nodes["left_child"], nodes["right_child"], nodes["feature"] = t["left"], t["right"], t["feature"]
        nodes["threshold"], nodes["n_node_samples"] = t["threshold"], t["samples"]
        nodes["weighted_n_node_samples"] = t["samples"]
        tree = Tree(p, np.array([1], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": math.ceil(math.log2(m)), "node_count": n, "nodes": nodes,
                           "values": np.ascontiguousarray(t["value"].reshape(n, 1, 1))})  # fmt: skip
        est = ExtraTreeRegressor(max_features=1)
        est.tree_, est.n_features_in_, est.n_outputs_, est.max_features_ = tree, p, 1, p
        estimators.append(est)
    forest.estimators_, forest.estimators_features_ = estimators, [f.copy() for f in c["features"]]
    forest.estimator_ = ExtraTreeRegressor(max_features=1)
    forest.n_features_in_, forest._max_features = p, p
    forest.max_samples_, forest._max_samples, forest._n_samples = m, m, m
    forest.offset_ = c["offset"]
    forest._average_path_length_per_tree = tuple(_average_path_length(e.tree_.n_node_samples) for e in estimators)
    forest._decision_path_lengths = tuple(e.tree_.compute_node_depths() for e in estimators)
    return forest


def digest(c: dict[str, Any]) -> str:
    """The SHA-256 of the canonical encoding: a version tag, the forest's numbers, then each tree's arrays
    in a fixed order, each with its dtype and shape, all lengths prefixed."""
    parts = [VERSION, struct.pack("<qqd", c["n_features"], c["max_samples"], c["offset"]),
             struct.pack("<q", len(c["trees"]))]  # fmt: skip
    for t, f in zip(c["trees"], c["features"], strict=True):
        for a in (*(t[name] for name in NODE_FIELDS), f):
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
            head = f"{a.dtype.str}{list(a.shape)}".encode()
            parts += [struct.pack("<q", len(head)), head, struct.pack("<q", a.nbytes), a.tobytes()]
    return sha256(b"".join(parts)).hex()


def of(forest: Any) -> tuple[Any, str]:
    """(the forest rebuilt from its checked arrays, their canonical digest); InvalidInput when unsound."""
    c = canonical(forest)
    check(c)
    return rebuild(c), digest(c)
