"""`qdsn spc`: charts, capability and sampling from CSV files, tables or exactly one JSON document."""

import json
from pathlib import Path

from typer.testing import CliRunner

from qdsn.cli.main import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "quality"
runner = CliRunner()


def test_chart_json_and_picture(tmp_path):
    out = tmp_path / "c.png"
    r = runner.invoke(
        app, ["spc", "chart", "-t", "c", str(FIXTURES / "circuit.csv"), "--column", "x", "--json", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["kind"] == "c" and len(doc["statistic"]) == 46
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_xbar_r_table(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(
        "\n".join(",".join(r.split(",")[1:6]) for r in (FIXTURES / "pistonrings.csv").read_text().splitlines()[1:26])
    )
    r = runner.invoke(app, ["spc", "chart", "--type", "xbar-r", str(csv)])
    assert r.exit_code == 0 and "74.001" in r.output and "in control" in r.output


def test_capability_and_sampling_json():
    r = runner.invoke(app, ["spc", "capability", str(FIXTURES / "viscosity.csv"), "--column", "viscosity",
                            "--lsl", "32", "--usl", "36", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["cpk"] > 0
    r = runner.invoke(app, ["spc", "sampling", "--lot-size", "1000", "--aql", "1.0", "--json"])
    doc = json.loads(r.output)
    assert (doc["n"], doc["ac"], doc["re"]) == (80, 2, 3) and len(doc["oc"]) == 5


def test_bad_input_says_what():
    r = runner.invoke(
        app,
        ["spc", "capability", str(FIXTURES / "viscosity.csv"), "--column", "viscosity", "--lsl", "36", "--usl", "32"],
    )
    assert r.exit_code != 0 and "below the upper" in str(r.exception)
    r = runner.invoke(app, ["spc", "chart", "-t", "zz", str(FIXTURES / "circuit.csv")])
    assert "unknown chart type" in str(r.exception)
