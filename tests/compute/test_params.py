"""Trained parameters in safe files: the attested hash first, plain arrays only, trusted types only."""

import io
import pickle
import zipfile

import numpy as np
import pytest

from qdsn.compute import params
from qdsn.errors import IntegrityError, InvalidInput
from qdsn.quality import learn
from qdsn.quality import multivariate as mv


def test_arrays_round_trip_and_are_the_same_bytes_each_time():
    model = mv.fit_t2(np.random.default_rng(0).normal(size=(50, 3)))
    data = params.dump_arrays(model.arrays())
    assert data == params.dump_arrays(model.arrays())
    back = mv.T2Model.from_arrays(params.load_arrays(data, params.digest(data)))
    assert np.array_equal(back.cov, model.cov) and back.ucl == model.ucl


def test_a_changed_file_is_refused_before_it_is_read():
    data = bytearray(params.dump_arrays({"mean": np.zeros(3)}))
    want = params.digest(bytes(data))
    data[-30] ^= 1
    with pytest.raises(IntegrityError, match=r"not the .* it should have"):
        params.load_arrays(bytes(data), want)


def test_a_pickle_is_never_loaded():
    """An .npz whose member is a pickled object, with its own correct hash, is refused: numpy is told
    allow_pickle=False. A raw pickle file is not a zip and is refused as well."""

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        member = io.BytesIO()
        np.lib.format.write_array(member, np.array([Boom()], dtype=object), allow_pickle=True)
        z.writestr("mean.npy", member.getvalue())
    evil = buf.getvalue()
    with pytest.raises(InvalidInput, match="not plain arrays"):
        params.load_arrays(evil, params.digest(evil))
    raw = pickle.dumps(Boom())
    with pytest.raises(InvalidInput, match=r"not an \.npz"):
        params.load_arrays(raw, params.digest(raw))
    with pytest.raises(InvalidInput, match="Python objects"):
        params.dump_arrays({"x": np.array([{}], dtype=object)})


def test_estimators_load_only_with_trusted_types_and_the_right_hash():
    x = np.random.default_rng(1).normal(size=(200, 3))
    forest = learn.fit_isolation_forest(x)
    data = params.dump_estimator(forest)
    back = params.load_estimator(data, params.digest(data))
    assert np.array_equal(learn.anomaly_score(back, x), learn.anomaly_score(forest, x))
    with pytest.raises(IntegrityError):
        params.load_estimator(data, "0" * 64)
    from sklearn.neighbors import LocalOutlierFactor  # holds its training rows: not a type QDSN loads

    other = params.dump_estimator(LocalOutlierFactor(novelty=True).fit(x))
    with pytest.raises(InvalidInput, match="not trusted"):
        params.load_estimator(other, params.digest(other))
    with pytest.raises(InvalidInput, match="not a skops file"):
        params.load_estimator(b"junk", params.digest(b"junk"))
