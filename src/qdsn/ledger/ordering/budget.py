"""What one submitter may put on the log: a token bucket of transactions per signer, and a daily quota
of the transactions a member writes at will (drafting a quality notification). The log operator's
orderer charges each batch where it is ordered, so every door pays alike: the API, the etcd path and
a relay. The counts are kept in the node's database, each charge in one transaction, so that neither
a restart nor a second process starts a submitter afresh.

Sizes: the busiest legitimate submitter is a plant anchoring its IoT batches (one `dataset.anchor` per
batch of up to 10,000 readings, about one a second per gateway, or a file's thousands of batches at
once); PACT denials and refusals are flushed as one counted entry per window. RATE and BURST leave
that ample room. The regulator's own entries and the entries that keep the log honest (cosignatures,
split-view alerts) are never charged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from qdsn.errors import InvalidInput, RateLimited
from qdsn.ledger.tx import Envelope

RATE = 20.0  # transactions a second a submitter's bucket refills with
BURST = 2_000  # transactions a submitter may send at once (a file's worth of anchors)
# (type, state) → how many one submitter may put on the log in one UTC day: a draft notification costs
# its sender nothing else, and names any member as its recipient.
DAILY: Mapping[tuple[str, str | None], int] = {("notification.transition", "CREATED"): 200}
UNCHARGED_TYPES = frozenset({"checkpoint.cosign", "alert.raise"})  # keeping the log honest is never refused
UNCHARGED_ROLES = frozenset({"regulator"})
DAY = 86_400

metadata = MetaData()
buckets = Table(
    "budget_buckets",
    metadata,
    Column("signer", String(512), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("at", Float, nullable=False),  # Unix time the tokens were counted at
)
quotas = Table(
    "budget_quotas",
    metadata,
    Column("signer", String(512), primary_key=True),
    Column("kind", String(128), primary_key=True),  # "type state", e.g. "notification.transition CREATED"
    Column("day", BigInteger, primary_key=True),  # Unix day (UTC)
    Column("used", BigInteger, nullable=False),
)


def _kind(env: Envelope) -> tuple[str, str | None]:
    state = env.payload.get("state")
    return env.type, state if isinstance(state, str) else None


def _name(kind: tuple[str, str | None]) -> str:
    return " ".join(k for k in kind if k)


class Budget:
    """The per-submitter budget a log operator enforces. `engine`: the node's database; `role_of`: a
    submitter's role on the ledger (None if unknown); `own`: DIDs never charged (this node's);
    `clock`: Unix time."""

    def __init__(self, engine: Engine, role_of: Callable[[str], str | None], *, own: Sequence[str] = (),
                 rate: float = RATE, burst: int = BURST, daily: Mapping[tuple[str, str | None], int] = DAILY,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.engine, self.role_of, self.own = engine, role_of, frozenset(own)
        self.rate, self.burst, self.daily, self.clock = rate, burst, dict(daily), clock
        self._lock = threading.Lock()  # one charge at a time in this process; the transaction for the rest
        metadata.create_all(engine)

    def charged(self, envelopes: Sequence[Envelope]) -> dict[str, list[Envelope]]:
        """The envelopes of a batch that count against their submitters' budgets, by submitter."""
        out: dict[str, list[Envelope]] = {}
        for env in envelopes:
            if env.type in UNCHARGED_TYPES or env.submitter in self.own:
                continue
            if self.role_of(env.submitter) in UNCHARGED_ROLES:
                continue
            out.setdefault(env.submitter, []).append(env)
        return out

    def charge(self, envelopes: Sequence[Envelope]) -> Callable[[], None]:
        """Take a batch from its submitters' budgets, or raise RateLimited (nothing taken) saying how long
        to wait and what to do. Returns a refund of its daily quota, for a batch the log then refuses."""
        by_signer = self.charged(envelopes)
        if not by_signer:
            return lambda: None
        try:
            return self._charge(by_signer)
        except IntegrityError:  # another process made the signer's first row at the same moment: read it now
            return self._charge(by_signer)

    def _charge(self, by_signer: dict[str, list[Envelope]]) -> Callable[[], None]:
        now = self.clock()
        day = int(now // DAY)
        taken: list[tuple[str, str, int]] = []
        with self._lock, self.engine.begin() as c:
            for signer, envs in by_signer.items():
                n = len(envs)
                if n > self.burst:
                    raise InvalidInput(f"a batch of {n} transactions from {signer} is more than the "
                                       f"{self.burst} one submitter may send at once",
                                       f"send at most {self.burst} at a time")  # fmt: skip
                row = c.execute(select(buckets.c.tokens, buckets.c.at).where(buckets.c.signer == signer)
                                .with_for_update()).first()  # fmt: skip
                earned = 0.0 if row is None else row.tokens + max(0.0, now - row.at) * self.rate
                tokens = self.burst if row is None else min(self.burst, earned)
                if tokens < n:
                    raise RateLimited(
                        f"{signer} has sent more transactions than the log takes from one member "
                        f"({self.burst} at once, then {self.rate:g} a second)",
                        "send fewer at a time, or wait and send the same batch again",
                        retry_after=(n - tokens) / self.rate)  # fmt: skip
                for kind, count in _count(envs).items():
                    limit = self.daily.get(kind)
                    if limit is None:
                        continue
                    key = (signer, _name(kind), day)
                    used = c.execute(select(quotas.c.used).where(quotas.c.signer == key[0], quotas.c.kind == key[1],
                                                                 quotas.c.day == day)
                                     .with_for_update()).scalar() or 0  # fmt: skip
                    if used + count > limit:
                        raise RateLimited(
                            f"{signer} has put {used} {_name(kind)} on the log today (UTC), and {limit} is the most "
                            f"one member may in a day; {count} more would exceed it",
                            "send (or cancel) what is already drafted, and draft again after 00:00 UTC",
                            retry_after=(day + 1) * DAY - now)  # fmt: skip
                    taken.append((*key[:2], count))
                    if used:
                        c.execute(update(quotas).where(quotas.c.signer == key[0], quotas.c.kind == key[1],
                                                       quotas.c.day == day).values(used=used + count))  # fmt: skip
                    else:
                        c.execute(quotas.insert().values(signer=key[0], kind=key[1], day=day, used=count))
                if row is None:
                    c.execute(buckets.insert().values(signer=signer, tokens=tokens - n, at=now))
                else:
                    c.execute(update(buckets).where(buckets.c.signer == signer).values(tokens=tokens - n, at=now))
            c.execute(delete(quotas).where(quotas.c.day < day))  # yesterday's counts no longer limit anything

        def refund() -> None:
            with self._lock, self.engine.begin() as c:
                for signer, kind, count in taken:
                    c.execute(update(quotas).where(quotas.c.signer == signer, quotas.c.kind == kind,
                                                   quotas.c.day == day).values(used=quotas.c.used - count))  # fmt: skip

        return refund

    def used_today(self, signer: str, kind: tuple[str, str | None]) -> int:
        """How many of `kind` `signer` has put on the log today (UTC)."""
        day = int(self.clock() // DAY)
        with self.engine.connect() as c:
            return int(c.execute(select(quotas.c.used).where(quotas.c.signer == signer, quotas.c.kind == _name(kind),
                                                             quotas.c.day == day)).scalar() or 0)  # fmt: skip


def _count(envs: Sequence[Envelope]) -> dict[tuple[str, str | None], int]:
    out: dict[tuple[str, str | None], int] = {}
    for env in envs:
        k = _kind(env)
        out[k] = out.get(k, 0) + 1
    return out
