"""An isolation forest from another party: its file and its hash are both theirs, so the trees are checked
node by node and the forest rebuilt from them before a row is scored; and one forest has one digest,
however it was saved, for the attestation to name."""

import subprocess
import sys

import numpy as np
import pytest

from qdsn.compute import forest, monitor, params
from qdsn.errors import IntegrityError, InvalidInput
from qdsn.quality import learn

X = np.random.default_rng(1).normal(size=(300, 3))


def fitted(trees: int = 4, seed: int = 0):
    return learn.fit_isolation_forest(X, seed=seed, trees=trees)


def edit_nodes(f, change, tree: int = 0):
    t = f.estimators_[tree].tree_
    st = t.__getstate__()
    nodes = st["nodes"].copy()
    change(nodes, st)
    st["nodes"] = nodes
    t.__setstate__(st)
    return f


def inner(nodes) -> int:
    return int(np.flatnonzero(nodes["left_child"] != -1)[1])  # an inner node past the root


def leaf(nodes) -> int:
    return int(np.flatnonzero(nodes["left_child"] == -1)[0])


def set_(field, value, at=lambda n: 0):
    def change(nodes, st):
        nodes[field][at(nodes)] = value

    return change


CORRUPT = {
    "child far out of range": lambda f: edit_nodes(f, lambda n, s: (set_("left_child", 10**8)(n, s),
                                                                     set_("right_child", 10**8)(n, s))),
    "child negative": lambda f: edit_nodes(f, set_("right_child", -7)),
    "child loops to its parent": lambda f: edit_nodes(f, set_("left_child", 0, inner)),
    "child is the node itself": lambda f: edit_nodes(f, set_("right_child", 0)),
    "one child only": lambda f: edit_nodes(f, set_("right_child", -1)),
    "feature past the data": lambda f: edit_nodes(f, set_("feature", 3)),
    "feature negative": lambda f: edit_nodes(f, set_("feature", -5, inner)),
    "leaf names a feature": lambda f: edit_nodes(f, set_("feature", 1, leaf)),
    "threshold NaN": lambda f: edit_nodes(f, set_("threshold", np.nan)),
    "threshold infinite": lambda f: edit_nodes(f, set_("threshold", np.inf, inner)),
    "no samples at a node": lambda f: edit_nodes(f, set_("n_node_samples", 0, leaf)),
    "samples do not split": lambda f: edit_nodes(f, set_("n_node_samples", 10**6)),
    "a node with two parents": lambda f: edit_nodes(f, lambda n, s: n["right_child"].__setitem__(
        0, n["left_child"][0])),
    "estimator features out of range": lambda f: (f.estimators_features_.__setitem__(0, np.array([0, 1, 9])), f)[1],
    "offset infinite": lambda f: (setattr(f, "offset_", np.inf), f)[1],
    "max samples huge": lambda f: (setattr(f, "max_samples_", 10**9), f)[1],
    "too many trees": lambda f: (setattr(f, "estimators_", f.estimators_ * 300), f)[1],
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(CORRUPT))
def test_an_unsound_forest_is_refused_before_it_is_scored(fault):
    """The file's own SHA-256 is given with it, as a member sending one to `POST /ai/score` would."""
    blob = params.dump_estimator(CORRUPT[fault](fitted()))
    with pytest.raises(InvalidInput, match=r"not one a fit could grow|not an isolation forest"):
        monitor.open_model(blob, params.digest(blob))


def test_a_tree_deeper_than_its_fit_allows_is_refused():
    """A chain of splits (each left child a leaf) far deeper than log2 of the rows per tree: each row's walk
    would take as many steps as there are nodes. Sound otherwise: children in range, samples split."""
    c = forest.canonical(fitted(trees=1))
    n = 2 * 100 + 1  # 100 splits
    left, right = np.full(n, -1), np.full(n, -1)
    left[0 : n - 1 : 2], right[0 : n - 1 : 2] = np.arange(1, n, 2), np.arange(2, n + 1, 2)
    samples = np.ones(n, dtype=np.int64)
    for i in range(n - 3, -1, -2):
        samples[i] = 1 + samples[i + 2]
    c["max_samples"] = int(samples[0])
    c["trees"][0] = {
        "left": left,
        "right": right,
        "feature": np.where(left == -1, -2, 0),
        "threshold": np.where(left == -1, -2.0, 0.5),
        "samples": samples,
        "value": np.zeros((n, 1)),
    }
    with pytest.raises(InvalidInput, match="tree 1 is 100 deep, past the 7 of 101 rows"):
        forest.check(c)
    c["trees"][0]["right"][-3] = 10**8
    with pytest.raises(InvalidInput, match="child index out of"):
        forest.check(c)


def test_the_reviewed_forest_does_not_crash_the_node():
    """Run as its own process: before the check, scoring this forest read past the node array (SIGSEGV)."""
    code = (
        "import numpy as np\n"
        "from tests.compute.test_forest import CORRUPT, fitted\n"
        "from qdsn.compute import monitor, params\n"
        "from qdsn.errors import InvalidInput\n"
        "blob = params.dump_estimator(CORRUPT['child far out of range'](fitted(trees=2)))\n"
        "try:\n"
        "    monitor.score(monitor.open_model(blob, params.digest(blob)), np.zeros((5, 3)))\n"
        "except InvalidInput as e:\n"
        "    print('refused:', e.what)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "refused: the isolation forest is not one a fit could grow" in r.stdout, r


def test_a_sound_forest_scores_as_it_was_fitted():
    f = fitted(trees=8, seed=4)
    blob = params.dump_estimator(f)
    saved = monitor.open_model(blob, params.digest(blob))
    assert saved.model is not f and saved.digest == params.forest_digest(f)
    assert np.array_equal(learn.anomaly_score(saved.model, X), learn.anomaly_score(f, X))
    # the loaded object's own cached path lengths are not what scoring uses: rebuilt from the trees
    f._decision_path_lengths = tuple(np.zeros_like(d) for d in f._decision_path_lengths)
    blob = params.dump_estimator(f)
    got = monitor.open_model(blob, params.digest(blob)).model
    assert np.array_equal(learn.anomaly_score(got, X), learn.anomaly_score(fitted(trees=8, seed=4), X))


def test_one_forest_has_one_digest_however_it_is_saved():
    f = fitted(trees=16, seed=7)
    one, two = params.dump_estimator(f), params.dump_estimator(f)
    assert one != two  # skops: not even two dumps of one forest are the same bytes
    want = params.forest_digest(f)
    assert monitor.open_model(one, want).digest == monitor.open_model(two, want).digest == want
    assert params.forest_digest(fitted(trees=16, seed=7)) == want  # a refit with the same rows and seed
    assert params.forest_digest(fitted(trees=16, seed=8)) != want
    changed = edit_nodes(fitted(trees=16, seed=7), lambda n, s: n["threshold"].__setitem__(
        0, np.nextafter(n["threshold"][0], np.inf)), tree=5)  # fmt: skip
    assert params.forest_digest(changed) != want
    changed = fitted(trees=16, seed=7)
    changed.offset_ = -0.51
    assert params.forest_digest(changed) != want
    with pytest.raises(IntegrityError, match=r"forest digest .* neither"):
        monitor.open_model(params.dump_estimator(changed), want)


def test_a_zip_bomb_of_a_forest_is_refused_unread():
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", "{}")
        z.writestr("big.npy", b"\0" * (params.MAX_BYTES + 1))
    bomb = buf.getvalue()
    assert len(bomb) < 200_000
    with pytest.raises(InvalidInput, match="unpacks to more than"):
        monitor.open_model(bomb, params.digest(bomb))
