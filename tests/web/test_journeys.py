"""The three journeys of the console in a real browser, on one consortium of separate node processes (the
regulator operating the log, the manufacturer, the certification body): the manufacturer uploads readings,
sees their chart and approves a certification job; the certification body issues the certificate from its
result (at its command line); the manufacturer keeps it and presents it, and a buyer verifies the
presentation on the regulator's public page; the manufacturer sends the regulator a notification (`qdsn
notify`), the regulator creates an aggregation task, two manufacturers report to it (`qdsn stats report`,
Prio3), and the regulator collects the figure and sees the member, its certificate, the notification and
the figure in its console. Each journey is timed, saves a screenshot of every page and lets no request
leave the node it is on."""

import json
import re
import time

import httpx
import pytest

from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.node.provider import publish
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..cli.test_certifier_cli import offer, run, wait_for_cosign
from ..services import free_port
from .conftest import add_staff, answering, sign_in, spawn, start_node, stop

PW = "certifier passphrase"  # the passphrase test_certifier_cli's `run` gives every command
OFFICER = "supervision, in good order"  # the regulator's staff password
SPEC = {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}


def readings(n: int, bad: bool = False) -> str:
    rows = ["characteristic,value,time"]
    for i in range(n):
        value = round(17.5 + ((i * 7) % 11 - 5) / 100, 3)
        rows.append(f"resistance,{'abc' if bad and i in (3, 8) else value},2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z")
    return "\n".join(rows) + "\n"


@pytest.mark.slow
@pytest.mark.timeout(900)  # three nodes and the members' commands; the journeys themselves are timed below
def test_a_certificate_is_earned_verified_and_supervised_in_the_browser(tmp_path, journey):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "Provincial Bureau", PW, scrypt_n=FAST)
    acme = NodeHome.init(tmp_path / "acme", "enterprise", "Acme Cable", PW, origin=reg.origin, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    # a second manufacturer that only reports to the regional task (a task's batch holds at least two)
    nb = NodeHome.init(tmp_path / "nb", "enterprise", "宁波某某电器", PW, origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", acme.registration() | {"region": "330106", "industry": "C3831"})
    reg.submit("identity.register", nb.registration() | {"region": "330203", "industry": "C3831"})
    reg.submit("identity.register", cqc.registration())
    StaffStore(reg.path).add("zhou.min", "approver", OFFICER)
    url = {n: f"http://127.0.0.1:{free_port()}" for n in ("reg", "acme", "cqc")}
    port = {n: int(u.rsplit(":", 1)[1]) for n, u in url.items()}
    procs = [start_node(reg.path, port["reg"], PW)]
    try:
        node = Node(acme, link=NodeClient(url["reg"], acme.key(), acme.did))  # the dataset, declared and offered
        node.submit([acme.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                                   "characteristics": [SPEC]})])  # fmt: skip
        node.vault.create("line-1", "measurements")
        publish(node, "line-1", offer(acme, cqc))
        node.close()
        run(["qdsn", "model", "publish", "process-capability", "--home", str(cqc.path),
             "--operator", url["reg"]], tmp_path)  # fmt: skip
        add_staff(acme.path, "wang.fang", "approver", "quality first, always")
        add_staff(acme.path, "zhao.lei", "viewer", "reading only, always")
        procs += [spawn(acme.path, port["acme"], PW, operator=url["reg"]),
                  spawn(cqc.path, port["cqc"], PW, operator=url["reg"])]  # fmt: skip
        answering(procs[1], "acme", port["acme"])
        answering(procs[2], "cqc", port["cqc"])
        (tmp_path / "bad.csv").write_text(readings(50, bad=True))
        (tmp_path / "line-1.csv").write_text(readings(200))

        # -- the manufacturer: upload (a bad file refused with its rows, then a good one), the chart --
        began = time.monotonic()  # the manufacturer's time in the browser, without the certifier's commands
        j = journey(url["acme"])
        sign_in(j, "wang.fang", "quality first, always")
        j.goto("/console/enterprise/upload")
        j.page.set_input_files("input[name=file]", str(tmp_path / "bad.csv"))
        j.submit("#upload button", "upload-bad")
        j.page.wait_for_selector("#outcome")
        j.snap("upload-bad-rows")
        assert "2 bad rows: nothing was written" in j.page.inner_text("#outcome")
        bad = j.page.inner_text("#bad-rows")
        assert "row 5" in bad and "row 10" in bad and "value" in bad
        j.goto("/console/enterprise/upload")
        j.page.set_input_files("input[name=file]", str(tmp_path / "line-1.csv"))
        j.submit("#upload button", "upload-good")
        j.page.wait_for_selector("#outcome", timeout=30_000)
        j.snap("upload-stored")
        assert "200 records stored and anchored" in j.page.inner_text("#outcome")
        j.goto("/console/enterprise/overview")
        assert "200" in j.page.inner_text("#datasets") and "line-1" in j.page.inner_text("#anchors")
        j.goto("/console/enterprise/datasets/line-1")
        assert j.page.locator("#chart svg").count() == 1 and j.page.locator("#sixpack svg").count() == 1
        assert "Limits come from all 200 points" in j.page.inner_text("#window")
        j.page.select_option("select[name=window]", "50")
        j.submit("#window button", "chart-zoomed")
        assert "Points 151–200 of 200" in j.page.inner_text("#shown") and "Cpk" in j.page.inner_text("#capability")

        manufacturer = time.monotonic() - began
        # -- the certification body asks for a job (its command line) -----------------------------
        said = run(["qdsn", "negotiate", url["acme"], "line-1", "--purpose", "certification", "--home",
                    str(cqc.path)], tmp_path).stdout  # fmt: skip
        agreement = re.search(r"agreement (urn:qdsn:agreement:\S+)", said)[1]
        said = run(["qdsn", "jobs", "request", url["acme"], "--model", "process-capability", "--dataset", "line-1",
                    "--agreement", agreement, "--parameters", '{"threshold": 1.33}', "--home", str(cqc.path)],
                   tmp_path).stdout  # fmt: skip
        job = re.search(r"job (\S+) asked of", said)[1]

        # -- a viewer reads the job but cannot approve it; the approver does ---------------------
        v = journey(url["acme"])
        sign_in(v, "zhao.lei", "reading only, always")
        v.goto(f"/console/enterprise/jobs/{job}")
        assert v.page.locator("#approve").count() == 0 and "Only an approver" in v.page.inner_text("main")
        began = time.monotonic()
        j.goto("/console/enterprise/jobs")
        assert job in j.page.inner_text("#jobs")
        j.goto(f"/console/enterprise/jobs/{job}")
        assert "def main" in j.page.inner_text("main") and "manifest.json" in j.page.inner_text("main")
        j.submit("#approve", "job-running")  # the page answers at once and follows the run
        j.page.locator("#state.done").wait_for()  # the script reloads the page once the run has ended
        j.snap("job-approved")
        assert j.page.inner_text("#state").startswith("done"), j.page.inner_text("#state")
        manufacturer += time.monotonic() - began
        (line,) = StaffStore(acme.path).trail(action="job.approve")  # the audit log names who approved
        assert line["staff"] == "wang.fang" and line["role"] == "approver" and line["subject"] == job
        assert line["detail"]["outcome"] == "done" and isinstance(line["detail"]["entry"], int)
        j.goto("/console/enterprise/audit")
        assert "job.approve" in j.page.inner_text("#audit") and "wang.fang" in j.page.inner_text("#audit")
        j.goto("/console/enterprise/agreements")
        row = j.page.inner_text("#agreements")
        assert agreement in row and "CQC" in row, row

        # -- the certification body issues the certificate (its command line) --------------------
        wait_for_cosign(url["reg"], cqc, "compute.attest")
        run(["qdsn", "cert", "issue", "--job", job, "--number", "CQC-1", "--standard", "GB/T 5023", "--category",
             "cable", "--scope", "BV 2.5", "--site", "Hangzhou", "--status-list", f"{url['cqc']}/status-lists/1",
             "--home", str(cqc.path)], tmp_path)  # fmt: skip
        wait_for_cosign(url["reg"], cqc, "credential.issue")
        run(["qdsn", "cert", "fetch", url["cqc"], "--out", "cert.sd-jwt", "--home", str(acme.path)], tmp_path)
        issued = tmp_path / "cert.sd-jwt"

        # -- the manufacturer keeps and presents it; a buyer verifies it on the public page -----
        began = time.monotonic()
        j.goto("/console/enterprise/certificates")
        j.page.set_input_files("#keep input[name=file]", str(issued))
        j.submit("#keep button", "certificate-kept")
        assert "CQC-1" in j.page.inner_text("#certificates") and "valid" in j.page.inner_text("#certificates")
        with j.page.expect_navigation():
            j.page.click("#certificates a")
        j.snap("present")
        j.page.check("input[value='indicators']")
        j.submit("#present button", "presented")
        shown = j.page.input_value("#presentation")
        assert shown.count("~") >= 2
        with j.page.expect_download() as got:
            j.page.click("#download")
        assert got.value.path().read_text().strip() == shown
        assert j.page.locator("#qr svg").count() == 1  # too large for a code itself: the code carries its link
        link = j.page.get_attribute("#qr-link a", "href")
        assert link.startswith(url["acme"] + "/console/enterprise/presentations/")
        assert httpx.get(link).text.strip() == shown  # anyone holding the code reads what the holder chose to show

        buyer = journey(url["reg"])
        buyer.goto("/console/verify")
        buyer.page.fill("textarea[name=presentation]", shown)
        buyer.submit("form[action='/console/verify'] button", "verified")
        report = buyer.page.inner_text("#report")
        assert "The certificate verifies" in report and "✗" not in report, report
        assert "consortium" in report and "attestation" in report and "status" in report
        buyer.page.fill("textarea[name=presentation]", shown.replace("~", "~x", 1))  # one disclosure altered
        buyer.submit("form[action='/console/verify'] button", "altered")
        assert "does NOT verify" in buyer.page.inner_text("main")
        presenting = time.monotonic() - began

        # -- the manufacturer notifies the regulator (its command line: raised, sealed, delivered) --
        said = run(["qdsn", "notify", "raise", "--to", reg.did, "--classification", "alert", "--severity", "MAJOR",
                    "--description", "BV 2.5 导体电阻复检偏高，该批次已隔离", "--batch", "line-1#0+200",
                    "--certificate", "CQC-1", "--send", url["reg"], "--home", str(acme.path)],
                   tmp_path).stdout  # fmt: skip
        notification = re.search(r"notification (\S+) raised", said)[1]
        assert "recorded RECEIVED" in said, said

        # -- the regulator creates an aggregation task in its console -------------------------------
        began = time.monotonic()
        r = journey(url["reg"])
        sign_in(r, "zhou.min", OFFICER)
        assert r.page.url.endswith("/console/regulator/overview")
        r.goto("/console/regulator/statistics")
        form = {"task": "zj-capable", "title": "浙江电线电缆 过程能力达标", "leader_url": url["cqc"],
                "helper_url": url["reg"], "region": "", "industry": "C3831", "min_batch": "2", "epsilon": "100",
                "budget": "200", "period": "86400"}  # fmt: skip
        for name, value in form.items():
            r.page.fill(f"#create [name={name}]", value)
        r.page.select_option("#create select[name=measure]", "count")
        r.submit("#create button", "task-created")
        assert "Task created on the ledger" in r.page.inner_text("#created")
        regulator = time.monotonic() - began

        # -- two manufacturers report (their command lines): Acme its attested Cpk verdict, Ningbo a 0 ---
        said = run(["qdsn", "stats", "report", "zj-capable", "--indicator", "cpk", "--home", str(acme.path)],
                   tmp_path).stdout  # fmt: skip
        assert "accepted for period 0" in said, said
        said = run(["qdsn", "stats", "report", "zj-capable", "--value", "0", "--home", str(nb.path), "--operator",
                    url["reg"]], tmp_path).stdout  # fmt: skip
        assert "accepted for period 0" in said, said

        # -- the regulator collects the figure, then sees the member, its certificate, the notification -
        began = time.monotonic()
        r.goto("/console/regulator/statistics", "statistics-reported")
        r.page.select_option("#collect select[name=task]", "zj-capable")
        r.page.fill("#collect input[name=period]", "0")
        r.submit("#collect button", "collecting")
        r.page.wait_for_selector("#outcome", timeout=60_000)  # the page's script follows the task, then reloads
        r.snap("collected")
        assert "over 2 reports" in r.page.inner_text("#outcome"), r.page.inner_text("#outcome")
        r.goto("/console/regulator/statistics", "statistics-figure")
        figures = r.page.inner_text("#figures")
        assert "zj-capable" in figures and "Prio3Count" in figures, figures
        capable = int(r.page.locator("#figures .figure").first.inner_text().replace(",", ""))
        assert capable == 1, capable  # Acme's Cpk verdict 1 and Ningbo's 0; noise of scale 1 / ε 100 rounds to 0
        assert "period 0: 2 reports" in r.page.inner_text("#tasks")
        regions = r.page.inner_text("#regions")  # the members by prefecture, from the registry
        assert "浙江省 杭州市" in regions and "浙江省 宁波市" in regions, regions
        r.goto("/console/regulator/members?region=330100&industry=C38", "registry")
        registry = r.page.inner_text("#registry")
        assert "Acme Cable" in registry and "宁波某某电器" not in registry, registry
        r.page.click(f"#registry a[href='/console/regulator/members/{acme.did}']")
        r.snap("member")
        assert "杭州市" in r.page.inner_text("#record")
        held = r.page.inner_text("#certificates")
        assert "CQC-1" in held and "valid" in held, held
        r.goto("/console/regulator/certificates")
        assert "CQC-1" in r.page.inner_text("#certificates")
        r.goto("/console/regulator/notifications")
        listed = r.page.inner_text("#notifications")
        assert notification in listed and "Acme Cable" in listed and "MAJOR" in listed and "RECEIVED" in listed
        r.page.click(f"#notifications a[href='/console/regulator/notifications/{notification}']")
        r.snap("notification")
        assert "该批次已隔离" in r.page.inner_text("#description") and "CQC-1" in r.page.inner_text("#affected")
        r.goto("/console/regulator/ledger?type=credential.issue", "ledger-certificates")
        r.page.click("#entries a[href^='/console/regulator/ledger/entries/']")
        r.snap("entry")
        assert acme.did in r.page.inner_text("#payload") and "CQC-1" in r.page.inner_text("#payload")
        regulator += time.monotonic() - began

        timing = {"manufacturer": manufacturer, "buyer": presenting, "regulator": regulator}
        assert all(t < 60 for t in timing.values()), timing
        (tmp_path / "timing.json").write_text(json.dumps(timing))
        print(", ".join(f"{k} journey {t:.1f} s" for k, t in timing.items()))
    finally:
        stop(procs)
