"""A provider's offers, negotiations, agreements and transfer processes, kept in SQL beside its ledger
replica (SQLite or PostgreSQL). Offers are immutable: a changed offer is a new uid, so an agreement's
offer hash always means one offer. How often an agreement was used is never kept here: it is
counted on the ledger."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update

from qdsn.errors import Conflict, NotFound
from qdsn.ledger.store import open_engine
from qdsn.policy.negotiation import Negotiation
from qdsn.policy.odrl import load, offer_hash
from qdsn.policy.transfer import Transfer

metadata = MetaData()
offers = Table(
    "policy_offers",
    metadata,
    Column("uid", String(256), primary_key=True),
    Column("dataset", String(128), nullable=False, index=True),
    Column("hash", String(64), nullable=False),
    Column("body", Text, nullable=False),
)
negotiations = Table(
    "policy_negotiations",
    metadata,
    Column("provider_pid", String(128), primary_key=True),
    Column("consumer", String(512), nullable=False),
    Column("body", Text, nullable=False),
)
agreements = Table(
    "policy_agreements",
    metadata,
    Column("uid", String(256), primary_key=True),
    Column("dataset", String(128), nullable=False),
    Column("consumer", String(512), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("finalized", String(40), nullable=False),  # RFC 3339; elapsedTime counts from here
    Column("ended", Text, nullable=True),  # why it no longer allows anything
)
transfers = Table(
    "policy_transfers",
    metadata,
    Column("provider_pid", String(128), primary_key=True),
    Column("consumer", String(512), nullable=False),
    Column("agreement", String(256), nullable=False, index=True),
    Column("body", Text, nullable=False),
)


@dataclass(frozen=True)
class Agreement:
    """A finalized agreement as the provider keeps it."""

    uid: str
    dataset: str
    consumer: str
    policy: dict[str, Any]
    finalized: datetime
    ended: str | None


class PolicyStore:
    """Offers by uid and dataset; negotiations and transfers by provider pid, with the consumer they
    belong to; agreements by uid."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        metadata.create_all(self.engine)

    def put_offer(self, dataset: str, offer: dict[str, Any]) -> str:
        """Keep an offer for `dataset`; returns its hash. The same uid with other content is refused."""
        digest = offer_hash(load(offer))
        with self.engine.begin() as c:
            row = c.execute(select(offers.c.hash).where(offers.c.uid == offer["uid"])).first()
            if row is not None:
                if row.hash != digest:
                    raise Conflict(
                        f"offer {offer['uid']} exists with other content", "publish a changed offer under a new uid"
                    )
                return digest
            c.execute(
                insert(offers).values(uid=offer["uid"], dataset=dataset, hash=digest, body=orjson.dumps(offer).decode())
            )
        return digest

    def offers(self, dataset: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(dataset, offer) pairs, of one dataset or all."""
        q = select(offers.c.dataset, offers.c.body).order_by(offers.c.dataset, offers.c.uid)
        if dataset is not None:
            q = q.where(offers.c.dataset == dataset)
        with self.engine.connect() as c:
            return [(r.dataset, orjson.loads(r.body)) for r in c.execute(q)]

    def offer(self, uid: str) -> tuple[str, dict[str, Any]]:
        with self.engine.connect() as c:
            row = c.execute(select(offers.c.dataset, offers.c.body).where(offers.c.uid == uid)).first()
        if row is None:
            raise unknown_offer(uid)
        return row.dataset, orjson.loads(row.body)

    def save(self, n: Negotiation, consumer: str) -> None:
        with self.engine.begin() as c:
            _save_negotiation(c, n, consumer)

    def open_negotiations(self, consumer: str) -> int:
        """How many negotiations of `consumer` are neither finalized nor terminated (agreed, waiting for
        the consumer's verification)."""
        closed = [negotiations.c.body.not_like(f'%"state":"{s}"%') for s in ("FINALIZED", "TERMINATED")]
        with self.engine.connect() as c:  # the closed ones, most of a consumer's, are not read
            rows = c.execute(select(negotiations.c.body).where(negotiations.c.consumer == consumer, *closed)).all()
        return sum(orjson.loads(r.body)["state"] not in ("FINALIZED", "TERMINATED") for r in rows)

    def negotiation(self, provider_pid: str) -> tuple[Negotiation, str]:
        """A negotiation and the DID of its consumer."""
        with self.engine.connect() as c:
            row = c.execute(select(negotiations).where(negotiations.c.provider_pid == provider_pid)).first()
        if row is None:
            raise NotFound(f"no negotiation {provider_pid!r}")
        d = orjson.loads(row.body)
        d["history"] = tuple(tuple(h) for h in d["history"])
        return Negotiation(**d), row.consumer

    def finalize(self, n: Negotiation, consumer: str, dataset: str, at: datetime) -> None:
        """Save a FINALIZED negotiation and put its agreement in force, in one transaction."""
        assert n.state == "FINALIZED" and n.agreement is not None
        with self.engine.begin() as c:
            _save_negotiation(c, n, consumer)
            c.execute(insert(agreements).values(
                uid=n.agreement["uid"], dataset=dataset, consumer=consumer, body=orjson.dumps(n.agreement).decode(),
                finalized=at.isoformat(),
            ))  # fmt: skip

    def agreement(self, uid: str) -> Agreement:
        with self.engine.connect() as c:
            row = c.execute(select(agreements).where(agreements.c.uid == uid)).first()
        if row is None:
            raise NotFound(f"no agreement {uid!r}", "negotiate one for an offer of the catalog")
        return _agreement(row)

    def agreements(self, *, active: bool = True) -> list[Agreement]:
        """Every agreement, or only those not yet ended."""
        q = select(agreements).order_by(agreements.c.finalized)
        if active:
            q = q.where(agreements.c.ended.is_(None))
        with self.engine.connect() as c:
            return [_agreement(r) for r in c.execute(q)]

    def end_agreement(self, uid: str, why: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(agreements).where(agreements.c.uid == uid).values(ended=why))

    def save_transfer(self, t: Transfer, consumer: str) -> None:
        body = orjson.dumps(asdict(t)).decode()
        with self.engine.begin() as c:
            done = c.execute(update(transfers).where(transfers.c.provider_pid == t.provider_pid).values(body=body))
            if done.rowcount == 0:
                c.execute(insert(transfers).values(provider_pid=t.provider_pid, consumer=consumer,
                                                   agreement=t.agreement, body=body))  # fmt: skip

    def transfer(self, provider_pid: str) -> tuple[Transfer, str]:
        """A transfer process and the DID of its consumer."""
        with self.engine.connect() as c:
            row = c.execute(select(transfers).where(transfers.c.provider_pid == provider_pid)).first()
        if row is None:
            raise NotFound(f"no transfer process {provider_pid!r}")
        return _transfer(row.body), row.consumer

    def transfers(self, agreement: str) -> list[Transfer]:
        with self.engine.connect() as c:
            rows = c.execute(select(transfers.c.body).where(transfers.c.agreement == agreement)).all()
        return [_transfer(r.body) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


def _agreement(row: Any) -> Agreement:
    return Agreement(row.uid, row.dataset, row.consumer, orjson.loads(row.body), datetime.fromisoformat(row.finalized),
                     row.ended)  # fmt: skip


def _transfer(body: str) -> Transfer:
    d = orjson.loads(body)
    d["history"] = tuple(tuple(h) for h in d["history"])
    return Transfer(**d)


def unknown_offer(uid: str) -> NotFound:
    """What asking for an offer that is not here answers (and one the asker may not see, alike)."""
    return NotFound(f"no offer {uid!r} here", "see the catalog for the offers this node makes")


def _save_negotiation(c: Any, n: Negotiation, consumer: str) -> None:
    body = orjson.dumps(asdict(n)).decode()
    done = c.execute(update(negotiations).where(negotiations.c.provider_pid == n.provider_pid).values(body=body))
    if done.rowcount == 0:
        c.execute(insert(negotiations).values(provider_pid=n.provider_pid, consumer=consumer, body=body))
