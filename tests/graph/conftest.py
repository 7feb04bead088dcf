"""A small region on a real SQLite replica: a regulator, a certifier and five enterprises in three provinces,
with supply relations (one cycle), certificates in each status and a published model."""

from dataclasses import dataclass, field

import pytest

from qdsn.ledger import Ledger

from ..ledger.conftest import ORIGIN, Member, member

REGIONS = {  # name → (region, industry)
    "A": ("330106", "C3831"),  # 杭州市西湖区
    "B": ("330203", "C3831"),  # 宁波市海曙区
    "C": ("330102", "C3612"),  # 杭州市上城区
    "D": ("320505", "C3831"),  # 苏州市虎丘区
    "E": ("110105", "C2710"),  # 北京市朝阳区
}


@dataclass
class Region:
    ledger: Ledger
    regulator: Member
    certifier: Member
    firms: dict[str, Member] = field(default_factory=dict)

    def did(self, name: str) -> str:
        return self.firms[name].did

    def supply(self, by: str, supplier: str, customer: str, product: str | None = None) -> None:
        payload = {"supplier": self.did(supplier), "customer": self.did(customer)}
        if product:
            payload["product"] = product
        self.ledger.append([self.firms[by].sign("supply.relation", payload)])

    def issue(self, number: str, holder: str, index: int) -> None:
        self.ledger.append(
            [
                self.certifier.sign(
                    "credential.issue",
                    {
                        "credential": number,
                        "vct": "https://qdsn.example/cert/cable",
                        "subject": self.did(holder),
                        "hash": "ab" * 32,
                        "status_list": "https://certifier.example/status/1",
                        "index": index,
                    },
                )
            ]
        )

    def status(self, number: str, status: str) -> None:
        self.ledger.append(
            [
                self.certifier.sign(
                    "credential.status", {"credential": number, "status": status, "reason": "continuous certification"}
                )
            ]
        )


def build(path) -> Region:
    regulator = member("regulator", "某市市场监督管理局")
    led = Ledger.open(str(path), origin=ORIGIN)
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    certifier = member("certifier", "某认证中心")
    region = Region(led, regulator, certifier)
    regs = [regulator.sign("identity.register", certifier.register_payload())]
    for name, (code, industry) in REGIONS.items():
        firm = member("enterprise", f"{name} 电缆有限公司")
        region.firms[name] = firm
        regs.append(
            regulator.sign("identity.register", firm.register_payload() | {"region": code, "industry": industry})
        )
    led.append(regs)
    return region


def populate(r: Region) -> None:
    r.supply("A", "A", "B", "cable")
    r.supply("B", "B", "C")
    r.supply("C", "B", "C")  # confirmed: both sides declared it
    r.supply("C", "C", "A")  # closes the cycle A → B → C → A
    r.supply("D", "B", "D", "cable")
    r.supply("D", "D", "E")
    r.issue("CERT-A", "A", 1)
    r.issue("CERT-B", "B", 2)
    r.issue("CERT-C", "C", 3)
    r.issue("CERT-D", "D", 4)
    r.status("CERT-C", "suspended")
    r.status("CERT-A", "invalid")
    manifest = {"id": "cpk-check", "version": "1.0.0"}
    r.ledger.append([r.certifier.sign("model.publish", {"model": "cpk-check", "version": "1.0.0", "hash": "cd" * 32,
                                                        "manifest": manifest})])  # fmt: skip
    r.ledger.append(
        [r.firms["A"].sign("dataset.declare", {"dataset": "a-line-1", "title": "Line 1", "kind": "measurements"})]
    )


@pytest.fixture
def region(tmp_path):
    r = build(tmp_path / "ledger.db")
    populate(r)
    yield r
    r.ledger.close()
