import csv
from pathlib import Path

import numpy as np
import pytest

from qdsn.quality import passes

FIXTURES = Path(__file__).parent.parent / "fixtures" / "quality"


def rows(name):
    with (FIXTURES / name).open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def pistonrings():
    return np.array([[float(r[f"d{i}"]) for i in range(1, 6)] for r in rows("pistonrings.csv")])


@pytest.fixture(params=["c", "numpy"])
def hot_loops(request, monkeypatch):
    """Run a test with the passes' C kernels, then with the numpy code that stands in for them
    where they were not built. The C run fails, not skips, if they were not: the kernels are part
    of the build here (setup.py)."""
    if request.param == "c":
        assert passes.kernels is not None, "qdsn.quality._kernels was not built: pip install -e . needs a C compiler"
    else:
        monkeypatch.setattr(passes, "kernels", None)
    return request.param
