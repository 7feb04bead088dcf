"""A provider's offers and negotiations, kept in SQL beside its ledger replica (SQLite or PostgreSQL).
Offers are immutable: a changed offer is a new uid, so an agreement's offer hash always means one
offer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update

from qdsn.errors import Conflict, NotFound
from qdsn.ledger.store import open_engine
from qdsn.policy.negotiation import Negotiation
from qdsn.policy.odrl import load, offer_hash

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


class PolicyStore:
    """Offers by uid and dataset; negotiations by provider pid, with the consumer they belong to."""

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
            raise NotFound(f"no offer {uid!r} here", "see the catalog for the offers this node makes")
        return row.dataset, orjson.loads(row.body)

    def save(self, n: Negotiation, consumer: str) -> None:
        body = orjson.dumps(asdict(n)).decode()
        with self.engine.begin() as c:
            done = c.execute(
                update(negotiations).where(negotiations.c.provider_pid == n.provider_pid).values(body=body)
            )
            if done.rowcount == 0:
                c.execute(insert(negotiations).values(provider_pid=n.provider_pid, consumer=consumer, body=body))

    def negotiation(self, provider_pid: str) -> tuple[Negotiation, str]:
        """A negotiation and the DID of its consumer."""
        with self.engine.connect() as c:
            row = c.execute(select(negotiations).where(negotiations.c.provider_pid == provider_pid)).first()
        if row is None:
            raise NotFound(f"no negotiation {provider_pid!r}")
        d = orjson.loads(row.body)
        d["history"] = tuple(tuple(h) for h in d["history"])
        return Negotiation(**d), row.consumer

    def close(self) -> None:
        self.engine.dispose()
