"""File ingestion: a bad row refuses the file with file, row and field named and nothing written,
or is quarantined on request; good files are sealed and anchored batch by batch."""

import json
from datetime import UTC, datetime

import pytest

from qdsn.data.ingest import ingest, validate
from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput

from .test_vault import Keys

NOW = datetime(2026, 3, 2, tzinfo=UTC)
HEADER = "characteristic,value,time,lot,device\n"
ROW = "conductor resistance,{v},2026-03-01T08:{m:02d}:00+08:00,L1,ohm-3\n"


def write_csv(path, values, bad=None):
    lines = [HEADER] + [ROW.format(v=v, m=i % 60) for i, v in enumerate(values)]
    for i, line in (bad or {}).items():
        lines[i - 1] = line
    path.write_text("".join(lines), encoding="utf-8")
    return path


def anchors():
    made = []
    return made, lambda batch: made.append(batch) or f"tx{len(made)}"


def test_a_good_file_is_sealed_and_anchored_in_batches(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    made, anchor = anchors()
    summary = ingest(
        write_csv(tmp_path / "a.csv", [17.5 + i / 1000 for i in range(250)]),
        vault,
        "d",
        "measurements",
        anchor,
        batch_size=100,
        now=NOW,
    )
    assert (summary.rows, summary.accepted, len(summary.batches)) == (250, 250, 3)
    assert [b.count for b in made] == [100, 100, 50]
    assert vault.records("d", 249)[0]["value"] == 17.749
    assert vault.unanchored("d") == []


def test_bad_rows_refuse_the_file_and_name_file_row_and_field(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    path = write_csv(
        tmp_path / "bad.csv",
        [17.5] * 10,
        bad={4: ROW.format(v="seventeen", m=1), 7: "conductor resistance,17.5,2030-01-01T00:00:00Z,L1,x\n"},
    )
    with pytest.raises(InvalidInput) as e:
        ingest(path, vault, "d", "measurements", anchors()[1], now=NOW)
    text = str(e.value)
    assert "bad.csv" in text and "row 4, field 'value'" in text and "row 7, field 'time'" in text
    assert "nothing was written" in text
    assert vault.records("d") == []


def test_quarantine_keeps_the_good_rows(tmp_path):
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    path = write_csv(tmp_path / "mixed.csv", [17.5] * 10, bad={3: ROW.format(v="nan", m=2)})
    q = tmp_path / "quarantine.jsonl"
    summary = ingest(path, vault, "d", "measurements", anchors()[1], quarantine=q, now=NOW)
    assert (summary.accepted, summary.quarantined) == (9, 1)
    entry = json.loads(q.read_text())
    assert entry["row"] == 3 and entry["field"] == "value" and "finite" in entry["reason"]


def test_json_and_jsonl(tmp_path):
    recs = [{"characteristic": "d", "value": 2.5 + i / 100, "time": "2026-03-01T08:00:00Z"} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    assert (
        validate(tmp_path / "a.json", "measurements", now=NOW)[0]
        == validate(tmp_path / "a.jsonl", "measurements", now=NOW)[0]
    )
    (tmp_path / "b.json").write_text('{"not": "a list"}')
    with pytest.raises(InvalidInput, match="array"):
        validate(tmp_path / "b.json", "measurements")
    with pytest.raises(InvalidInput, match="unknown file type"):
        validate(tmp_path / "a.xlsx", "measurements")
