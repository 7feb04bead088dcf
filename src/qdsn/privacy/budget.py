"""Differential privacy on aggregate shares: each aggregator adds discrete Laplace noise, calibrated
to the task's sensitivity and ε, to its aggregate share before it is released to the collector; the
ε spent per task is on the ledger (`aggregate.batch`), so a collection past the budget is refused by
every replica.

Noise is OpenDP's (`make_laplace` on integers is the discrete Laplace mechanism, sampled with exact
arithmetic): a sampler written here could leak through floating-point artefacts. Each aggregator's
noise alone gives ε-DP against the collector, so privacy holds even when one aggregator skips it."""

from __future__ import annotations

from typing import Any

from qdsn.errors import InvalidInput, PermissionDenied
from qdsn.privacy.task import Task


def mechanism(length: int, sensitivity: int, epsilon: float) -> Any:
    """OpenDP's discrete Laplace measurement over integer vectors of `length`, at the scale that makes
    it `epsilon`-DP for an L1 sensitivity of `sensitivity`; checked with OpenDP's own privacy map."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    if epsilon <= 0 or sensitivity < 1:
        raise InvalidInput("epsilon must be positive and the sensitivity at least 1")
    space = dp.vector_domain(dp.atom_domain(T=int), size=length), dp.l1_distance(T=int)
    meas = dp.m.make_laplace(*space, scale=sensitivity / epsilon)
    if meas.map(sensitivity) > epsilon * (1 + 1e-9):
        raise InvalidInput(f"the noise does not reach epsilon {epsilon} for sensitivity {sensitivity}")
    return meas


def noise(task: Task) -> list[int]:
    """One draw of the task's noise: a vector of integers to add to an aggregate share."""
    n = task.output_length()
    return list(mechanism(n, task.sensitivity(), task.epsilon)([0] * n))


def add_noise(modulus: int, agg_share: list[int], noise: list[int]) -> list[int]:
    """The aggregate share with integer noise added in the field (negative noise wraps mod p; the
    collector reads results above p/2 as negative)."""
    return [(x + v) % modulus for x, v in zip(agg_share, noise, strict=True)]


def check_budget(task: Task) -> None:
    """PermissionDenied when one more collection would spend more than the task's budget."""
    if task.spent + task.epsilon > task.budget * (1 + 1e-12):
        raise PermissionDenied(f"task {task.id} has spent epsilon {task.spent:g} of its budget {task.budget:g}; "
                               f"another collection ({task.epsilon:g}) would exceed it",
                               "no more collections of this task: create a new task with a new budget")  # fmt: skip


def signed(modulus: int, value: int) -> int:
    """A field element read as a signed integer: noise may take a small total below zero."""
    return value - modulus if value > modulus // 2 else value
