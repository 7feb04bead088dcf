"""The vault against the ledger, directly: shredded datasets, created-but-undeclared ones, marks
and anchors that disagree."""

import sqlite3

from qdsn.ledger import Ledger
from qdsn.ledger.integrity import Outcome
from qdsn.node.completeness import verify_vault

from .world import home_of, world


def report(home):
    ledger = Ledger.open(home.ledger_location())
    try:
        return verify_vault(str(home.path / "vault.db"), home.kek, ledger.store, home.did)
    finally:
        ledger.close()


def test_a_shredded_dataset_verifies_as_shredded_and_only_when_the_ledger_says_so(tmp_path):
    acme = home_of(world(tmp_path, {"line-1": [30], "line-2": [20]}))
    vault = acme.vault()
    vault.shred("line-1")
    vault.close()
    r = report(acme)  # a crash between destroying the key and recording it: pending, not damage
    assert r.verdict.ok and any("shredding not yet on the ledger" in n for n in r.verdict.notes)
    acme.submit("dataset.shred", {"dataset": "line-1"})
    r = report(acme)
    assert r.verdict.ok and {d.dataset: d.verdict.message for d in r.datasets}["line-1"] == "shredded"
    assert not r.verdict.notes


def test_created_not_declared_is_pending_and_a_stray_dataset_is_damage(tmp_path):
    acme = home_of(world(tmp_path, {"line-1": [30]}))
    vault = acme.vault()
    vault.create("line-9", "measurements")
    vault.close()
    r = report(acme)
    assert r.verdict.ok and any("not yet declared" in n for n in r.verdict.notes)
    vault = acme.vault()
    vault.add_batch("line-9", [{"value": 1}])
    vault.close()
    r = report(acme)
    assert r.verdict.outcome is Outcome.DAMAGED and "never declared it on the ledger" in r.verdict.message


def test_marks_and_anchors_that_disagree(tmp_path):
    acme = home_of(world(tmp_path, {"line-1": [30, 30]}, pending={"line-1": 5}))
    db = sqlite3.connect(acme.path / "vault.db")
    db.execute("UPDATE vault_batches SET anchored = 1, anchor_txid = ? WHERE first = 60", ("ab" * 32,))
    db.commit()
    r = report(acme)
    assert r.verdict.outcome is Outcome.DAMAGED and "ledger holds no anchor for it" in r.verdict.message
    db.execute("UPDATE vault_batches SET anchored = 0, anchor_txid = NULL WHERE first = 60")
    db.execute("UPDATE vault_batches SET anchored = 0 WHERE first = 30")
    db.commit()
    r = report(acme)  # the flag cleared but the anchor's id kept: altered, not a state a crash leaves
    assert r.verdict.outcome is Outcome.DAMAGED and "anchored flag or anchor id" in r.verdict.message
    db.execute("UPDATE vault_batches SET anchor_txid = NULL WHERE first = 30")
    db.commit()
    r = report(acme)  # a crash between the anchor and its mark: pending, not damage
    assert r.verdict.ok and any("not yet marked" in n for n in r.verdict.notes)
    db.execute("UPDATE vault_batches SET anchored = 1, anchor_txid = 'ab' WHERE first = 30")
    db.commit()
    db.close()
    assert "names anchor 'ab'" in report(acme).verdict.message


def test_each_record_has_at_most_one_message(tmp_path):
    acme = home_of(world(tmp_path, {"line-1": [3]}))
    vault = acme.vault()
    batch = vault.add_batch("line-1", [{"value": i} for i in range(4)], message_ids=[b"m1", b"m2", b"m3", b"m4"])
    vault.mark_anchored(batch, acme.anchor(batch))
    vault.close()
    assert report(acme).verdict.ok
    db = sqlite3.connect(acme.path / "vault.db")
    db.execute("UPDATE vault_messages SET seq = 4 WHERE seq = 3")
    db.commit()
    db.close()
    assert "message record" in report(acme).verdict.message
