"""Input a plant really has: CSV from Excel on Chinese Windows (GBK / GB18030), UTF-8 with a BOM, an
undecodable byte, a huge field, a broken JSON Lines line — read, or refused naming row or line and field."""

import pytest

from qdsn.data.ingest import Layout, ingest, validate
from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput

from .test_ingest import NOW, anchors
from .test_vault import Keys

HEADER = "characteristic,value,time,lot,device\n"


def rows(n=3, name="导体电阻", lot="L1"):
    return "".join(f"{name},{17.5 + i / 100},2026-03-01T08:00:00+08:00,{lot},ohm-3\n" for i in range(n))


def read(path, **kw):
    good, bad = validate(path, "measurements", now=NOW, **kw)
    return good, bad


def test_gbk_csv_from_excel_is_read(tmp_path):
    from qdsn.data.ingest import detect_encoding

    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + rows()).encode("gbk"))
    assert detect_encoding(path.read_bytes()) == "gb18030"
    good, bad = read(path)
    assert bad == [] and [r["characteristic"] for r in good] == ["导体电阻"] * 3


def test_gbk_header_in_chinese_names_the_columns_as_written_and_maps_them(tmp_path):
    path = tmp_path / "cn.csv"
    path.write_bytes("特性,测量值,时间,单位\n导体电阻,17.5,2026/3/1 8:00,Ω/km\n".encode("gbk"))
    with pytest.raises(InvalidInput, match="columns '特性', '测量值', '时间', '单位' are not fields of a Measurement"):
        read(path)
    columns = {"特性": "characteristic", "测量值": "value", "时间": "time"}
    good, bad = read(path, layout=Layout(columns, tz="Asia/Shanghai", ignore_extra=True))
    assert bad == [] and good == [{"characteristic": "导体电阻", "value": 17.5, "time": "2026-03-01T08:00:00+08:00"}]


def test_a_gb18030_only_character_and_a_utf8_bom(tmp_path):
    rare = "𠀀"  # CJK Extension B: in GB18030, not in GBK
    path = tmp_path / "gb18030.csv"
    path.write_bytes((HEADER + rows(name=f"导体电阻{rare}")).encode("gb18030"))
    assert read(path)[0][0]["characteristic"] == f"导体电阻{rare}"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + rows()).encode("utf-8"))
    good, bad = read(bom)
    assert bad == [] and len(good) == 3 and "characteristic" in good[0]
    given = tmp_path / "given.csv"
    given.write_bytes((HEADER + rows()).encode("gbk"))
    assert read(given, encoding="gbk")[0] == read(given)[0] == read(bom)[0]


def test_an_undecodable_byte_names_its_row_and_column(tmp_path):
    path = tmp_path / "broken.csv"
    data = (HEADER + rows(4)).encode("utf-8").replace("导体电阻".encode(), "导体".encode() + b"\xff", 1)
    path.write_bytes(data)
    assert read(path) == read(path, encoding="utf-8")  # detected as UTF-8 with a damaged byte
    good, bad = read(path, encoding="utf-8")
    assert len(good) == 3 and [(b.row, b.field) for b in bad] == [(2, "characteristic")] and "0xff" in bad[0].reason
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    with pytest.raises(InvalidInput, match=r"row 2, field 'characteristic': byte 0xff"):
        ingest(path, vault, "d", "measurements", anchors()[1], now=NOW, encoding="utf-8")
    summary = ingest(path, vault, "d", "measurements", anchors()[1], now=NOW, encoding="utf-8",
                     quarantine=tmp_path / "q.jsonl")  # fmt: skip
    assert (summary.accepted, summary.quarantined) == (3, 1)


def test_a_200_kb_field_is_refused_by_row_and_column(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text(
        HEADER + rows(2) + f"导体电阻,17.5,2026-03-01T08:00:00+08:00,{'x' * 200_000},ohm\n", encoding="utf-8"
    )
    good, bad = read(path)
    assert len(good) == 2 and [(b.row, b.field) for b in bad] == [(4, "lot")] and "200000 characters" in bad[0].reason


def test_a_broken_json_lines_line_names_its_line_and_field(tmp_path):
    path = tmp_path / "r.jsonl"
    good_line = '{"characteristic":"conductor resistance","value":17.5,"time":"2026-03-01T08:00:00Z"}\n'
    path.write_text(
        good_line + "\n" + good_line + '{"characteristic":"conductor resistance","value":17.5x,"time":"t"}\n'
    )
    good, bad = read(path)
    assert len(good) == 2 and [(b.row, b.field, b.unit) for b in bad] == [(4, "value", "line")]
    vault = Vault(str(tmp_path / "v.db"), Keys())
    vault.create("d", "measurements")
    with pytest.raises(InvalidInput, match=r"line 4, field 'value': not valid JSON"):
        ingest(path, vault, "d", "measurements", anchors()[1], now=NOW)
    array = tmp_path / "r.json"
    array.write_text('[\n {"characteristic": "c",\n  "value": 17.5,\n  "time": oops}\n]')
    with pytest.raises(InvalidInput, match=r"line 4, field 'time'"):
        read(array)
