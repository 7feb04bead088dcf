"""A small consortium log for the supervision tests: a regulator, a certifier, enterprises with regions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qdsn.ledger import Ledger

from ..ledger.conftest import ORIGIN, Member, member


@dataclass
class World:
    ledger: Ledger
    regulator: Member
    certifier: Member
    firms: list[Member] = field(default_factory=list)

    def append(self, who: Member, type: str, payload: dict, at: str | None = None) -> int:
        clock = (lambda: datetime.fromisoformat(at).replace(tzinfo=UTC)) if at else None
        env = who.sign(type, payload, **({"clock": clock} if clock else {}))
        return self.ledger.append([env])[0].seq

    def result(self, firm: Member, passed: bool, day: str = "2026-03-01", plan: str | None = None) -> int:
        p = {"enterprise": firm.did, "product": "电线电缆", "standard": "GB/T 5023.3-2008", "passed": passed,
             "date": day}  # fmt: skip
        return self.append(self.regulator, "inspection.result", p | ({"plan": plan} if plan else {}))


def world(path: Path, firms: int = 6, url: str | None = None) -> World:
    led = Ledger.open(url or str(path / "ledger.db"), origin=ORIGIN)
    reg, cert = member("regulator", "SAMR"), member("certifier", "CQC")
    w = World(led, reg, cert)
    w.append(reg, "identity.register", reg.register_payload())
    w.append(reg, "identity.register", cert.register_payload())
    for i in range(firms):
        m = member("enterprise", f"Firm {i}")
        region = "330106" if i % 2 == 0 else "320102"
        w.append(reg, "identity.register", m.register_payload() | {"region": region, "industry": "C3831"})
        w.firms.append(m)
    return w
