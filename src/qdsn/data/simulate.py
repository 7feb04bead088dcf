"""Simulated production lines: realistic readings for certification runs, demos and tests.

Each line measures several characteristics in rational subgroups (n consecutive parts). The process
is stable unless told otherwise: a mean shift from a subgroup on, a linear drift, extra variance
from a subgroup on, and single outliers, each in units of the characteristic's σ.

Each run is named (`run`): its readings' ids are unique to it, so a second run is not taken for
redeliveries of the first, and each device numbers its readings of the run 1, 2, 3, … (`seq`, with the
run as its `boot`), so a reading lost on the way shows as a gap.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Spec:
    """A simulated characteristic: its target, σ and limits."""

    name: str
    unit: str
    target: float
    sigma: float
    lsl: float | None = None
    usl: float | None = None


CABLE = (
    Spec("conductor resistance", "Ω/km", 17.6, 0.12, usl=18.1),
    Spec("insulation thickness", "mm", 0.80, 0.02, lsl=0.70),
    Spec("outer diameter", "mm", 3.60, 0.05, lsl=3.40, usl=3.80),
)


@dataclass(frozen=True)
class Disturbance:
    """What happens to the process, in σ of each characteristic."""

    shift_at: int | None = None  # subgroup from which the mean moves
    shift: float = 0.0
    drift: float = 0.0  # mean change per subgroup, from the start
    spread_at: int | None = None  # subgroup from which σ is multiplied
    spread: float = 1.0
    outliers: tuple[int, ...] = ()  # subgroups whose first part reads 6σ high


def readings(
    *,
    plant: str = "hz",
    lines: int = 1,
    subgroups: int = 50,
    subgroup_size: int = 5,
    specs: tuple[Spec, ...] = CABLE,
    start: datetime,
    interval: timedelta = timedelta(seconds=20),
    disturbance: Disturbance = Disturbance(),
    seed: int = 0,
    run: str = "sim",
) -> Iterator[tuple[str, dict]]:
    """(MQTT topic, measurement with an `id`) for every part, characteristic and line, in time order."""
    rng = random.Random(seed)
    d = disturbance
    for g in range(subgroups):
        for part in range(subgroup_size):
            t = start + interval * (g * subgroup_size + part)
            for line in range(1, lines + 1):
                for spec in specs:
                    mean = spec.target + spec.sigma * (
                        d.drift * g + (d.shift if d.shift_at is not None and g >= d.shift_at else 0)
                    )
                    sigma = spec.sigma * (d.spread if d.spread_at is not None and g >= d.spread_at else 1.0)
                    value = rng.gauss(mean, sigma) + (6 * spec.sigma if g in d.outliers and part == 0 else 0.0)
                    slug = spec.name.replace(" ", "-")
                    n = g * subgroup_size + part
                    yield (
                        f"plant/{plant}/line/{line}/{slug}",
                        {
                            "id": f"{plant}/{run}/{line}/{slug}/{n}",
                            "characteristic": spec.name,
                            "value": round(value, 4),
                            "time": t.isoformat(),
                            "device": f"{plant}-l{line}-{slug}",
                            "lot": f"{plant}-l{line}-{g // 20:04d}",
                            "subgroup": g,
                            "seq": n + 1,
                            "boot": run,
                        },
                    )
