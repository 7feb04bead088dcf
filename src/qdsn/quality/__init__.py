"""Quality analytics: control charts and run rules, capability, acceptance sampling (ISO 2859-1),
Six Sigma metrics. Pure functions over numpy arrays: no I/O, no knowledge of nodes or the ledger.

    from qdsn import quality
    chart = quality.xbar_r(subgroups)
    chart.center, chart.lcl, chart.ucl, chart.violations, chart.companion  # the R chart
    quality.capability(values, lsl=17.0, usl=18.1).cpk
    quality.capability(quality.imr(values), lsl=17.0, usl=18.1)  # the same, reusing the chart's sums
    quality.sampling_plan(1000, level="II", aql=1.0)
"""

from qdsn.quality.capability import Capability, anderson_darling, box_cox, capability, cp_interval, cpk_interval
from qdsn.quality.capability import percentile as percentile_capability
from qdsn.quality.charts import (
    Chart,
    Limits,
    c_chart,
    cusum,
    ewma,
    imr,
    np_chart,
    p_chart,
    subgroup,
    u_chart,
    xbar_r,
    xbar_s,
)
from qdsn.quality.constants import c4, constant, d2, d3
from qdsn.quality.rules import Violation, rules
from qdsn.quality.sampling import Plan, Switching, code_letter, master_table, oc_curve, sampling_plan
from qdsn.quality.sixsigma import (
    dpmo,
    dpmo_from_sigma,
    dpo,
    dpu,
    pareto,
    rolled_throughput_yield,
    sigma_level,
    yield_from_dpu,
)

__all__ = [
    "Capability", "Chart", "Limits", "Plan", "Switching", "Violation", "anderson_darling", "box_cox", "c4",
    "c_chart", "capability", "code_letter", "constant", "cp_interval", "cpk_interval", "cusum", "d2", "d3", "dpmo",
    "dpmo_from_sigma", "dpo", "dpu", "ewma", "imr", "master_table", "np_chart", "oc_curve", "p_chart", "pareto",
    "percentile_capability", "rolled_throughput_yield", "rules", "sampling_plan", "sigma_level", "subgroup",
    "u_chart", "xbar_r", "xbar_s", "yield_from_dpu",
]  # fmt: skip
