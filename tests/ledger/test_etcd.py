"""Ordering on a real 3-member etcd cluster on loopback: the compare-and-swap, followers that validate
and skip identically, and receipts."""

import itertools
import threading
import uuid
from dataclasses import replace

import pytest

from qdsn.errors import BadSignature, Conflict, InvalidInput, Unavailable
from qdsn.ledger import Ledger
from qdsn.ledger.ordering.embedded import EmbeddedOrderer
from qdsn.ledger.ordering.etcd import (
    Cluster,
    Compacted,
    EtcdOrderer,
    Follower,
    append,
    decode_batch,
    parse_endpoints,
    prune,
    seed,
)

from .conftest import ORIGIN, member


def replicas(tmp_path, etcd, n=3):
    prefix = f"/qdsn/{uuid.uuid4().hex}"
    leds = [Ledger.open(str(tmp_path / f"r{i}.db"), origin=ORIGIN) for i in range(n)]
    fols = [Follower(led, Cluster(parse_endpoints(etcd.url), prefix)) for led in leds]
    return leds, fols, Cluster(parse_endpoints(etcd.url), prefix)


def test_parse_endpoints_refuses_what_is_not_etcd():
    assert parse_endpoints("etcd://a:1,127.0.0.1:2379") == [("a", 1), ("127.0.0.1", 2379)]
    for bad in ("http://a:1", "etcd://a", "etcd://"):
        with pytest.raises(InvalidInput):
            parse_endpoints(bad)


def test_racing_submitters_never_share_a_position(etcd):
    cluster = Cluster(parse_endpoints(etcd.url), f"/qdsn/{uuid.uuid4().hex}")
    got: list[tuple[int, bytes]] = []

    def submit(who: int) -> None:
        for k in range(25):
            leaves = [f"{who}-{k}-{j}".encode() for j in range(1 + k % 3)]
            got.append((append(cluster, leaves), leaves))

    threads = [threading.Thread(target=submit, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted((p, p + len(leaves)) for p, leaves in got)
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # contiguous, disjoint
    stored = dict(cluster.scan("log/", "log0", 1000))
    for p, leaves in got:
        assert decode_batch(stored[f"log/{p:016d}"]) == [leaves]  # each submission whole


def test_replicas_apply_the_same_log_and_skip_garbage_identically(tmp_path, etcd):
    leds, fols, cluster = replicas(tmp_path, etcd)
    reg, acme = member("regulator", "SAMR"), member()
    orderer = EtcdOrderer(leds[0], cluster, fols[0])
    try:
        first = orderer.submit([reg.sign("identity.register", reg.register_payload())])
        assert first[0].seq == 0
        honest = reg.sign("identity.register", acme.register_payload())
        forged = replace(
            reg.sign("identity.register", acme.register_payload()),
            signature=acme.sign("identity.register", acme.register_payload()).signature,
        )
        append(cluster, [b"garbage", b'{"type": 1}', forged.leaf()])  # straight into etcd
        out = orderer.submit([honest])
        assert out[0].seq == 1
        with pytest.raises(BadSignature):
            orderer.submit([forged])
    finally:
        orderer.close()
    for f in fols:
        f.step(1000)
    assert [led.size for led in leds] == [2, 2, 2]
    assert len({led.root() for led in leds}) == 1
    assert {f.position for f in fols} == {5}  # the forged one was refused before it was proposed
    for led in leds:
        led.close()


def test_a_restarted_replica_resumes_from_its_recorded_position(tmp_path, etcd):
    leds, fols, cluster = replicas(tmp_path, etcd, 2)
    reg = member("regulator", "SAMR")
    append(cluster, [reg.sign("identity.register", reg.register_payload()).leaf()])
    fols[1].step()
    leds[1].close()
    others = [member() for _ in range(5)]
    append(cluster, [reg.sign("identity.register", m.register_payload()).leaf() for m in others])
    fols[0].step()
    again = Ledger.open(str(tmp_path / "r1.db"), origin=ORIGIN)
    follower = Follower(again, Cluster(parse_endpoints(etcd.url), cluster.prefix))
    assert follower.position == 1
    follower.step()
    assert (again.size, again.root()) == (leds[0].size, leds[0].root()) == (6, leds[0].root())
    again.close()
    leds[0].close()


def test_a_log_moves_to_etcd_and_a_batch_too_large_to_take_whole_is_refused(tmp_path, etcd):
    leds, fols, cluster = replicas(tmp_path, etcd, 2)
    reg = member("regulator", "SAMR")
    leds[0].append([reg.sign("identity.register", reg.register_payload())])
    leds[0].append([reg.sign("identity.register", member().register_payload()) for _ in range(1500)])
    assert seed(cluster, leds[0].store.leaves(0, leds[0].size))  # more than one batch's worth
    assert not seed(cluster, leds[0].store.leaves(0, 1))  # the sequence has begun
    fols[0].step(100)  # its own entries come back as replays and are skipped
    assert fols[0].position == 1501 and leds[0].size == 1501
    orderer = EtcdOrderer(leds[1], cluster, fols[1])
    envs = [reg.sign("identity.register", member().register_payload()) for _ in range(2500)]
    try:
        with pytest.raises(InvalidInput, match="send it in parts"):  # over one etcd write: it could not land whole
            orderer.submit(envs)
        out = [r for k in range(0, 2500, 1000) for r in orderer.submit(envs[k : k + 1000])]
    finally:
        orderer.close()
    assert [r.seq for r in out] == list(range(1501, 4001))
    fols[0].step(100)
    assert (leds[0].size, leds[0].root()) == (leds[1].size, leds[1].root()) == (4001, leds[1].root())
    for led in leds:
        led.close()


def test_pruning_keeps_whole_batches_and_sends_the_late_to_a_peer(tmp_path, etcd):
    leds, fols, cluster = replicas(tmp_path, etcd, 1)
    for k in range(5):
        append(cluster, [f"{k}-{j}".encode() for j in range(10)])  # batches at 0, 10, 20, 30, 40
    assert prune(cluster, 25) == 2  # [0, 10) and [10, 20) end before 25; [20, 30) may not be cut
    assert cluster.get("pruned") == b"20" and cluster.starts(100) == [20, 30, 40]
    assert prune(cluster, 25) == 0
    with pytest.raises(Compacted, match="from 20; this replica stands at 0") as late:
        fols[0].step()
    assert isinstance(late.value, Unavailable)  # for the time it takes to catch up from a peer: 503
    leds[0].close()


@pytest.fixture(params=["embedded", "etcd"])
def ordered(request, tmp_path):
    """An orderer and every replica it feeds: one replica (embedded) or three following etcd."""
    if request.param == "embedded":
        led = Ledger.open(str(tmp_path / "r0.db"), origin=ORIGIN)
        yield EmbeddedOrderer(led), [led], lambda: None
        led.close()
        return
    leds, fols, cluster = replicas(tmp_path, request.getfixturevalue("etcd"))
    orderer = EtcdOrderer(leds[0], cluster, fols[0])

    def settle() -> None:
        for f in fols:
            f.step(1000)

    yield orderer, leds, settle
    orderer.close()
    for led in leds:
        led.close()


def declare(m, dataset: str):
    return m.sign("dataset.declare", {"dataset": dataset, "title": "Line", "kind": "inspections"})


def test_a_refused_batch_is_written_nowhere(ordered):
    orderer, leds, settle = ordered
    reg, acme = member("regulator", "SAMR"), member()
    orderer.submit([reg.sign("identity.register", reg.register_payload()),
                    reg.sign("identity.register", acme.register_payload())])  # fmt: skip
    seq = orderer.cluster.get("seq") if isinstance(orderer, EtcdOrderer) else None
    with pytest.raises(Conflict, match=r"transaction 1 .*'line-1' is already declared"):
        orderer.submit([declare(acme, "line-1"), declare(acme, "line-1")])
    forged = replace(declare(acme, "line-3"), payload={"dataset": "line-4", "title": "Line", "kind": "inspections"})
    with pytest.raises(BadSignature, match="transaction 1 "):
        orderer.submit([declare(acme, "line-2"), forged])
    settle()
    assert [led.size for led in leds] == [2] * len(leds)  # neither the first of either batch, anywhere
    if isinstance(orderer, EtcdOrderer):
        assert orderer.cluster.get("seq") == seq  # refused before it was proposed to etcd


def test_a_batch_that_a_race_made_invalid_is_refused_whole_by_every_replica(tmp_path, etcd):
    leds, fols, cluster = replicas(tmp_path, etcd)
    reg, acme = member("regulator", "SAMR"), member()
    append(cluster, [reg.sign("identity.register", reg.register_payload()).leaf(),
                     reg.sign("identity.register", acme.register_payload()).leaf()])  # fmt: skip
    append(cluster, [declare(acme, "line-1").leaf()])  # one node declares line-1 ...
    late = [declare(acme, "line-2"), declare(acme, "line-1")]
    at = append(cluster, [e.leaf() for e in late])  # ... while another, which had not seen it, sends this batch
    for f in fols:
        f.step(1000)
    for led, f in zip(leds, fols, strict=True):
        assert led.size == 3 and set(led.state.datasets) == {"line-1"}  # line-2 went with its batch
        out = f.outcome(late, at)
        assert all(isinstance(r, Conflict) and "transaction 1 " in str(r) for r in out), out
        led.close()


def test_a_resubmitted_batch_gets_its_first_receipts_and_is_written_once(ordered):
    orderer, leds, settle = ordered
    reg, acme = member("regulator", "SAMR"), member()
    orderer.submit([reg.sign("identity.register", reg.register_payload()),
                    reg.sign("identity.register", acme.register_payload())])  # fmt: skip
    batch = [declare(acme, "line-1"), declare(acme, "line-2")]
    first = orderer.submit(batch)
    again = orderer.submit(batch)  # its answer was lost: the client sends the same envelopes again
    assert again == first and [r.seq for r in first] == [2, 3]
    settle()
    assert [led.size for led in leds] == [4] * len(leds)
    if isinstance(orderer, EtcdOrderer):
        seq = orderer.cluster.get("seq")
        landed = [declare(acme, "line-3")]
        append(orderer.cluster, [e.leaf() for e in landed])  # committed, and the answer never came back
        assert [r.seq for r in orderer.submit(landed)] == [4]
        assert int(orderer.cluster.get("seq")) == int(seq) + 1  # not proposed a second time
        settle()
        assert [led.size for led in leds] == [5] * len(leds)
