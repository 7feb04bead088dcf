"""Decisions on the ledger and the meters read off it: the owner records, nobody else can, and the
figures come from the log alone."""

from datetime import UTC, datetime, timedelta

import pytest

from qdsn.errors import PermissionDenied
from qdsn.ledger import Ledger, tx
from qdsn.policy import Request, decide, offer_hash
from qdsn.policy.meter import invoice, meters

from ..ledger.conftest import ORIGIN, member
from .test_odrl import T0, offer


@pytest.fixture
def consortium(tmp_path):
    regulator, maker, certifier = member("regulator", "SAMR"), member(), member("certifier", "CQC")
    ledger = Ledger.open(str(tmp_path / "ledger.db"), origin=ORIGIN)
    ledger.append([regulator.sign("identity.register", m.register_payload()) for m in (regulator, maker, certifier)])
    ledger.append([maker.sign("dataset.declare", {"dataset": "zj-line-1", "title": "Line 1", "kind": "measurements"})])
    yield ledger, maker, certifier, regulator
    ledger.close()


def log(ledger):
    return [tx.from_leaf(x) for x in ledger.store.leaves(0, ledger.size)]


def test_owner_sets_policy_and_records_decisions_that_meter(consortium):
    ledger, maker, certifier, _ = consortium
    o = offer()
    o["permission"][0]["assignee"] = certifier.did
    ledger.append([maker.sign("policy.set", {"dataset": "zj-line-1", "offer": o["uid"], "hash": offer_hash(o)})])
    envs = []
    for n in range(4):  # the fourth use goes past count ≤ 3
        req = Request(
            "compute", certifier.did, T0 + timedelta(hours=n), role="certifier", purpose="certification", uses=n
        )
        d = decide(o, req)
        envs.append(
            maker.sign(
                "access.decision",
                d.payload("zj-line-1", req, "use", agreement="urn:qdsn:agreement:1", records=1000, compute_seconds=2.5),
            )
        )
    ledger.append(envs)
    (m,) = meters(log(ledger))
    assert (m.uses, m.denied, m.records, m.compute_seconds) == (3, 1, 3000, 7.5)
    assert m.charges == {"CNY": 15.0}
    assert invoice([m])["totals"] == {"CNY": 15.0}
    assert meters(log(ledger), agreement="urn:qdsn:agreement:2") == []
    later = meters(log(ledger), since=datetime.now(UTC) + timedelta(days=1))
    assert later == []


def test_only_the_owner_records_decisions(consortium):
    ledger, _, certifier, regulator = consortium
    rival = member(name="Rival")
    ledger.append([regulator.sign("identity.register", rival.register_payload())])
    req = Request("compute", certifier.did, T0, role="certifier", purpose="certification")
    payload = decide(offer(), req).payload("zj-line-1", req, "use")
    with pytest.raises(PermissionDenied, match=r"role certifier may not submit access\.decision"):
        ledger.append([certifier.sign("access.decision", payload)])
    with pytest.raises(PermissionDenied, match="only the owner of 'zj-line-1' records access decisions"):
        ledger.append([rival.sign("access.decision", payload)])
    with pytest.raises(PermissionDenied, match="belongs to"):
        ledger.append([rival.sign("policy.set", {"dataset": "zj-line-1", "offer": "urn:x:1", "hash": "ab" * 32})])
