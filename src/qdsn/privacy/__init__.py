"""Private statistics: Prio3 (draft-irtf-cfrg-vdaf-20), each measurement secret-shared between two
aggregators and checked by a fully linear proof before it is counted. See docs/architecture.md."""

from qdsn.privacy.field import Field64, Field128
from qdsn.privacy.prio3 import (
    Prio3,
    Prio3Count,
    Prio3HigherDegree,
    Prio3Histogram,
    Prio3MultihotCountVec,
    Prio3Sum,
    Prio3SumVec,
    Prio3SumVecWithMultiproof,
    ReportRejected,
    from_params,
)
from qdsn.privacy.xof import XofTurboShake128

__all__ = [
    "Field64",
    "Field128",
    "Prio3",
    "Prio3Count",
    "Prio3HigherDegree",
    "Prio3Histogram",
    "Prio3MultihotCountVec",
    "Prio3Sum",
    "Prio3SumVec",
    "Prio3SumVecWithMultiproof",
    "ReportRejected",
    "XofTurboShake128",
    "from_params",
]
