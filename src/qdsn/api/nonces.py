"""The nonces of signed requests a node accepted, kept in SQL beside its ledger replica (SQLite or
PostgreSQL) until their signatures could no longer be accepted: a request is used once, across
restarts and across the processes that serve one node. A nonce is taken by inserting it under the
primary key (signer, nonce), so of two requests by one signer with the same nonce only one can ever
pass, and no signer can use up another's nonce."""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, MetaData, String, Table, delete, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from qdsn.ledger.store import open_engine

metadata = MetaData()
nonces = Table(
    "api_nonces",
    metadata,
    Column("signer", String(512), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("created", BigInteger, nullable=False),  # the signature's, Unix time
    Column("until", BigInteger, nullable=False, index=True),  # Unix time after which it may be forgotten
)
PRUNE_EVERY = 60.0  # seconds between sweeps of nonces whose signatures have expired


class NonceStore:
    """Durable, atomic `use` of nonces (the `signatures.NonceLog` of a node)."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        _migrate(self.engine)
        metadata.create_all(self.engine)
        self._pruned = 0.0

    def use(self, nonce: str, created: int, until: float, signer: str = "") -> bool:
        """True the first time `nonce` (of a signature `created` then) is used; it is kept until `until`
        (Unix time), when that signature could no longer be accepted."""
        now = time.time()
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            with self.engine.begin() as c:
                c.execute(delete(nonces).where(nonces.c.until < int(now)))
        try:
            with self.engine.begin() as c:
                c.execute(insert(nonces).values(nonce=nonce, signer=signer, created=created, until=int(until) + 1))
        except SQLIntegrityError:
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()


def _migrate(engine: Engine) -> None:
    """Re-key a table of an earlier version, keyed by the nonce alone, by (signer, nonce), keeping its
    rows: the nonces it holds are still refused after the upgrade."""
    if "api_nonces" not in inspect(engine).get_table_names():
        return
    if inspect(engine).get_pk_constraint("api_nonces")["constrained_columns"] == ["signer", "nonce"]:
        return
    old = Table("api_nonces_old", MetaData(), *(Column(c.name, c.type) for c in nonces.columns))
    with engine.begin() as c:
        c.execute(text("ALTER TABLE api_nonces RENAME TO api_nonces_old"))
        c.execute(text("DROP INDEX IF EXISTS ix_api_nonces_until"))  # index names are per schema, not per table
        metadata.create_all(c)
        c.execute(insert(nonces).from_select([x.name for x in old.columns], select(*old.columns)))
        c.execute(text("DROP TABLE api_nonces_old"))
