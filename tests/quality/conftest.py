import csv
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "quality"


def rows(name):
    with (FIXTURES / name).open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def pistonrings():
    return np.array([[float(r[f"d{i}"]) for i in range(1, 6)] for r in rows("pistonrings.csv")])
