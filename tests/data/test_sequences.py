"""Device sequence numbers: what arrived is kept as ranges in the vault, sealed, in the transaction that
stores the readings; what never arrived is a gap."""

from qdsn.data.sequences import describe, holes, merge, numbered
from qdsn.data.vault import Vault

from .test_vault import Keys


def test_ranges_merge_and_the_holes_are_what_never_arrived():
    assert merge([], [5, 3, 4, 1, 1]) == [(1, 1), (3, 5)]
    assert merge([(1, 1), (3, 5)], [2, 9]) == [(1, 5), (9, 9)]
    assert holes([(3, 5), (9, 9)]) == [(1, 2), (6, 8)]
    assert holes([(1, 100)]) == [] and holes([]) == []
    assert describe([(1, 2), (6, 6)]) == "1–2, 6"
    assert describe([(i, i) for i in range(1, 20, 2)], limit=2) == "1, 3 and 8 more gaps"
    found = numbered([{"device": "a", "seq": 1}, {"device": "a", "seq": 2, "boot": "x"}, {"seq": 3},
                      {"device": "a", "seq": True}, {"device": "a", "seq": 0}, {"device": "a"}])  # fmt: skip
    assert found == {("a", None): [1], ("a", "x"): [2]}


def test_the_vault_keeps_each_devices_numbers_sealed(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    row = {"characteristic": "c", "value": 1.0, "time": "2026-03-01T08:00:00Z"}
    vault.add_batch("d", [{**row, "device": "secret-gauge-77", "seq": n} for n in (3, 1, 2, 6)])
    vault.add_batch("d", [{**row, "device": "secret-gauge-77", "seq": n} for n in (2, 9)])  # a repeat, and more
    list(vault.add_stream("d", [[{**row, "device": "other", "seq": 2}]]))  # file ingest keeps them too
    streams = {s.device: s for s in vault.streams("d")}
    assert streams["secret-gauge-77"].seen == [(1, 3), (6, 6), (9, 9)]
    assert streams["secret-gauge-77"].gaps == [(4, 5), (7, 8)] and streams["secret-gauge-77"].missing == 4
    assert streams["other"].gaps == [(1, 1)]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("v.db*"))
    assert b"secret-gauge-77" not in raw  # the device's name is sealed with the dataset's key
    first_of_last = vault.unanchored("d")[-1].first
    vault.discard("d", first_of_last)  # records the ledger never anchored go, and their numbers with them
    assert {s.device for s in vault.streams("d")} == {"secret-gauge-77"}
