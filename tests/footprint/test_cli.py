"""`qdsn footprint` as people run it: the owner computes a product's footprint from anchored activity
data, writes it as PACT v3 and serves it; a buyer with an agreement gets credentials and fetches it."""

import json
import os
import subprocess
import sys

import pytest

from qdsn.data import pact
from qdsn.node import NodeHome

from .conftest import FAST

PW = "pw"
CSV = """product,category,source,amount,unit,start,end,region
urn:gtin:6901234567892,energy,electricity.grid,12.5,MWh,2025-01-01T00:00:00Z,2025-02-01T00:00:00Z,510100
urn:gtin:6901234567892,energy,natural-gas,3.2,GJ,2025-01-01T00:00:00Z,2025-02-01T00:00:00Z,
urn:gtin:6901234567892,output,cable,2500,kilogram,2025-01-01T00:00:00Z,2025-02-01T00:00:00Z,
"""


def qdsn(*args, home, ok=True):
    env = {**os.environ, "QDSN_PASSPHRASE": PW, "QDSN_HOME": str(home), "QDSN_OPERATOR": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def maker(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", PW, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", PW, scrypt_n=FAST,
                          ledger_url=str(tmp_path / "reg" / "ledger.db"))  # fmt: skip
    reg.submit("identity.register", maker.registration())
    return maker.path


def test_the_owner_computes_adds_and_lists_a_footprint(maker, tmp_path):
    (tmp_path / "energy.csv").write_text(CSV)
    qdsn("dataset", "create", "energy", "--kind", "activity", "--title", "Energy and output", home=maker)
    qdsn("ingest", "csv", str(tmp_path / "energy.csv"), "--dataset", "energy", home=maker)
    out = qdsn("footprint", "compute", "energy", "--product", "urn:gtin:6901234567892",
               "--pact", str(tmp_path / "pf.json"),
               "--company-name", "Maker", "--company-id", "urn:uscc:91110000100000000X", "--description", "Cable, 1 kg",
               home=maker).stdout  # fmt: skip
    # (12 500 × 0.1404 + 3 200 × 0.0561) / 2500
    assert "0.773808 kg CO2e per kilogram" in out and "cn-mee-nbs-2022" in out
    pf = json.loads((tmp_path / "pf.json").read_text())
    pact.validate_footprint(pf)
    assert pf["pcf"]["pcfExcludingBiogenicUptake"] == "0.773808"
    assert "added to footprints and anchored" in qdsn("footprint", "add", str(tmp_path / "pf.json"), home=maker).stdout
    listed = json.loads(qdsn("footprint", "list", "--json", home=maker).stdout)["data"]
    assert [p["id"] for p in listed] == [pf["id"]]
    assert json.loads(qdsn("footprint", "show", pf["id"], home=maker).stdout) == pf
    again = qdsn("footprint", "add", str(tmp_path / "pf.json"), home=maker, ok=False)
    assert again.returncode == 1 and "already stored" in again.stderr


def test_bad_input_is_refused_with_the_field_named(maker, tmp_path):
    pf = json.loads((__import__("pathlib").Path(__file__).parent / "example-footprint.json").read_text())
    pf["pcf"]["declaredUnitAmount"] = 1
    pf["pcf"]["declaredUnitOfMeasurement"] = "kg"
    (tmp_path / "bad.json").write_text(json.dumps(pf))
    bad = qdsn("footprint", "add", str(tmp_path / "bad.json"), home=maker, ok=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "pcf.declaredUnitAmount: 1 is a JSON number" in bad.stderr and "'kg' is not a unit PACT allows" in bad.stderr
    (tmp_path / "energy.csv").write_text(CSV.replace("12.5,MWh", "12.5,MJ/s").replace("3.2,GJ", "3e2,GJ"))
    qdsn("dataset", "create", "energy", "--kind", "activity", "--title", "Energy", home=maker)
    refused = qdsn("ingest", "csv", str(tmp_path / "energy.csv"), "--dataset", "energy", home=maker, ok=False)
    assert "'MJ/s' is not one for energy" in refused.stderr and "'3e2' is not a non-negative decimal" in refused.stderr


def test_a_buyer_gets_credentials_and_fetches_over_https(world, tmp_path):
    buyer = world.homes["buyer"].path
    ca = str(world.ca_pem)
    qdsn("footprint", "credentials", world.base, "--agreement", world.agreement, "--purpose", "supply-chain",
         "--ca", ca, home=buyer)  # fmt: skip
    kept = next((buyer / "pact-credentials").iterdir())
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    out = qdsn("footprint", "fetch", world.base, "--product-id", "urn:gtin:2000", "--ca", ca,
               "--out", str(tmp_path / "got.json"), home=buyer).stdout  # fmt: skip
    assert "1 footprint(s), each checked" in out
    assert json.loads((tmp_path / "got.json").read_text())["data"] == [world.pfs[2]]
    plain = qdsn("footprint", "fetch", world.plain, "--source", str(kept), home=buyer, ok=False)
    assert plain.returncode == 1 and "not an https URL" in plain.stderr
    denied = qdsn("footprint", "fetch", world.base, "--id", world.secret_pf["id"], "--ca", ca, home=buyer, ok=False)
    assert denied.returncode == 1 and "outside agreement" in denied.stderr


def test_the_regulator_records_where_a_members_node_serves(maker, tmp_path):
    from qdsn.node import Node
    from qdsn.node import pact as host

    reg = tmp_path / "reg"
    did = NodeHome.open(maker, PW).did
    out = qdsn("member", "endpoint", did, "https://maker.example:8420/", home=reg).stdout
    assert "serves at https://maker.example:8420" in out
    node = Node(NodeHome.open(maker, PW), operator=False)
    try:
        assert host.node_url(node, did) == "https://maker.example:8420"
    finally:
        node.close()
    bad = qdsn("member", "endpoint", did, "http://maker.example", home=reg, ok=False)
    assert bad.returncode == 1 and "url" in bad.stderr and "Traceback" not in bad.stderr
    member = qdsn("member", "endpoint", did, "https://elsewhere.example", home=maker, ok=False)
    assert member.returncode == 1 and "only the regulator" in member.stderr
