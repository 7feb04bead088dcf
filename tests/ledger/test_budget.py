"""The log operator's budget per submitter on its own: a token bucket that refills with time, a daily
quota that a new day resets and a restart does not, a refund for a batch the log refused, and entries
that are never charged (the regulator's, this node's, cosignatures)."""

import pytest
from sqlalchemy import create_engine

from qdsn.errors import InvalidInput, RateLimited
from qdsn.ledger import tx
from qdsn.ledger.ordering.budget import DAY, Budget

MEMBER, REGULATOR, OWN = "did:key:z6MkMember", "did:key:z6MkRegulator", "did:key:z6MkOwn"
ROLES = {MEMBER: "enterprise", REGULATOR: "regulator", OWN: "enterprise"}


def env(submitter, type="dataset.declare", **payload):
    return tx.Envelope(type, payload, submitter, "00" * 16, "2026-03-01T00:00:00Z", "")


def budget(url, now, **kw):
    return Budget(create_engine(url), ROLES.get, own=(OWN,), clock=lambda: now[0], **kw)


def test_a_bucket_empties_and_refills_with_time(tmp_path):
    now = [10 * DAY + 5.0]
    b = budget(f"sqlite:///{tmp_path / 'b.db'}", now, rate=2.0, burst=10)
    b.charge([env(MEMBER)] * 10)
    with pytest.raises(RateLimited, match="at once, then 2 a second") as e:
        b.charge([env(MEMBER)] * 3)
    assert e.value.retry_after == 2  # 3 tokens at 2 a second
    now[0] += 1.5
    b.charge([env(MEMBER)] * 3)
    with pytest.raises(InvalidInput, match="send at most 10 at a time"):
        b.charge([env(MEMBER)] * 11)


def test_the_regulator_this_node_and_cosignatures_are_never_charged(tmp_path):
    now = [10 * DAY]
    b = budget(f"sqlite:///{tmp_path / 'b.db'}", now, rate=0.001, burst=1)
    for _ in range(5):
        b.charge([env(REGULATOR), env(OWN), env(MEMBER, "checkpoint.cosign"), env(MEMBER, "alert.raise")])
    b.charge([env(MEMBER)])
    with pytest.raises(RateLimited):
        b.charge([env(MEMBER)])


def test_a_daily_quota_holds_across_a_restart_resets_the_next_day_and_is_refunded_for_a_refusal(tmp_path):
    url, now = f"sqlite:///{tmp_path / 'b.db'}", [10 * DAY + 3600.0]
    daily = {("notification.transition", "CREATED"): 3}
    created = env(MEMBER, "notification.transition", state="CREATED")
    b = budget(url, now, daily=daily)
    b.charge([created] * 2)
    refund = b.charge([created])
    refund()  # the log refused that batch
    b.charge([created, env(MEMBER, "notification.transition", state="SENT")])
    b = budget(url, now, daily=daily)  # a new process on the same database
    with pytest.raises(RateLimited, match="today") as e:
        b.charge([created])
    assert e.value.retry_after == DAY - 3600
    assert b.used_today(MEMBER, ("notification.transition", "CREATED")) == 3
    now[0] += DAY
    b.charge([created] * 3)
