"""Every test vector the draft publishes (../shared/standards/vdaf/test_vec), byte for byte at every step,
and failing vectors of the draft's kinds, refused at the step they name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qdsn.privacy.vectors import Mismatch, NotAVector, run_vector, run_vector_file
from tests.privacy.negative import negative_vectors

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "standards" / "vdaf" / "test_vec"
FILES = sorted(VECTORS.glob("*.json")) if VECTORS.is_dir() else []
VARIANTS = {
    "Prio3Count",
    "Prio3Sum",
    "Prio3SumVec",
    "Prio3Histogram",
    "Prio3MultihotCountVec",
    "Prio3SumVecWithMultiproof",
    "Prio3HigherDegree",
    "XofTurboShake128",
}


def test_the_vectors_are_there():
    """The standards folder beside the repository is part of the test setup: missing, it is a failure."""
    assert VECTORS.is_dir(), f"{VECTORS} is missing: clone the standards folder as ../shared beside the repository"
    assert {f.name.split("_")[0].removesuffix(".json") for f in FILES} >= VARIANTS


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_published_vector(path, arithmetic):
    result = run_vector_file(path)
    assert result.ok, result.summary
    vec = json.loads(path.read_text())
    if "operations" in vec:  # every listed operation ran: the summary counts them
        assert f"{len(vec['operations'])} operations" in result.summary


@pytest.mark.parametrize("name", sorted(negative_vectors()))
def test_failing_vector_is_refused_at_its_step(name, arithmetic):
    vec = negative_vectors()[name]
    assert "refused as expected" in run_vector(vec, name.split("_")[0])
    # the same vector claiming success at the failing step is a difference, named as such
    wrong = copy.deepcopy(vec)
    wrong["operations"][-1]["success"] = True
    with pytest.raises(Mismatch, match="expected success, but it failed"):
        run_vector(wrong, name.split("_")[0])


def _sum2() -> dict:
    return json.loads((VECTORS / "Prio3Sum_2.json").read_text())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda v: v["reports"][3].update(public_share="00"), "report 3, shard"),
        (lambda v: v["reports"][2]["input_shares"].__setitem__(1, "00" * 32), "report 2, shard, aggregator 1"),
        (
            lambda v: v["reports"][1]["verifier_shares"][0].__setitem__(
                0, "00" * 16 + v["reports"][1]["verifier_shares"][0][0][32:]
            ),
            "report 1, verify_init, aggregator 0",
        ),
        (lambda v: v["reports"][0]["out_shares"].__setitem__(1, "0100000000000000"), "report 0, verify_next"),
        (lambda v: v["agg_shares"].__setitem__(0, "0000000000000000"), "aggregate, aggregator 0"),
        (lambda v: v.update(agg_result=1520), "unshard: aggregate result differs"),
    ],
)
def test_a_changed_byte_is_named(change, where):
    vec = _sum2()
    change(vec)
    with pytest.raises(Mismatch) as e:
        run_vector(vec, "Prio3Sum")
    assert where in str(e.value)


def test_an_operation_expected_to_fail_that_succeeds_is_a_difference():
    vec = _sum2()
    vec["operations"][1]["success"] = False
    with pytest.raises(Mismatch, match="expected a failure, but it succeeded"):
        run_vector(vec, "Prio3Sum")


def test_vector_with_wrong_parameters_does_not_match():
    vec = _sum2()
    vec["max_measurement"] = 1338  # same bit length, other weights: other encodings
    with pytest.raises(Mismatch):
        run_vector(vec, "Prio3Sum")


@pytest.mark.parametrize(
    "make",
    [
        lambda: [],
        lambda: {"shares": 2},
        lambda: {**_sum2(), "operations": [{"operation": "prepare", "success": True}]},
        lambda: {**_sum2(), "operations": [{"operation": "shard", "report_index": 99, "success": True}]},
        lambda: {
            **_sum2(),
            "operations": [
                {"operation": "verify_next", "report_index": 0, "aggregator_id": 0, "round": 1, "success": True}
            ],
        },
        lambda: {**_sum2(), "verify_key": "zz"},
    ],
)
def test_not_a_vector(make):
    with pytest.raises(NotAVector):
        run_vector(make(), "Prio3Sum")
