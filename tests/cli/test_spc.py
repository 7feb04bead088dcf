"""`qdsn spc`: charts, capability and sampling from CSV files, tables or exactly one JSON document."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
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


def test_long_files_and_the_normality_test_they_get(tmp_path):
    csv = tmp_path / "long.csv"
    x = np.random.default_rng(2).normal(17.6, 0.12, 20_000)
    csv.write_text("thickness\n" + "\n".join(f"{v:.5f}" for v in x))
    r = runner.invoke(app, ["spc", "capability", str(csv), "--lsl", "17", "--usl", "18.1"])
    assert r.exit_code == 0, r.output
    assert "D'Agostino-Pearson K²" in r.output
    doc = json.loads(
        runner.invoke(app, ["spc", "capability", str(csv), "--lsl", "17", "--usl", "18.1", "--json"]).output
    )
    assert doc["n"] == 20_000 and doc["mean"] == pytest.approx(float(np.round(x, 5).mean()), rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "v\n1.0\n2.0\nabc\n4.0\n",
            r"line 4: 'abc' is not a number",
        ),  # the fast parser gives way to the one that names lines
        ('v\n1.0\n"2.0"\nx\n', r"line 4: 'x' is not a number"),
        ("v\n1.0\n\n2.0\n1.5\n", None),  # a blank line is skipped either way
    ],
)
def test_csv_errors_name_the_line(tmp_path, text, message):
    csv = tmp_path / "v.csv"
    csv.write_text(text)
    r = runner.invoke(app, ["spc", "chart", "-t", "imr", str(csv), "--json"])
    if message is None:
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["statistic"] == [1.0, 2.0, 1.5]
    else:
        assert r.exit_code != 0 and re.search(message, str(r.exception)), r.exception


def test_subgroup_rows_with_a_header_count_lines_from_the_file(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("a,b,c\n1,2,3\n4,5,x\n")
    r = runner.invoke(app, ["spc", "chart", "-t", "xbar-r", str(csv)])
    assert "line 3: 'x' is not a number" in str(r.exception)
