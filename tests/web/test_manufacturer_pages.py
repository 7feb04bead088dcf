"""The manufacturer's pages on one node, in process: an upload's progress and its outcome, a chart whose
run-rule tests are labelled, a file refused with nothing written, and another party's text escaped."""

import re
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.node.jobs import Job
from qdsn.web.staff import Staff, StaffStore

from ..api.conftest import FAST
from ..conftest import LOOPBACK

SPEC = {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1}
PW = "a long staff password"


@pytest.fixture
def maker(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    home = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", home.registration())
    node = Node(home, ledger=reg.ledger(), operator=True)  # one machine: the maker appends to the log file
    node.submit([home.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                               "characteristics": [SPEC]})])  # fmt: skip
    node.vault.create("line-1", "measurements")
    StaffStore(home.path).add("eng", "engineer", PW)
    app = create_app(node)
    c = TestClient(app, client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)[1]
    assert c.post("/console/login", data={"name": "eng", "password": PW, "csrf": token}).status_code == 200
    yield node, c, app
    node.ledger.close()
    node.close()


def csrf(c):
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/console/enterprise/overview").text)[1]


def csv(values):
    return "characteristic,value,time\n" + "".join(
        f"resistance,{v},2026-03-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z\n" for i, v in enumerate(values)
    )


def upload(c, text, name="line-1.csv"):
    r = c.post("/console/enterprise/upload", data={"dataset": "line-1", "csrf": csrf(c)},
               files={"file": (name, text.encode())}, follow_redirects=False)  # fmt: skip
    return r


def wait(c, location):
    task = location.rsplit("/", 1)[1]
    seen = []
    for _ in range(600):
        got = c.get(f"/console/tasks/{task}").json()
        seen.append(got["done"])
        if got["state"] != "running":
            return got, seen
        time.sleep(0.05)
    pytest.fail("the upload did not end")


def test_an_upload_runs_as_a_task_with_progress(maker):
    node, c, _ = maker
    values = [round(17.5 + ((i * 7) % 11 - 5) / 100, 3) for i in range(25_000)]
    r = upload(c, csv(values))
    assert r.status_code == 303 and "/console/enterprise/upload/" in r.headers["location"]
    page = c.get(r.headers["location"]).text
    assert 'data-task="' in page or 'id="outcome"' in page  # progress while it runs, the outcome after
    got, seen = wait(c, r.headers["location"])
    assert got["state"] == "done" and got["done"] == got["total"] == 25_000, got
    assert seen == sorted(seen)  # progress only grows
    assert got["outcome"]["accepted"] == 25_000 and len(got["outcome"]["entries"]) == 3  # batches of 10,000
    assert node.ledger.state.datasets["line-1"].anchored == 25_000
    assert "25000 records stored and anchored" in c.get(r.headers["location"]).text
    (line,) = StaffStore(node.home.path).trail(action="dataset.upload")
    assert line["staff"] == "eng" and line["detail"]["outcome"] == "stored"


def test_a_bad_file_writes_nothing_and_names_its_rows(maker):
    node, c, _ = maker
    rows = csv([17.5, 17.6, "x", 17.4]).replace("resistance,17.4", "voltage,17.4")
    got, _ = wait(c, upload(c, rows).headers["location"])
    assert got["outcome"]["written"] is False and got["outcome"]["bad_count"] == 2
    assert {b["place"] for b in got["outcome"]["bad"]} == {"row 4", "row 5"}
    assert node.ledger.state.datasets["line-1"].anchored == 0 and not list((node.home.path / "uploads").iterdir())
    r = upload(c, "x", name="line-1.exe")
    assert r.status_code == 400 and "not a CSV, JSON or JSON Lines file" in r.text


def test_the_chart_labels_the_run_rule_tests_and_zooms(maker):
    _, c, _ = maker
    values = [17.5 + (0.02 if i % 2 else -0.02) for i in range(100)] + [17.9] + [17.56] * 12  # beyond; a run
    wait(c, upload(c, csv([round(v, 3) for v in values])).headers["location"])
    page = c.get("/console/enterprise/datasets/line-1?window=0").text
    assert page.count("<svg") == 2 and "Points 1–113 of 113" in page
    tests = re.search(r'<table id="tests">(.*?)</table>', page, re.S)[1]
    assert re.search(r"<td>nelson1</td><td>101</td>", tests) and "<td>nelson2</td><td>113</td>" in tests
    zoomed = c.get("/console/enterprise/datasets/line-1?window=50&start=10").text
    assert "Points 10–59 of 113" in zoomed and "<td>101</td>" not in zoomed


def test_another_partys_text_is_shown_escaped(maker):
    app = maker[2]
    from qdsn.web.manufacturer import _lines

    console = app.state.console
    job = Job(
        "urn:uuid:1",
        "did:key:z6Mk\u202eevil",
        "urn:a",
        "m@1",
        "0" * 64,
        [],
        {},
        "cert\u200bification",
        "n",
        "pending",
        "2026-03-01T00:00:00Z",
    )
    source = _lines("x = 1\nif ok:\u202e # hidden\n")
    files = [{"path": "model.py", "lines": source, "findings": ["line 2, column 6"]}]
    html = console.env.get_template("enterprise/job.html").render(
        _=lambda s: s, job=job, files=files, requester="Evil\u2066Corp", staff=Staff("a", "viewer", "s"), nav=[],
        csrf="t", here="/",
        lang="en", locales={}, node_name="n", node_role="enterprise", node_did="d", version="0")  # fmt: skip
    assert "\u202e" not in html and "\u200b" not in html and "\u2066" not in html
    assert '<mark class="escaped">\\u202e</mark>' in html and "cert\\u200bification" in html
    assert "if ok:" in html and "# hidden" in html and "\nif ok:" in html  # lines kept as lines
    assert replace(job, state="done").state == "done"


def test_the_overview_shows_each_devices_last_reading(maker):
    from qdsn.crypto import SigningKey
    from qdsn.identity import multikey_from_public_key

    node, c, _ = maker
    key = multikey_from_public_key(SigningKey.generate().verify_key.raw)
    node.submit([node.home.sign("device.register", {"device": "gauge-7", "kind": "gauge", "key": key})])
    text = csv([17.51, 17.52, 17.53]).replace("characteristic,value,time", "characteristic,value,time,device")
    text = "\n".join(line + ",gauge-7" if i else line for i, line in enumerate(text.splitlines())) + "\n"
    got, _ = wait(c, upload(c, text).headers["location"])
    assert got["outcome"]["written"] is True, got
    devices = re.search(r'<table id="devices">(.*?)</table>', c.get("/console/enterprise/overview").text, re.S)[1]
    assert "gauge-7" in devices and "resistance = 17.53" in devices
