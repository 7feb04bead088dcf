"""`qdsn ingest csv` on a plant's own export: its zone, its column names, a column too many, a
characteristic the dataset did not declare, and the same records run twice."""

from .test_cli import manufacturer, qdsn


def test_a_plants_export_reads_with_its_zone_and_names_and_is_never_doubled(tmp_path):
    _, acme = manufacturer(tmp_path)
    path = tmp_path / "导出.csv"
    lines = ["特性;测量值;时间;备注"] + [f"conductor resistance;17,{50 + i};2026/3/1 8:{i:02d};ok" for i in range(12)]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    plain = qdsn("ingest", "csv", str(path), "--dataset", "line-1", home=acme, ok=False)
    assert plain.returncode == 1 and "'特性', '测量值', '时间', '备注' are not fields" in plain.stderr
    assert "Traceback" not in plain.stderr and plain.stderr.count("\n") < 8  # one message, not a row each
    args = ["ingest", "csv", str(path), "--dataset", "line-1", "--map", "特性=characteristic", "--map", "测量值=value",
            "--map", "时间=time"]  # fmt: skip
    no_zone = qdsn(*args, "--ignore-extra", home=acme, ok=False)
    assert no_zone.returncode == 1 and "--tz" in no_zone.stderr
    first = qdsn(*args, "--ignore-extra", "--tz", "Asia/Shanghai", home=acme).stdout
    assert "12" in first and "already" not in first.split("\n")[-2]
    again = qdsn(*args, "--ignore-extra", "--tz", "Asia/Shanghai", home=acme).stdout
    assert "12 records were already stored" in again
    bad_map = qdsn("ingest", "csv", str(path), "--dataset", "line-1", "--map", "测量值", home=acme, ok=False)
    assert bad_map.returncode == 1 and "COLUMN=FIELD" in bad_map.stderr
    other = tmp_path / "other.csv"
    other.write_text("characteristic,value,time\nouter diameter,3.6,2026-03-01T08:00:00Z\n")
    refused = qdsn("ingest", "csv", str(other), "--dataset", "line-1", home=acme, ok=False)
    assert refused.returncode == 1 and "'outer diameter' is not a characteristic the dataset declares" in refused.stderr
    assert "verified 12 records" in qdsn("vault", "verify", home=acme).stdout
