"""Who reported to a private statistic is shown only to those taking part in the batch: its
aggregators, its collector and the reporters counted in it; a reporter still proves its report counted."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.errors import PermissionDenied
from qdsn.privacy import aggregator, collect, reporter

from .dap_world import World
from .test_dap import ToLeader, send


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def test_the_reporters_of_a_batch_are_shown_to_its_participants_only(world):
    world.task()
    counted, absent = world.makers[:2], world.makers[2]  # the third may report, and did not
    for m in counted:
        send(world, m, 9)
    fig = collect.collect(world.reg, "t1", 0, ToLeader(world, world.reg))
    leaves = lambda who: aggregator.batch_leaves(world.cqc, world.store(world.cqc), "t1", 0, who)  # noqa: E731
    for who in (world.cqc.did, world.reg.did, counted[0].did):  # leader, helper and collector, a reporter
        assert {r["reporter"] for r in leaves(who)["reports"]} == {m.did for m in counted}
    for who in (absent.did, "did:key:z6MkOutsider"):
        with pytest.raises(PermissionDenied, match="shown only to its aggregators"):
            leaves(who)
    inc = reporter.prove(counted[1], world.store(counted[1]), "t1", 0, ToLeader(world, counted[1]))
    assert inc.count == 2 and inc.root == fig.root  # `qdsn stats proof` still holds
    with TestClient(create_app(world.cqc)) as anonymous:  # and over the API, nothing without a signature
        r = anonymous.get("/stats/tasks/t1/periods/0")
    assert r.status_code == 401 and "not signed" in r.json()["detail"]
