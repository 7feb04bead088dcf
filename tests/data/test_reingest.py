"""A record is stored once whatever file brings it again: a shorter prefix of a file already ingested, a
window that overlaps it, the same rows re-exported by Excel in GB18030 or in another order, a crash at
any point followed by any of these; new records are appended and anchored. Runs on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import delete, update

from qdsn.data.ingest import ingest, validate
from qdsn.data.vault import vault_keys
from qdsn.errors import Conflict, IntegrityError

from . import test_resume
from .test_ingest import NOW
from .test_resume import Crash, anchored_roots, anchoring

node = test_resume.node  # the fixture: a ledger with the owner registered, and its vault

HEADER = "characteristic,value,time,lot,device"


def rows(start, end):
    """Plant rows i in [start, end): each a distinct reading (its own value and second)."""
    return [
        f"导体电阻,{17 + i / 1000:.3f},2026-03-01T08:{i // 60 % 60:02d}:{i % 60:02d}+08:00,L{i // 10},ohm-3"
        for i in range(start, end)
    ]


def csv(path, lines, encoding="utf-8", newline="\n"):
    path.write_bytes((newline.join([HEADER, *lines]) + newline).encode(encoding))
    return path


def put(path, ledger, vault, owner, batch_size=7, **crash):
    anchor, lookup = anchoring(ledger, owner, **crash)
    return ingest(path, vault, "d", "measurements", anchor, batch_size=batch_size, now=NOW, lookup=lookup)


def held(vault):
    return sorted((r["value"], r["time"]) for r in vault.records("d"))


def expected(start, end):
    return sorted((17 + i / 1000, f"2026-03-01T08:{i // 60 % 60:02d}:{i % 60:02d}+08:00") for i in range(start, end))


def consistent(ledger, vault, n):
    assert len(vault.records("d")) == n == ledger.state.datasets["d"].anchored
    assert vault.unanchored("d") == [] and vault.verify("d", anchored_roots(ledger)) == n


@pytest.mark.parametrize("part", [1, 8, 20])  # inside the first batch, past its end, across several
def test_a_shorter_prefix_of_an_ingested_file_stores_nothing(tmp_path, node, part):
    ledger, vault, owner = node
    whole = put(csv(tmp_path / "whole.csv", rows(0, 50)), ledger, vault, owner)
    assert (whole.accepted, whole.already) == (50, 0)
    prefix = put(csv(tmp_path / "prefix.csv", rows(0, part)), ledger, vault, owner, batch_size=3)
    assert (prefix.accepted, prefix.already, prefix.batches) == (0, part, [])
    assert held(vault) == expected(0, 50)
    consistent(ledger, vault, 50)


def test_an_overlapping_window_adds_only_its_new_rows(tmp_path, node):
    ledger, vault, owner = node
    put(csv(tmp_path / "mon.csv", rows(0, 30)), ledger, vault, owner)
    # Excel keeps the last 30 rows of a growing sheet: 10 old ones dropped at the top, 20 added below
    tue = put(csv(tmp_path / "tue.csv", rows(10, 50)), ledger, vault, owner)
    assert (tue.accepted, tue.already) == (20, 20)
    # a window in the middle, and every row so far sorted newest first: nothing new
    assert put(csv(tmp_path / "mid.csv", rows(25, 35)), ledger, vault, owner).accepted == 0
    assert put(csv(tmp_path / "desc.csv", rows(0, 50)[::-1]), ledger, vault, owner).accepted == 0
    # a file whose first row is old and the rest new
    wed = put(csv(tmp_path / "wed.csv", rows(49, 60)), ledger, vault, owner)
    assert (wed.accepted, wed.already) == (10, 1)
    assert held(vault) == expected(0, 60)
    consistent(ledger, vault, 60)


def test_a_daily_excel_export_in_gb18030_is_the_same_records(tmp_path, node):
    ledger, vault, owner = node
    put(csv(tmp_path / "day1.csv", rows(0, 20)), ledger, vault, owner)  # UTF-8
    # the next day the sheet has grown and Excel on Chinese Windows saves it as GBK with CRLF
    day2 = csv(tmp_path / "day2.csv", rows(0, 35), encoding="gb18030", newline="\r\n")
    assert day2.read_bytes() != (tmp_path / "day1.csv").read_bytes()[:100]
    got = put(day2, ledger, vault, owner)
    assert (got.accepted, got.already) == (15, 20)
    assert {r["characteristic"] for r in vault.records("d")} == {"导体电阻"}
    consistent(ledger, vault, 35)


def test_a_record_a_file_holds_twice_is_stored_twice_once(tmp_path, node):
    ledger, vault, owner = node
    same = rows(0, 1) * 3  # the same reading three times: the plant's file says so
    assert put(csv(tmp_path / "a.csv", same + rows(1, 4)), ledger, vault, owner).accepted == 6
    again = put(csv(tmp_path / "b.csv", rows(1, 4) + same), ledger, vault, owner)
    assert (again.accepted, again.already) == (0, 6)
    fewer = put(csv(tmp_path / "c.csv", same[:2]), ledger, vault, owner)
    assert (fewer.accepted, fewer.already) == (0, 2)
    more = put(csv(tmp_path / "d.csv", same * 2), ledger, vault, owner)  # six of it now: three more
    assert (more.accepted, more.already) == (3, 3)
    consistent(ledger, vault, 9)


@pytest.mark.parametrize("where", ["crash_before", "crash_after"])
@pytest.mark.parametrize("at", [0, 21, 35])
def test_after_a_crash_anywhere_a_prefix_or_the_whole_file_stores_each_record_once(tmp_path, node, where, at):
    ledger, vault, owner = node
    whole = csv(tmp_path / "whole.csv", rows(0, 40))
    with pytest.raises(Crash):
        put(whole, ledger, vault, owner, **{where: at})
    # the batch at `at` is in the vault but not (or not known to be) anchored; a prefix of the file
    # settles it and adds only what the crash left out of the prefix
    part = put(csv(tmp_path / "part.csv", rows(0, 10)), ledger, vault, owner, batch_size=4)
    stored = min(at + 7, 40)
    assert part.already == min(10, stored) and part.accepted == 10 - min(10, stored)
    rest = put(whole, ledger, vault, owner)
    assert rest.already == max(10, stored) and rest.accepted == 40 - rest.already
    assert held(vault) == expected(0, 40)
    consistent(ledger, vault, 40)


def test_records_stored_before_record_keys_are_known_by_their_content(tmp_path, node):
    ledger, vault, owner = node
    put(csv(tmp_path / "a.csv", rows(0, 20)), ledger, vault, owner)
    with vault.engine.begin() as c:  # as a vault written before record keys existed
        c.execute(delete(vault_keys))
    again = put(csv(tmp_path / "b.csv", rows(5, 25)), ledger, vault, owner)
    assert (again.accepted, again.already) == (5, 15)
    consistent(ledger, vault, 25)


def test_records_from_another_path_are_not_stored_again_from_a_file(tmp_path, node):
    ledger, vault, owner = node
    anchor, _ = anchoring(ledger, owner)
    records, _ = validate(csv(tmp_path / "a.csv", rows(0, 12)), "measurements", now=NOW)
    batch = vault.add_batch("d", records[:8])  # stored as a device's readings are, not from a file
    vault.mark_anchored(batch, anchor(batch))
    got = put(tmp_path / "a.csv", ledger, vault, owner)
    assert (got.accepted, got.already) == (4, 8)
    consistent(ledger, vault, 12)


def test_altered_record_keys_are_refused_never_taken_as_stored(tmp_path, node):
    ledger, vault, owner = node
    put(csv(tmp_path / "a.csv", rows(0, 10)), ledger, vault, owner)
    with vault.engine.begin() as c:
        c.execute(update(vault_keys).values(sealed=b"\0" * 200))
    with pytest.raises(IntegrityError):
        put(csv(tmp_path / "b.csv", rows(0, 20)), ledger, vault, owner)
    assert len(vault.records("d")) == 10


def test_records_counted_before_the_dataset_grew_are_not_written(node):
    _, vault, _ = node
    records = [{"characteristic": "导体电阻", "value": 17.5, "time": "2026-03-01T08:00:00+08:00"}]
    keys = vault.record_keys("d", records)
    _, size = vault.held("d", keys)
    vault.add_batch("d", records)  # another ingest stored it meanwhile
    with pytest.raises(Conflict):
        list(vault.add_stream("d", [records], [keys], at=size))
    assert len(vault.records("d")) == 1
