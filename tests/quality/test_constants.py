"""Control chart constants from their definitions, against the printed tables (Montgomery,
Appendix VI; ASTM STP 15D) in table mode and to their published precision in exact mode."""

import pytest

from qdsn.errors import InvalidInput
from qdsn.quality import constants

# n: (d2, d3, c4, A2, A3, B3, B4, D3, D4) as printed
PRINTED = {
    2: (1.128, 0.853, 0.7979, 1.880, 2.659, 0, 3.267, 0, 3.267),
    5: (2.326, 0.864, 0.9400, 0.577, 1.427, 0, 2.089, 0, 2.114),
    7: (2.704, 0.833, 0.9594, 0.419, 1.182, 0.118, 1.882, 0.076, 1.924),
    10: (3.078, 0.797, 0.9727, 0.308, 0.975, 0.284, 1.716, 0.223, 1.777),
    25: (3.931, 0.708, 0.9896, 0.153, 0.606, 0.565, 1.435, 0.459, 1.541),
}


@pytest.mark.parametrize("n", sorted(PRINTED))
def test_table_mode_matches_printed_tables(n):
    assert tuple(constants.constant(name, n, "table") for name in constants.NAMES) == PRINTED[n]


def test_exact_values_to_published_precision():
    # Harter (1960) tables of the range: d2(5) = 2.325929, d3(5) = 0.864082; d2(2) = 2/√π.
    assert constants.d2(5) == pytest.approx(2.325929, abs=1e-6)
    assert constants.d3(5) == pytest.approx(0.864082, abs=1e-6)
    assert constants.d2(2) == pytest.approx(2 / 3.141592653589793**0.5, abs=1e-12)
    assert constants.d3(2) == pytest.approx(0.852502, abs=1e-6)
    assert constants.c4(2) == pytest.approx((2 / 3.141592653589793) ** 0.5, abs=1e-12)
    assert constants.d2(100) > constants.d2(50) > constants.d2(25)  # any n, not only the printed ones


def test_bad_sizes_are_refused():
    for n in (1, 0, -3, 2.5, True):
        with pytest.raises(InvalidInput, match="n ≥ 2"):
            constants.d2(n)
    with pytest.raises(InvalidInput, match="unknown control chart constant"):
        constants.constant("E2", 5)
