"""Ingestion resumes after a crash at any point: batches left between the vault and the ledger are
settled, the same file run again stores only what is missing, and a refused batch leaves nothing."""

import os
import stat

import orjson
import pytest

from qdsn.data.ingest import ingest
from qdsn.data.vault import Vault
from qdsn.errors import QDSNError
from qdsn.ledger import Ledger
from qdsn.node.home import find_anchor

from ..ledger.conftest import ORIGIN, member
from .test_ingest import NOW, write_csv
from .test_vault import Keys


class Crash(Exception):
    """The process dies here (not a refusal: nothing is cleaned up)."""


@pytest.fixture
def node(tmp_path, vault_url):
    regulator, owner = member("regulator", "SAMR"), member("enterprise", "Acme")
    ledger = Ledger.open(str(tmp_path / "ledger.db"), origin=ORIGIN)
    ledger.append(
        [
            regulator.sign("identity.register", regulator.register_payload()),
            regulator.sign("identity.register", owner.register_payload()),
            owner.sign("dataset.declare", {"dataset": "d", "title": "D", "kind": "measurements"}),
        ]
    )
    vault = Vault(vault_url, Keys())  # SQLite and PostgreSQL
    vault.create("d", "measurements")
    return ledger, vault, owner


def anchoring(ledger, owner, crash_before=None, crash_after=None):
    """Anchors on the real ledger; dies before or after the given batch (by first record) lands."""

    def anchor(batch):
        if batch.first == crash_before:
            raise Crash
        receipt = ledger.append([owner.sign("dataset.anchor", batch.anchor_payload())])[0]
        if isinstance(receipt, QDSNError):
            raise receipt
        if batch.first == crash_after:
            raise Crash
        return receipt.txid

    return anchor, lambda dataset, first: find_anchor(ledger, owner.did, dataset, first)


def values(vault):
    return sorted(round(r["value"], 4) for r in vault.records("d"))


def anchored_roots(ledger):
    return lambda first: (found := find_anchor(ledger, ledger.state.datasets["d"].owner, "d", first)) and found[1].root


@pytest.mark.parametrize("where", ["crash_before", "crash_after"])
def test_a_crash_between_vault_and_ledger_is_finished_by_the_same_command(tmp_path, node, where):
    ledger, vault, owner = node
    data = [17.5 + i / 1000 for i in range(95)]
    path = write_csv(tmp_path / "a.csv", data)
    anchor, lookup = anchoring(ledger, owner, **{where: 40})
    with pytest.raises(Crash):
        ingest(path, vault, "d", "measurements", anchor, batch_size=20, now=NOW, lookup=lookup)
    anchor, lookup = anchoring(ledger, owner)
    again = ingest(path, vault, "d", "measurements", anchor, batch_size=20, now=NOW, lookup=lookup)
    assert again.already + again.accepted == 95 and again.already >= 40
    assert values(vault) == sorted(round(v, 4) for v in data)  # every record once
    assert ledger.state.datasets["d"].anchored == 95 and vault.unanchored("d") == []
    assert vault.verify("d", anchored_roots(ledger)) == 95
    # and a later file extends the dataset
    more = ingest(write_csv(tmp_path / "b.csv", [18.0]), vault, "d", "measurements", anchor, now=NOW, lookup=lookup)
    assert more.accepted == 1 and ledger.state.datasets["d"].anchored == 96


def test_the_same_file_twice_is_stored_once(tmp_path, node):
    ledger, vault, owner = node
    anchor, lookup = anchoring(ledger, owner)
    path = write_csv(tmp_path / "a.csv", [17.5 + i / 1000 for i in range(30)])
    first = ingest(path, vault, "d", "measurements", anchor, batch_size=7, now=NOW, lookup=lookup)
    # a different batch size does not change which rows are stored
    second = ingest(path, vault, "d", "measurements", anchor, batch_size=11, now=NOW, lookup=lookup)
    assert (first.accepted, second.accepted, second.already) == (30, 0, 30)
    assert len(vault.records("d")) == 30 and ledger.state.datasets["d"].anchored == 30


def test_a_refused_anchor_leaves_the_vault_as_it_was(tmp_path, node):
    ledger, vault, owner = node
    stranger = member("enterprise", "Other")  # not registered: the ledger refuses its anchors
    anchor, _ = anchoring(ledger, stranger)
    lookup = lambda dataset, first: find_anchor(ledger, owner.did, dataset, first)  # noqa: E731
    with pytest.raises(QDSNError):
        ingest(write_csv(tmp_path / "a.csv", [17.5] * 30), vault, "d", "measurements", anchor, now=NOW, lookup=lookup)
    assert vault._row("d").next_seq == 0 and vault.unanchored("d") == [] and vault.records("d") == []
    anchor, lookup = anchoring(ledger, owner)
    done = ingest(
        write_csv(tmp_path / "a.csv", [17.5] * 30), vault, "d", "measurements", anchor, now=NOW, lookup=lookup
    )
    assert done.accepted == 30 and vault.verify("d", anchored_roots(ledger)) == 30


def test_a_rerun_sets_bad_rows_aside_once_in_a_private_file(tmp_path, node):
    ledger, vault, owner = node
    path = write_csv(tmp_path / "a.csv", [17.5 + i / 100 for i in range(40)], bad={5: "conductor resistance,x,y\n"})
    aside = tmp_path / "aside.jsonl"
    anchor, lookup = anchoring(ledger, owner, crash_before=10)
    with pytest.raises(Crash):
        ingest(path, vault, "d", "measurements", anchor, batch_size=10, now=NOW, quarantine=aside, lookup=lookup)
    anchor, lookup = anchoring(ledger, owner)
    ingest(path, vault, "d", "measurements", anchor, batch_size=10, now=NOW, quarantine=aside, lookup=lookup)
    lines = [orjson.loads(x) for x in aside.read_bytes().splitlines()]
    assert [x["at"] for x in lines] == ["row 5"]
    assert stat.S_IMODE(os.stat(aside).st_mode) == 0o600
    assert len(vault.records("d")) == 39


def test_after_a_crash_another_file_extends_the_dataset_and_the_first_resumes_later(tmp_path, node):
    ledger, vault, owner = node
    a = write_csv(tmp_path / "a.csv", [17.5 + i / 1000 for i in range(50)])
    b = write_csv(tmp_path / "b.csv", [18.5 + i / 1000 for i in range(10)])
    anchor, lookup = anchoring(ledger, owner, crash_before=20)
    with pytest.raises(Crash):
        ingest(a, vault, "d", "measurements", anchor, batch_size=10, now=NOW, lookup=lookup)
    anchor, lookup = anchoring(ledger, owner)
    assert ingest(b, vault, "d", "measurements", anchor, batch_size=10, now=NOW, lookup=lookup).accepted == 10
    rest = ingest(a, vault, "d", "measurements", anchor, batch_size=10, now=NOW, lookup=lookup)
    assert (rest.already, rest.accepted) == (30, 20)
    assert len(vault.records("d")) == 60 == ledger.state.datasets["d"].anchored
    assert vault.verify("d", anchored_roots(ledger)) == 60
