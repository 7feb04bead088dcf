"""Files as plants have them: the same records ingested again (the same file, re-saved, or grown) are
skipped, not doubled; times without an offset read in a named zone; Excel's byte-order mark, `;` with
decimal commas and `NA` cells read; a column the model lacks is one message for the file; undeclared
characteristics and empty files are refused; row numbers are the file's lines; columns can be mapped."""

import json

import pytest

from qdsn.data.ingest import Layout, ingest, validate
from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput

from .test_ingest import NOW, anchors
from .test_vault import Keys


def rows(n, start=0):
    return [f"conductor resistance,{17 + i / 1000:.3f},2026-03-01T08:00:{i % 60:02d}+08:00,L{i // 10}"
            for i in range(start, start + n)]  # fmt: skip


def csv_file(path, lines, header="characteristic,value,time,lot", newline="\n", bom=False, encoding="utf-8"):
    data = (header + newline + newline.join(lines) + newline).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


@pytest.fixture
def vault(tmp_path):
    v = Vault(str(tmp_path / "v.db"), Keys())
    v.create("d", "measurements")
    return v


def put(path, vault, **kw):
    return ingest(path, vault, "d", "measurements", anchors()[1], now=NOW, batch_size=7, **kw)


def test_the_same_records_again_are_skipped_not_doubled(tmp_path, vault):
    first = put(csv_file(tmp_path / "a.csv", rows(30)), vault)
    assert (first.accepted, first.already) == (30, 0)
    again = put(tmp_path / "a.csv", vault)  # the same file
    assert (again.accepted, again.already, again.batches) == (0, 30, [])
    resaved = csv_file(tmp_path / "b.csv", rows(30), newline="\r\n", bom=True)  # Excel saved it again
    assert (put(resaved, vault).accepted, put(resaved, vault).already) == (0, 30)
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps(validate(tmp_path / "a.csv", "measurements", now=NOW)[0]))
    assert put(as_json, vault).already == 30  # the same records in another format
    grown = put(csv_file(tmp_path / "d.csv", rows(45)), vault)  # the day's export, 15 rows longer
    assert (grown.accepted, grown.already) == (15, 30)
    assert sorted(r["value"] for r in vault.records("d")) == [17 + i / 1000 for i in range(45)]
    other = put(csv_file(tmp_path / "e.csv", rows(5, start=100)), vault)  # new records: stored
    assert other.accepted == 5 and len(vault.records("d")) == 50


def test_times_without_an_offset_need_a_zone(tmp_path, vault):
    path = csv_file(tmp_path / "local.csv", ["conductor resistance,17.5,2026-03-01 08:00:00,L1",
                                              "conductor resistance,17.6,2026-03-01T08:01:00,L1"])  # fmt: skip
    with pytest.raises(InvalidInput) as e:
        put(path, vault)
    assert "zone offset" in str(e.value) and "--tz Asia/Shanghai" in e.value.fix
    summary = put(path, vault, layout=Layout(tz="Asia/Shanghai"))
    assert summary.accepted == 2
    assert [r["time"] for r in vault.records("d")] == ["2026-03-01T08:00:00+08:00", "2026-03-01T08:01:00+08:00"]
    with pytest.raises(InvalidInput, match="unknown time zone 'Mars/Olympus'"):
        put(path, vault, layout=Layout(tz="Mars/Olympus"))
    written = csv_file(tmp_path / "z.csv", ["conductor resistance,17.5,2026-03-01T08:00:00Z,L1"])
    assert validate(written, "measurements", now=NOW, layout=Layout(tz="Asia/Shanghai"))[0][0]["time"] == (
        "2026-03-01T08:00:00Z"
    )  # an offset written is kept


def test_excel_files_read_a_byte_order_mark_semicolons_decimal_commas_and_na(tmp_path):
    bom = csv_file(tmp_path / "bom.csv", rows(3), bom=True)
    for encoding in (None, "utf-8", "utf-8-sig"):
        good, bad = validate(bom, "measurements", now=NOW, encoding=encoding)
        assert bad == [] and len(good) == 3 and good[0]["characteristic"] == "conductor resistance"
    semi = csv_file(tmp_path / "de.csv", ['conductor resistance;17,523;2026-03-01T08:00:00+01:00;L1',
                                          '"conductor resistance";-0,5;2026-03-01T08:00:00+01:00;NA',
                                          'conductor resistance;1,5e2;2026-03-01T08:00:00+01:00;'],
                    header="characteristic;value;time;lot", bom=True)  # fmt: skip
    good, bad = validate(semi, "measurements", now=NOW)
    assert bad == [] and [r["value"] for r in good] == [17.523, -0.5, 150.0]
    assert "lot" not in good[1] and "lot" not in good[2] and good[0]["lot"] == "L1"
    na = csv_file(tmp_path / "na.csv", ["conductor resistance,NA,2026-03-01T08:00:00Z,#N/A"])
    [b] = validate(na, "measurements", now=NOW)[1]
    assert (b.row, b.field, b.reason) == (2, "value", "Field required")  # an empty value, not the text 'NA'
    gbk = csv_file(tmp_path / "gbk.csv", [r.replace("conductor resistance", "导体电阻") for r in rows(2)],
                   encoding="gbk")  # fmt: skip
    assert [r["characteristic"] for r in validate(gbk, "measurements", now=NOW)[0]] == ["导体电阻"] * 2


def test_an_extra_column_is_one_message_for_the_file(tmp_path, vault):
    path = csv_file(tmp_path / "x.csv", [r + ",ok" for r in rows(200)], header="characteristic,value,time,lot,remark")
    with pytest.raises(InvalidInput) as e:
        put(path, vault)
    text = str(e.value)
    assert "column 'remark' is not a field of a Measurement" in text and "row" not in text
    assert "--ignore-extra" in e.value.fix and "--map" in e.value.fix
    assert vault.records("d") == []
    assert put(path, vault, layout=Layout(ignore_extra=True)).accepted == 200
    assert "remark" not in vault.records("d")[0]
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text("\n".join(json.dumps({"characteristic": "c", "value": 1, "time": "2026-03-01T08:00:00Z",
                                           "operator": "Li"}) for _ in range(50)))  # fmt: skip
    with pytest.raises(InvalidInput, match="key 'operator' is not a field of a Measurement"):
        validate(jsonl, "measurements", now=NOW)


def test_columns_of_other_names_are_mapped(tmp_path):
    path = csv_file(tmp_path / "m.csv", ["R,17.5,2026-03-01T08:00:00Z"], header="Merkmal,Messwert,Zeit")
    layout = Layout({"Merkmal": "characteristic", "Messwert": "value", "Zeit": "time"})
    assert validate(path, "measurements", now=NOW, layout=layout)[0] == [
        {"characteristic": "R", "value": 17.5, "time": "2026-03-01T08:00:00Z"}
    ]
    with pytest.raises(InvalidInput, match="a Measurement has no field 'valeur'"):
        validate(path, "measurements", layout=Layout({"Messwert": "valeur"}))


def test_a_characteristic_the_dataset_did_not_declare_is_refused(tmp_path, vault):
    path = csv_file(tmp_path / "c.csv", [*rows(3), "outer diameter,3.6,2026-03-01T08:00:00Z,L1"])
    with pytest.raises(InvalidInput) as e:
        put(path, vault, characteristics=["conductor resistance"])
    assert "row 5, field 'characteristic': 'outer diameter' is not a characteristic the dataset declares" in str(
        e.value
    )
    summary = put(path, vault, characteristics=["conductor resistance"], quarantine=tmp_path / "q.jsonl")
    assert (summary.accepted, summary.quarantined) == (3, 1)


@pytest.mark.parametrize(("name", "content"), [("e.csv", ""), ("h.csv", "characteristic,value,time\n"),
                                               ("b.csv", "\n\n"), ("e.json", "[]"), ("e.jsonl", "\n")])  # fmt: skip
def test_an_empty_file_is_an_error(tmp_path, vault, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInput, match="holds no records"):
        put(tmp_path / name, vault)
    assert vault._row("d").next_seq == 0


def test_row_numbers_are_the_files_lines_after_blank_lines_and_line_breaks_in_cells(tmp_path):
    lines = [rows(1)[0], "", rows(1)[0], ",,,", 'conductor resistance,oops,2026-03-01T08:00:00Z,"L\n2"',
             "", rows(1)[0], "conductor resistance,17.5,2030-01-01T00:00:00Z,L9"]  # fmt: skip
    path = csv_file(tmp_path / "blank.csv", lines)
    good, bad = validate(path, "measurements", now=NOW)
    assert len(good) == 3 and [(b.row, b.field) for b in bad] == [(6, "value"), (10, "time")]


def test_the_epcis_reader_does_not_need_file_ingestion():
    import subprocess
    import sys

    code = "import sys, qdsn.data.epcis; print('qdsn.data.ingest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
