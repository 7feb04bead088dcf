"""`qdsn graph` as the regulator runs it: a real process on a real home, members admitted with `qdsn member
add`, supply relations signed by the enterprises themselves."""

import json

import pytest

from qdsn.cli.member import registration
from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.node import NodeHome

from ..cli.test_cli import PASS, qdsn
from .test_graph import shipment

pytestmark = pytest.mark.slow  # a real `qdsn` process per question

FIRMS = {"甲": "330106", "乙": "330203", "丙": "320505"}


def test_the_regulator_asks_its_graph(tmp_path):
    home = tmp_path / "reg"
    reg = NodeHome.init(home, "regulator", "某市市场监督管理局", PASS["QDSN_PASSPHRASE"], scrypt_n=2**4)
    keys = {}
    for name, region in FIRMS.items():
        key = SigningKey.generate()
        did = did_key_from_public_key(key.verify_key.raw)
        keys[name] = (key, did)
        reg.submit(
            "identity.register",
            registration(did, "enterprise", f"{name}电缆有限公司", None, None, region, "C3831", None),
        )
    led = Ledger.open(str(home / "ledger.db"))
    (ka, a), (kb, b), (_, c) = keys["甲"], keys["乙"], keys["丙"]
    led.append(
        [
            tx.sign_tx("supply.relation", {"supplier": a, "customer": b, "product": "铜杆"}, ka, a),
            tx.sign_tx("supply.relation", {"supplier": b, "customer": c}, kb, b),
        ]
    )
    led.close()

    shown = qdsn("graph", "recall", a, home=home).stdout
    assert "2 downstream enterprises 下游企业" in shown and "丙电缆有限公司" in shown and "320505 虎丘区" in shown

    coverage = json.loads(qdsn("graph", "coverage", "--json", home=home).stdout)
    assert [(r["key"], r["name"], r["enterprises"]) for r in coverage] == [
        ("320000", "江苏省", 1),
        ("330000", "浙江省", 2),
    ]

    out = tmp_path / "map.svg"
    printed = qdsn("graph", "map", "--indicator", "enterprises", "--out", str(out), home=home).stdout
    assert str(out) in printed and "浙江" in out.read_text(encoding="utf-8")

    epcis = tmp_path / "ship.json"
    epcis.write_text(json.dumps(shipment(b, c, "urn:epc:class:lgtin:4012345.011111.L9")))
    built = json.loads(qdsn("graph", "build", "--epcis", str(epcis), "--shared-by", c, "--json", home=home).stdout)
    assert built["added"]["shipments"] == 1 and built["batches"] == 1
    again = json.loads(qdsn("graph", "recall", "urn:epc:class:lgtin:4012345.011111.L9", "--json", home=home).stdout)
    assert [e["name"] for e in again["enterprises"]] == ["丙电缆有限公司"]

    unknown = qdsn("graph", "recall", "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH", home=home, ok=False)
    assert unknown.returncode == 1 and "not a participant" in unknown.stderr and "Traceback" not in unknown.stderr
    region = qdsn("graph", "coverage", "--region", "999999", home=home, ok=False)
    assert region.returncode == 1 and "GB/T 2260" in region.stderr
    stranger = qdsn(
        "graph", "build", "--epcis", str(epcis), "--shared-by", "did:web:nobody.example", home=home, ok=False
    )
    assert stranger.returncode == 1 and "not a participant" in stranger.stderr
    assert len(list((home / "graph" / "shared").glob("*.json"))) == 1  # nothing kept for the refused one


def test_every_table_reads_in_both_languages(tmp_path):
    from typer.testing import CliRunner

    from qdsn.cli.main import app

    home = tmp_path / "reg"
    reg = NodeHome.init(home, "regulator", "某市市场监督管理局", PASS["QDSN_PASSPHRASE"], scrypt_n=2**4)
    keys = {}
    for name, region in FIRMS.items():
        key = SigningKey.generate()
        keys[name] = (key, did_key_from_public_key(key.verify_key.raw))
        reg.submit("identity.register", registration(keys[name][1], "enterprise", f"{name}[bold]公司", None, None,
                                                     region, "C3831", None))  # fmt: skip
    (ka, a), (_, b) = keys["甲"], keys["乙"]
    led = Ledger.open(str(home / "ledger.db"))
    led.append([tx.sign_tx("supply.relation", {"supplier": a, "customer": b}, ka, a)])
    led.close()

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, ["graph", *args, "--home", str(home)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    assert "enterprises" in run("build") and "relations" in run("build")
    out = run("suppliers")
    assert "HHI 10000" in out and "主要供应商" in out and "甲[bold]公司" in out  # a name is never markup
    assert "认证覆盖" in run("coverage", "--by", "industry") and "C38" in run("coverage", "--by", "industry")
    assert "0 enterprises with open notifications 未结通报企业" in run("open")
    assert "330000 浙江省" in run("coverage")
