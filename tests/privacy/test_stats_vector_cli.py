"""`qdsn stats vector`: exit 0 only when every file matches; the first difference named; 2 for a non-vector."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from qdsn.cli.main import app
from tests.privacy.negative import negative_vectors
from tests.privacy.test_vectors import FILES, VECTORS

runner = CliRunner()


def test_all_published_vectors_pass():
    r = runner.invoke(app, ["stats", "vector", *map(str, FILES)])
    assert r.exit_code == 0, r.output
    assert r.output.count("✓") == len(FILES) >= 18


def test_failing_vectors_pass_when_refused(tmp_path):
    paths = []
    for name, vec in negative_vectors().items():
        (tmp_path / name).write_text(json.dumps(vec))
        paths.append(str(tmp_path / name))
    r = runner.invoke(app, ["stats", "vector", *paths])
    assert r.exit_code == 0, r.output
    assert r.output.count("refused as expected") == len(paths)


def test_first_difference_named(tmp_path):
    vec = json.loads((VECTORS / "Prio3Histogram_0.json").read_text())
    share = vec["reports"][0]["verifier_shares"][0][1]
    vec["reports"][0]["verifier_shares"][0][1] = share[:-2] + ("00" if share[-2:] != "00" else "01")
    path = tmp_path / "Prio3Histogram_7.json"
    path.write_text(json.dumps(vec))
    r = runner.invoke(app, ["stats", "vector", str(VECTORS / "Prio3Count_0.json"), str(path)])
    assert r.exit_code == 1
    assert "report 0, verify_init, aggregator 1: verifier share differs at byte 127" in r.output
    assert "expected" in r.output and "got" in r.output


def test_variant_option_for_other_file_names(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text((VECTORS / "Prio3HigherDegree_0.json").read_text())
    assert runner.invoke(app, ["stats", "vector", "--vdaf", "Prio3HigherDegree", str(path)]).exit_code == 0
    # without the name, the parameters say Count, whose circuit differs: a difference, not a pass
    assert runner.invoke(app, ["stats", "vector", str(path)]).exit_code == 1


def test_not_a_vector(tmp_path):
    for text in ("not json", "[1, 2]", '{"seed": "00"}', "{}"):
        path = tmp_path / "Prio3Sum_9.json"
        path.write_text(text)
        r = runner.invoke(app, ["stats", "vector", str(path)])
        assert r.exit_code == 2, r.output
        assert "not a test vector" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["stats", "vector", str(tmp_path / "missing.json")])
    assert r.exit_code == 1 and "no such file" in str(r.exception)


def test_vectors_of_the_drafts_other_algorithms_are_not_claimed(tmp_path):
    """Poplar1 and XofFixedKeyAes128 vectors are said to be unsupported, never run as something else."""
    xof = json.loads((VECTORS / "XofTurboShake128.json").read_text())
    (tmp_path / "XofFixedKeyAes128.json").write_text(json.dumps(xof))
    (tmp_path / "Poplar1_0.json").write_text(json.dumps({"bits": 4, "shares": 2}))
    (tmp_path / "other.json").write_text(json.dumps({**json.loads((VECTORS / "Prio3Count_0.json").read_text()),
                                                     "bits": 4}))  # fmt: skip
    for name in ("XofFixedKeyAes128.json", "Poplar1_0.json", "other.json"):
        r = runner.invoke(app, ["stats", "vector", str(tmp_path / name)])
        assert r.exit_code == 2, r.output
        assert "not supported" in r.output or "only Prio3" in r.output
