"""The DAP-shaped roles in one process on one ledger: tasks and batches on the ledger, reports verified
by leader and helper together, collections within the minimum batch and the privacy budget."""

from datetime import timedelta

import pytest

from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.ledger.audit import audit
from qdsn.privacy import aggregator, budget, collect, indicators, report, reporter
from qdsn.privacy.store import StatsStore
from qdsn.privacy.task import Task, vdaf_of

from .dap_world import World


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


class ToLeader:
    """The leader's API for a reporter or the collector, in process."""

    def __init__(self, w: World, who) -> None:
        self.w, self.who = w, who

    def call(self, method, path, payload=None):
        w = self.w
        if path == "/stats/reports":
            return aggregator.upload(w.cqc, w.store(w.cqc), self.who.did, payload, w.to_helper(), clock=w.clock)
        if path == "/stats/collect":
            return aggregator.collect(w.cqc, w.store(w.cqc), self.who.did, payload, w.to_helper())
        task, period = path.split("/")[3], int(path.split("/")[5])
        return aggregator.batch_leaves(w.cqc, w.store(w.cqc), task, period, self.who.did)


def make(w: World, maker, value, task="t1", **kw):
    t = Task.from_state(w.reg.ledger.state, task)
    return report.make(t, vdaf_of(t), value, maker.home.key(), maker.did, t.period_of(w.now),
                       w.cqc.key_of(w.cqc.did), w.reg.key_of(w.reg.did), **kw)  # fmt: skip


def send(w: World, maker, value, task="t1", **kw):
    return reporter.send(maker, w.store(maker), task, value, ToLeader(w, maker), clock=w.clock, **kw)


def figure(w: World, period=0, task="t1"):
    return collect.collect(w.reg, task, period, ToLeader(w, w.reg))


@pytest.mark.parametrize(("vdaf", "params", "values", "total"), [
    ("Prio3Count", {}, [1, 0, 1], 2),
    ("Prio3Sum", {"max_measurement": 255}, [40, 7, 120], 167),
    ("Prio3Histogram", {"length": 4, "chunk_length": 2}, [0, 3, 3], [1, 0, 0, 2]),
    ("Prio3SumVec", {"length": 2, "max_measurement": 3, "chunk_length": 2}, [[3, 1], [2, 0], [0, 1]], [5, 2]),
    ("Prio3MultihotCountVec", {"length": 3, "max_weight": 2, "chunk_length": 2},
     [[True, False, True], [False, False, True], [True, True, False]], [2, 1, 2]),
])  # fmt: skip
def test_each_measurement_type_adds_up(world, vdaf, params, values, total):
    """With epsilon 100 the noise is below one unit in any sane run: the figure is the exact total."""
    world.task(vdaf=vdaf, params=params, epsilon=100.0, budget=100.0)
    for m, v in zip(world.makers, values, strict=True):
        assert send(world, m, v)["accepted"]
    fig = figure(world)
    assert fig.count == 3 and fig.spent == 100.0
    if vdaf == "Prio3Sum":  # sensitivity 255 at epsilon 100: noise of scale 2.55 per aggregator
        assert abs(fig.result - total) <= 40
    else:
        assert fig.result == total
    assert world.reg.ledger.state.tasks["t1"].batches[0][0] == 3


def test_an_aggregator_holds_no_single_value(world):
    world.task(vdaf="Prio3Sum", params={"max_measurement": 255})
    send(world, world.makers[0], 200)
    (kept,) = world.store(world.cqc).batch("t1", 0)
    (theirs,) = world.store(world.reg).batch("t1", 0)
    v = vdaf_of(Task.from_state(world.reg.ledger.state, "t1"))
    mine, helper = v.decode_agg_share(kept.out_share), v.decode_agg_share(theirs.out_share)
    assert mine != [200] and helper != [200]  # each a uniformly random share ...
    assert v.unshard(None, [mine, helper], 1) == 200  # ... of the value only both together give


def test_out_of_range_and_tampered_reports_are_refused_by_both(world):
    world.task(vdaf="Prio3Count", params={})
    with pytest.raises(InvalidInput, match="cannot take 2"):  # an honest client refuses to shard it
        send(world, world.makers[0], 2)
    with pytest.raises(IntegrityError, match="validity proof"):
        send(world, world.makers[0], None, encoded=[2])  # a dishonest one shards it anyway
    a, b = make(world, world.makers[1], 1), make(world, world.makers[1], 1)
    swapped = dict(a, leader_share=b["leader_share"])  # a share of another report, the report signed again
    swapped["signature"] = report.b64url_encode(world.makers[1].home.key().sign(report.signing_input(swapped)))
    with pytest.raises(IntegrityError, match="does not open"):
        world.upload(world.makers[1], swapped)
    forged_helper = dict(b, helper_share=a["helper_share"])  # the leader's share opens; the helper's does not
    signed = world.makers[1].home.key().sign(report.signing_input(forged_helper))
    forged_helper["signature"] = report.b64url_encode(signed)
    with pytest.raises(IntegrityError, match="helper refused"):
        world.upload(world.makers[1], forged_helper)
    for node in (world.cqc, world.reg):
        assert world.store(node).batch("t1", 0) == []  # nothing was counted anywhere


def test_one_report_per_period_and_no_replay_even_after_a_restart(world, tmp_path):
    world.task()
    rep = make(world, world.makers[0], 5)
    world.upload(world.makers[0], rep)
    with pytest.raises(Conflict, match="already reported for period 0"):
        send(world, world.makers[0], 6)
    leader_db = world.store(world.cqc).engine.url.database
    world.store(world.cqc).close()
    world.stores[world.cqc.did] = StatsStore(leader_db)  # the leader restarted
    with pytest.raises(Conflict, match="replay"):
        world.upload(world.makers[0], rep)
    with pytest.raises(Conflict, match="replay"):  # and the helper keeps its own record
        aggregator.helper_verify(world.reg, world.store(world.reg), world.cqc.did,
                                 {"report": rep, "verifier_share": ""}, clock=world.clock)  # fmt: skip
    world.now += timedelta(hours=1)  # the next period takes a new report
    assert send(world, world.makers[0], 6)["period"] == 1
    with pytest.raises(InvalidInput, match="current period 1, not 0"):  # an old report is not taken late
        world.upload(world.makers[1], dict(make(world, world.makers[1], 1), period=0))


def test_who_may_report_ask_and_collect(world):
    outsider = world.makers[2]
    world.task(reporters=[m.did for m in world.makers[:2]])
    with pytest.raises(PermissionDenied, match="not an eligible reporter"):
        send(world, outsider, 1)
    with pytest.raises(PermissionDenied, match="not an eligible reporter"):  # the leader checks too
        world.upload(outsider, make(world, outsider, 1))
    rep = make(world, world.makers[0], 1)
    with pytest.raises(PermissionDenied, match="signed the request"):  # another's report
        world.upload(world.makers[1], rep)
    with pytest.raises(PermissionDenied, match="only the leader"):
        aggregator.helper_verify(world.reg, world.store(world.reg), world.makers[0].did,
                                 {"report": rep, "verifier_share": ""}, clock=world.clock)  # fmt: skip
    for m in world.makers[:2]:
        send(world, m, 3)
    with pytest.raises(PermissionDenied, match="only the task's collector"):
        aggregator.collect(world.cqc, world.store(world.cqc), world.makers[0].did, {"task": "t1", "period": 0},
                           world.to_helper())  # fmt: skip
    with pytest.raises(PermissionDenied, match="only the leader"):
        aggregator.helper_aggregate(world.reg, world.store(world.reg), world.makers[0].did,
                                    {"task": "t1", "period": 0, "reports": []})  # fmt: skip


def test_attribute_filter_admits_members_with_those_attributes(world):
    """Eligibility by what the regulator recorded at admission (`identity.register`), not by the reporter's word."""
    world.task(reporters=[], attributes={"region": "330100"})
    task = Task.from_state(world.reg.ledger.state, "t1")
    task.check_reporter(world.reg.ledger, world.makers[0].did)  # registered in 330100
    for other in world.makers[1:]:
        with pytest.raises(PermissionDenied, match="members with region=330100"):
            task.check_reporter(world.reg.ledger, other.did)
    send(world, world.makers[0], 1)
    with pytest.raises(PermissionDenied, match="members with region=330100"):
        send(world, world.makers[1], 1)


def test_minimum_batch_and_budget(world):
    world.task(min_batch=3, epsilon=1.0, budget=1.5)
    for m in world.makers[:2]:
        send(world, m, 1)
    with pytest.raises(PermissionDenied, match="at least 3"):
        figure(world)
    assert world.reg.ledger.state.tasks["t1"].batches == {}  # nothing recorded, nothing spent
    send(world, world.makers[2], 1)
    assert figure(world).count == 3
    world.now += timedelta(hours=1)
    for m in world.makers:
        send(world, m, 1)
    with pytest.raises(PermissionDenied, match=r"budget 1.5"):
        figure(world, period=1)
    # and the ledger refuses it from the leader whatever its node would say
    env = world.cqc_home.sign("aggregate.batch", {"task": "t1", "period": 1, "count": 3, "root": "0" * 64,
                                                  "epsilon": 1.0, "collector": world.reg.did})  # fmt: skip
    with pytest.raises(PermissionDenied, match="budget"):
        world.reg.order([env])


def test_ledger_rules_for_tasks_and_batches(world, tmp_path):
    spec = world.task()
    again = world.reg_home.sign("aggregate.task", spec)
    with pytest.raises(Conflict, match="already exists"):
        world.reg.order([again])
    with pytest.raises(PermissionDenied, match=r"may not submit aggregate.task"):
        world.cqc.order([world.cqc_home.sign("aggregate.task", dict(spec, task="t2"))])
    with pytest.raises(InvalidInput, match="takes the parameters max_measurement"):
        world.reg_home.sign("aggregate.task", dict(spec, task="t3", params={}))
    with pytest.raises(InvalidInput, match="two different participants"):
        world.reg_home.sign("aggregate.task", dict(spec, task="t3", helper=spec["leader"]))
    with pytest.raises(InvalidInput, match="not a registered enterprise"):
        world.reg.order([world.reg_home.sign("aggregate.task", dict(spec, task="t3", reporters=[world.cqc.did]))])
    batch = {"task": "t1", "period": 0, "count": 2, "root": "a" * 64, "epsilon": 1.0, "collector": world.reg.did}
    with pytest.raises(PermissionDenied, match="only the task's leader"):
        world.reg.order([world.reg_home.sign("aggregate.batch", batch)])
    with pytest.raises(PermissionDenied, match="below the task's minimum"):
        world.cqc.order([world.cqc_home.sign("aggregate.batch", dict(batch, count=1))])
    with pytest.raises(InvalidInput, match=r"spends epsilon 1.0"):
        world.cqc.order([world.cqc_home.sign("aggregate.batch", dict(batch, epsilon=0.5))])
    world.cqc.order([world.cqc_home.sign("aggregate.batch", batch)])
    with pytest.raises(Conflict, match="already collected"):
        world.cqc.order([world.cqc_home.sign("aggregate.batch", dict(batch, root="b" * 64))])
    # the fold is persisted and replays to the same state
    stored = world.reg.ledger.store.load_state(world.reg.ledger.origin)
    assert stored.tasks["t1"].spent == 1.0 and stored.digest() == world.reg.ledger.state.digest()
    report_ = audit(world.reg.ledger.store)  # `qdsn ledger verify` replays every entry and compares
    assert report_.ok, report_.reason


def test_inclusion_proof_and_the_leaves_against_the_ledger(world):
    world.task()
    for m in world.makers:
        send(world, m, 9)
    fig = figure(world)
    inc = reporter.prove(world.makers[1], world.store(world.makers[1]), "t1", 0, ToLeader(world, world.makers[1]))
    assert inc.count == 3 and inc.root == fig.root
    listed = ToLeader(world, world.makers[0]).call("GET", "/stats/tasks/t1/periods/0")
    listed["reports"] = listed["reports"][:-1]  # a leader that hides a reporter is caught by the root
    with pytest.raises(IntegrityError, match="commits to"):
        reporter.check_leaves(world.makers[0], "t1", 0, listed)


def test_noise_is_opendp_discrete_laplace_at_the_task_epsilon():
    meas = budget.mechanism(3, 255, 0.5)
    assert meas.map(255) <= 0.5 + 1e-9
    draws = [meas([0, 0, 0]) for _ in range(20)]
    assert len({tuple(d) for d in draws}) > 1 and all(isinstance(x, int) for d in draws for x in d)
    p = 2**64 - 2**32 + 1
    assert budget.signed(p, budget.add_noise(p, [5], [-7])[0]) == -2


def test_indicators_from_the_reporters_own_data():
    old = [{"name": "d", "cpk": 1.2}]
    new = [{"name": "d", "cpk": 1.5}, {"name": "r", "cpk": 1.1}]
    runs = [{"created": "2026-01-01T00:00:00Z", "output": {"characteristics": old}},
            {"created": "2026-02-01T00:00:00Z", "output": {"characteristics": new}}]  # fmt: skip
    assert indicators.cpk_capable(runs, "d") == 1 and indicators.cpk_capable(runs) == 0
    rows = [{"sample_size": 500, "defects": 1}, {"sample_size": 500, "defects": 0}]
    assert indicators.units(rows) == [1000, 1] and indicators.ppm_bucket(rows) == 5  # 1000 ppm
    assert indicators.certificates(["valid", "valid", "invalid"]) == [2, 0, 1]


def test_a_helper_that_does_not_answer_counts_nothing_and_a_new_report_goes_through(world):
    import httpx

    from qdsn.errors import Unavailable

    class Down:
        def call(self, *a, **k):
            raise httpx.ConnectError("connection refused")

    world.task()
    rep = make(world, world.makers[0], 5)
    with pytest.raises(Unavailable, match="did not answer"):
        aggregator.upload(world.cqc, world.store(world.cqc), world.makers[0].did, rep, Down(), clock=world.clock)
    assert world.store(world.cqc).batch("t1", 0) == []
    assert send(world, world.makers[0], 5)["accepted"]  # a new report (a new id) once the helper is back


def test_indicators_are_read_from_the_makers_own_anchored_data_and_the_ledger(world):
    from qdsn.cli.stats import _indicator

    maker = world.makers[0]
    maker.submit([maker.home.sign("dataset.declare", {"dataset": "insp-1", "title": "Incoming inspection",
                                                      "kind": "inspections"})])  # fmt: skip
    maker.vault.create("insp-1", "inspections")
    rows = [{"id": f"i{i}", "lot": f"L{i}", "time": "2026-01-02T08:00:00Z", "sampling_plan": "ISO 2859-1 II",
             "sample_size": 200, "defects": d, "decision": "accept", "inspector": "Wang"}
            for i, d in enumerate([0, 1, 3])]  # fmt: skip
    batch = maker.vault.add_batch("insp-1", rows)
    maker.vault.mark_anchored(batch, maker.order([maker.home.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    maker.vault.add_batch("insp-1", [dict(rows[0], id="late", defects=200)])  # sealed, never anchored: not counted
    assert _indicator(maker, "units", None) == [600, 4]
    assert _indicator(maker, "ppm", None) == 6  # 6,666 ppm: the bucket [5,000, 10,000)
    assert _indicator(maker, "certificates", None) == [0, 0, 0]
    with pytest.raises(NotFound, match="no attested process-capability run"):
        _indicator(maker, "cpk", None)
    world.task(vdaf="Prio3SumVec", params={"length": 2, "max_measurement": 100_000, "chunk_length": 6})
    assert send(world, maker, _indicator(maker, "units", None))["accepted"]


@pytest.mark.parametrize("bad", [
    None, [], {"task": "t1"}, "report",
    {"task": "t1", "id": "zz", "period": 0, "reporter": "x", "public_share": "", "leader_share": "",
     "helper_share": "", "signature": ""},
    {"task": "t1", "id": "0" * 32, "period": -1, "reporter": "x", "public_share": "", "leader_share": "",
     "helper_share": "", "signature": ""},
    {"task": "t1", "id": "0" * 32, "period": True, "reporter": "x", "public_share": "", "leader_share": "",
     "helper_share": "", "signature": "", "extra": 1},
])  # fmt: skip
def test_a_malformed_report_is_refused_with_what_is_wrong(world, bad):
    world.task()
    with pytest.raises(InvalidInput, match=r"report|JSON object"):
        world.upload(world.makers[0], bad)


def test_a_report_verified_while_its_period_is_collected_is_counted_or_refused(tmp_path):
    """The leader chooses a batch and puts it on the ledger while another maker's upload is being verified:
    that report ends up in the batch or is refused — never told "accepted" and left out (and, after a
    crash between the two steps, kept beside a batch it is not in, so the collect could not run again)."""
    import threading

    w = World(tmp_path, makers=4)
    try:
        w.task(noise="none")
        for m, v in zip(w.makers[:3], (40, 7, 120), strict=True):
            send(w, m, v)
        late: dict = {}
        threads = []

        def upload():
            try:
                late["answer"] = send(w, w.makers[3], 5)
            except Conflict as e:
                late["refused"] = e.what

        submit = w.cqc.submit

        def batch_then_submit(envs):  # the fourth maker's upload arrives while the batch is on its way
            threads.append(threading.Thread(target=upload))
            threads[0].start()
            threads[0].join(1.0)  # done, or waiting for the batch to be chosen
            return submit(envs)

        w.cqc.submit = batch_then_submit
        fig = figure(w)
        w.cqc.submit = submit
        threads[0].join(30)
        if "answer" in late:
            assert fig.count == 4 and fig.result == 172
        else:
            assert fig.count == 3 and fig.result == 167
            assert "was collected while the report was verified" in late["refused"]
        assert len(w.store(w.cqc).batch("t1", 0)) == fig.count  # what the leader keeps is the batch on the ledger
    finally:
        w.close()
