"""Hotelling's T² fitted across three makers through the private statistics: each maker's sums go as a
Prio3SumVec report to the leader and helper, the collector unshards the total, and the model is the one
fitted centrally on the makers' raw rows, within 1e-9: on the default 48-bit grid each value moves by at
most half a step, so the mean by at most range·2^-49 and a covariance by at most about rangeᵢ·rangeⱼ·2^-48
(here 200·200·3.6e-15 = 1.4e-10)."""

import numpy as np
import pytest

from qdsn.errors import IntegrityError, InvalidInput
from qdsn.ledger.tx import AggregateTaskSpec
from qdsn.privacy import federated
from qdsn.privacy.task import Task, vdaf_of
from qdsn.quality import multivariate as mv

from .dap_world import World
from .test_dap import figure, send

NAMES = ["diameter", "tension", "temperature"]
LOW, HIGH = [9.0, 100.0, 150.0], [11.0, 300.0, 250.0]


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def rows(seed: int, m: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.array([[0.1, 0, 0], [3.0, 20.0, 0], [1.0, 2.0, 8.0]])
    return np.array([10.0, 200.0, 200.0]) + shift + rng.normal(size=(m, 3)) @ a.T


def t2_task(world, **over):
    enc = federated.encoding(NAMES, LOW, HIGH)
    world.task(vdaf="Prio3SumVec", params=federated.task_params(enc), noise="none", encoding=enc, min_batch=3, **over)
    return Task.from_state(world.reg.ledger.state, "t1")


def test_the_federated_model_is_the_centralised_one(world):
    task = t2_task(world)
    data = [rows(1, 400, 0.0), rows(2, 250, 0.02), rows(3, 600, -0.01)]  # each maker keeps its own rows
    for maker, x in zip(world.makers, data, strict=True):
        assert send(world, maker, federated.measurement(task, x))["accepted"]
    fig = figure(world)
    assert fig.count == 3
    model = federated.model(task, fig.result)
    assert task.spec["encoding"]["bits"] == 48 and task.spec["encoding"]["limbs"] == 4
    pooled = mv.fit_t2(np.vstack(data))  # the centralised reference: every maker's raw rows in one place
    assert model.n == 1250 and model.names == tuple(NAMES)
    assert np.abs(model.mean - pooled.mean).max() < 1e-9
    assert np.abs(model.cov - pooled.cov).max() < 1e-9
    assert model.ucl == pytest.approx(pooled.ucl, rel=1e-12)
    x = rows(9, 20, 0.0)
    assert np.allclose(model.score(x), pooled.score(x), rtol=1e-9)


def test_no_aggregator_holds_a_makers_sums(world):
    """Each aggregator keeps a share of the maker's vector that is not the vector; only the two together add
    up to it."""
    task = t2_task(world)
    mine = federated.measurement(task, rows(1, 100, 0.0))
    send(world, world.makers[0], mine)
    vdaf = vdaf_of(task)
    shares = [vdaf.decode_agg_share(world.store(n).batch("t1", 0)[0].out_share) for n in (world.cqc, world.reg)]
    p = vdaf.field.MODULUS
    assert all(s != mine for s in shares)
    assert [(a + b) % p for a, b in zip(*shares, strict=True)] == mine


def test_a_reading_off_the_grid_or_missing_is_refused_before_anything_is_sent(world):
    task = t2_task(world)
    x = rows(1, 50, 0.0)
    x[7, 1] = 400.0
    with pytest.raises(InvalidInput, match=r"value 400.0 \(row 8, variable 2\) is outside the agreed range"):
        federated.measurement(task, x)
    x[7, 1] = np.nan
    with pytest.raises(InvalidInput, match="non-finite"):
        federated.measurement(task, x)
    with pytest.raises(InvalidInput, match="the grid has 3 variables, the data 2"):
        federated.measurement(task, x[:, [0, 2]])
    assert world.store(world.cqc).batch("t1", 0) == []


def test_too_few_rows_in_total_is_said(world):
    task = t2_task(world)
    for maker in world.makers:
        send(world, maker, federated.measurement(task, rows(4, 1, 0.0)))
    with pytest.raises(InvalidInput, match="3 rows are too few for 3 variables"):
        federated.model(task, figure(world).result)


def test_the_ledger_refuses_an_encoding_that_does_not_fit_its_vector(world):
    enc = federated.encoding(NAMES, LOW, HIGH)
    with pytest.raises(InvalidInput, match="Prio3SumVec of length 40"):
        world.task(vdaf="Prio3SumVec", params={"length": 10, "max_measurement": 2**32 - 1, "chunk_length": 4},
                   encoding=enc)  # fmt: skip
    with pytest.raises(InvalidInput, match="low below high"):
        world.task(vdaf="Prio3SumVec", params=federated.task_params(enc), encoding=dict(enc, high=LOW))


def test_a_task_without_the_new_fields_keeps_its_form():
    spec = {"task": "t", "title": "x", "vdaf": "Prio3Count", "params": {}, "leader": "did:key:z6Mk1",
            "leader_url": "http://a", "helper": "did:key:z6Mk2", "helper_url": "http://b", "collector": "did:key:z6Mk1",
            "reporters": ["did:key:z6Mk3"], "attributes": {}, "start": "2026-01-01T00:00:00Z", "period": 3600,
            "min_batch": 2, "epsilon": 1.0, "budget": 2.0}  # fmt: skip
    assert AggregateTaskSpec.model_validate(spec).model_dump(mode="json") == spec


def test_statistics_no_rows_could_give_are_caught_at_the_collector(world):
    """A maker's vector passes Prio3's range proof digit by digit, yet claims Σx² of a value far off the
    grid for zero rows: the pooled sums are then those of no data, and the model is refused, not skewed."""
    task = t2_task(world)
    for maker, seed in zip(world.makers[:2], (1, 2), strict=True):
        send(world, maker, federated.measurement(task, rows(seed, 200, 0.0)))
    forged = mv.Sums(0, (0, 0, 0), (2**110, 0, 0, 0, 0, 0))  # above 400 rows · (2^48)², within 4 digits
    send(world, world.makers[2], mv.to_limbs(forged.vector(), 4))
    with pytest.raises(IntegrityError, match="the sums of variable 1 are not those of any 400 rows on the grid"):
        federated.model(task, figure(world).result)
