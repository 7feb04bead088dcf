"""Vault and ledger verification on PostgreSQL: a dropped row, a table put back to an earlier state
and a database restored from an older copy are reported, never ✓."""

import uuid

import sqlalchemy

from qdsn.ledger import Ledger
from qdsn.ledger.audit import verify_ledger
from qdsn.ledger.integrity import Outcome
from qdsn.node import seen
from qdsn.node.completeness import verify_vault

from ..services import fresh_database
from .world import home_of, world


def vault_verdict(home):
    ledger = Ledger.open(home.ledger_location())
    try:
        return verify_vault(home.ledger_location(), home.kek, ledger.store, home.did).verdict
    finally:
        ledger.close()


def sql(url, *statements):
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as c:
        for s in statements:
            c.exec_driver_sql(s)
    engine.dispose()


def test_a_dropped_row_and_a_rolled_back_table_on_postgresql(tmp_path, postgres_url):
    url = fresh_database(postgres_url, f"verify_{uuid.uuid4().hex[:12]}")
    acme = home_of(world(tmp_path, {"line-1": [300, 300], "line-2": [200]}, url=url))
    assert vault_verdict(acme).ok
    assert verify_ledger(url, origin=acme.origin).ok
    # a table put back to an earlier state: line-1's second batch gone from every vault table
    sql(url, 'DELETE FROM vault_chunks WHERE dataset = \'line-1\' AND "first" >= 300',
        "DELETE FROM vault_batches WHERE dataset = 'line-1' AND \"first\" = 300",
        "UPDATE vault_datasets SET next_seq = 300 WHERE id = 'line-1'")  # fmt: skip
    v = vault_verdict(acme)
    assert v.outcome is Outcome.INCOMPLETE and "300 records anchored on the ledger are missing" in v.message
    # a dropped row of the other dataset: damage, named
    sql(url, "DELETE FROM vault_chunks WHERE dataset = 'line-2'")
    assert "line-2" in vault_verdict(acme).message
    # a dropped ledger entry
    sql(url, "DELETE FROM entries WHERE seq = 3")
    v = verify_ledger(url, origin=acme.origin)
    assert v.outcome is Outcome.DAMAGED and "entry 3" in v.message


def test_a_database_restored_from_an_older_copy_on_postgresql(tmp_path, postgres_url):
    url = fresh_database(postgres_url, f"verify_{uuid.uuid4().hex[:12]}")
    acme = home_of(world(tmp_path, {"line-1": [100]}, url=url))
    old = url.rsplit("/", 1)[0] + f"/old_{uuid.uuid4().hex[:8]}"
    sql_admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with sql_admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{old.rsplit("/", 1)[1]}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
    sql_admin.dispose()
    vault = acme.vault()
    batch = vault.add_batch("line-1", [{"value": i} for i in range(50)])
    vault.mark_anchored(batch, acme.anchor(batch))
    vault.close()
    reg = home_of(acme).__class__.open(tmp_path / "reg", "pw")
    ledger = Ledger.open(url)
    note = ledger.sign_checkpoint(reg.log_signer())
    assert seen.remember(acme.path, note, reg.log_signer().verifier(), ledger.store)
    ledger.close()
    # the node's database is now the older copy, vault and ledger alike
    v = verify_ledger(old, origin=acme.origin, seen=lambda s: seen.guard(acme.path, s))
    assert v.outcome is Outcome.INCOMPLETE and "behind the checkpoint of size" in v.message
    acme.ledger_url = old
    assert vault_verdict(acme).ok  # consistent with its own (old) ledger: only the checkpoint exposes it


def test_an_empty_postgresql_database_is_not_a_verified_ledger_and_stays_empty(postgres_url):
    url = fresh_database(postgres_url, f"verify_{uuid.uuid4().hex[:12]}")
    v = verify_ledger(url)
    assert v.outcome is Outcome.INCOMPLETE and "holds none of QDSN's tables" in v.message
    assert verify_ledger(url, allow_empty=True).ok
    engine = sqlalchemy.create_engine(url)
    assert sqlalchemy.inspect(engine).get_table_names() == []  # verifying created nothing
    engine.dispose()
