"""`POST /ai/score`: a participant scores rows against a saved quality model; the parameters file is opened
only under the SHA-256 given, and bad bodies are problems, never a 500."""

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.compute import params
from qdsn.errors import IntegrityError, InvalidInput
from qdsn.node import Node, NodeHome
from qdsn.quality import multivariate as mv

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def network(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Zhejiang Cable", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield NodeClient(str(http.base_url), maker.key(), maker.did, http=http), http
    node.close()


def test_scores_rows_against_a_t2_model(network):
    client, _ = network
    x = np.random.default_rng(0).normal(size=(200, 3))
    model = mv.fit_t2(x, names=("a", "b", "c"))
    blob = params.dump_arrays(model.arrays())
    rows = [[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]]
    got = client.call("POST", "/ai/score", {"model": base64.b64encode(blob).decode(), "sha256": params.digest(blob),
                                            "rows": rows})  # fmt: skip
    assert got["method"] == "t2" and got["limit"] == pytest.approx(model.ucl) and got["signals"] == [2]
    assert got["scores"] == pytest.approx(list(model.score(np.array(rows))))
    with pytest.raises(IntegrityError, match="not the"):
        client.call("POST", "/ai/score", {"model": base64.b64encode(blob).decode(), "sha256": "0" * 64, "rows": rows})
    with pytest.raises(InvalidInput, match="the model has 3 variables, the data 2"):
        client.call("POST", "/ai/score", {"model": base64.b64encode(blob).decode(), "sha256": params.digest(blob),
                                          "rows": [[1.0, 2.0]]})  # fmt: skip


@pytest.mark.parametrize("body", [{}, {"model": "!!", "sha256": "x", "rows": [[1.0]]},
                                  {"model": "", "sha256": "", "rows": [[1.0], [1.0, 2.0]]},
                                  {"model": "", "sha256": "", "rows": [["a"]]}])  # fmt: skip
def test_bad_bodies_are_problems(network, body):
    client, http = network
    with pytest.raises(InvalidInput):
        client.call("POST", "/ai/score", body)
    assert http.post("/ai/score", json=body).status_code == 401  # unsigned


def test_an_unsound_forest_or_too_many_rows_is_a_problem_and_the_node_lives(network):
    """A member sends a forest whose root's children point past its nodes, with the file's own hash: before
    the trees were checked, scoring it read outside the node array and killed the node."""
    from qdsn.quality import learn

    client, _ = network
    x = np.random.default_rng(1).normal(size=(200, 3))
    forest = learn.fit_isolation_forest(x, seed=0, trees=2)
    t = forest.estimators_[0].tree_
    st = t.__getstate__()
    st["nodes"] = st["nodes"].copy()
    st["nodes"]["left_child"][0] = st["nodes"]["right_child"][0] = 10**8
    t.__setstate__(st)
    blob = params.dump_estimator(forest)
    body = {"model": base64.b64encode(blob).decode(), "sha256": params.digest(blob), "rows": x[:5].tolist()}
    with pytest.raises(InvalidInput, match="tree 1 has a child index out of"):
        client.call("POST", "/ai/score", body)
    good = learn.fit_isolation_forest(x, seed=0, trees=8)
    blob = params.dump_estimator(good)
    body = {"model": base64.b64encode(blob).decode(), "sha256": params.forest_digest(good), "rows": x[:5].tolist()}
    got = client.call("POST", "/ai/score", body)  # named by the digest an attestation carries
    assert got["scores"] == pytest.approx(list(learn.anomaly_score(good, x[:5])))
    model = mv.fit_t2(x)
    blob = params.dump_arrays(model.arrays())
    with pytest.raises(InvalidInput, match="10001 rows are more than the 10000 one request scores"):
        client.call("POST", "/ai/score", {"model": base64.b64encode(blob).decode(), "sha256": params.digest(blob),
                                          "rows": [[0, 0, 0]] * 10_001})  # fmt: skip
