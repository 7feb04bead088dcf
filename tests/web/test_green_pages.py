"""The manufacturer's footprint and multivariate pages, in process and in a real browser: the footprints
with the activity data, table and certificate behind them; a footprint computed through the form; the
Hotelling T² chart whose points and limits are the library's own; and bad input said plainly."""

import re
import threading
import time

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.footprint import calc, pactdoc
from qdsn.node import Node, NodeHome, pact
from qdsn.quality import multivariate as mv
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..conftest import LOOPBACK
from ..services import free_port
from .conftest import sign_in

PW = "a long staff password"
PRODUCT = "urn:gtin:6901234567892"
TABLE = calc.load_table("cn-mee-nbs-2022")
JANUARY = {"start": "2026-01-01T00:00:00+08:00", "end": "2026-02-01T00:00:00+08:00"}
ACTIVITY = [
    {"category": "energy", "source": "electricity.grid", "amount": "48250", "unit": "kWh", "region": "330100"},
    {"category": "energy", "source": "natural-gas", "amount": "61.4", "unit": "GJ"},
    {"category": "output", "source": "cable", "amount": "52000", "unit": "kilogram"},
]  # fmt: skip
VARIABLES = ["diameter", "tension", "temperature"]
SHIFTED = 250  # the row (0-based) whose temperature alone leaves its usual relation to the others


def anchor(node, dataset, rows):
    batch = node.vault.add_batch(dataset, rows)
    node.vault.mark_anchored(batch, node.anchor(batch))


def readings(rng, n=300):
    """Rows of three correlated characteristics read together, one with an unusual combination."""
    mix = np.array([[0.02, 0, 0], [18.0, 6.0, 0], [2.0, 3.0, 6.0]])
    x = np.array([2.0, 200.0, 200.0]) + rng.normal(size=(n, 3)) @ mix.T
    x[SHIFTED, 2] += 30.0  # 5σ of its own noise, within its usual spread: each value usual, the row not
    return x


def footprint_of(records, period=JANUARY):
    fp = calc.compute(records, TABLE, PRODUCT)
    return pactdoc.product_footprint(fp, TABLE, company_name="Acme", company_id="urn:uscc:91330100MA2B3C4D5E",
                                     description="PVC-insulated cable, per kg", start=period["start"],
                                     end=period["end"])  # fmt: skip


@pytest.fixture
def maker(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    home = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", home.registration())
    node = Node(home, ledger=reg.ledger(), operator=True)
    chars = [{"name": n, "unit": u} for n, u in zip(VARIABLES, ("mm", "N", "°C"), strict=True)]
    node.submit([home.sign("dataset.declare", {"dataset": "line-2", "title": "Line 2", "kind": "measurements",
                                               "characteristics": chars}),
                 home.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements",
                                               "characteristics": chars[:1]}),
                 home.sign("dataset.declare", {"dataset": "acts", "title": "Energy", "kind": "activity"})])  # fmt: skip
    pair = [{"name": "speed", "unit": "m/min"}, {"name": "load", "unit": "kN"}]
    node.submit([home.sign("dataset.declare", {"dataset": d, "title": d, "kind": "measurements",
                                               "characteristics": pair}) for d in ("flat", "empty")])  # fmt: skip
    for d, kind in (("line-2", "measurements"), ("line-1", "measurements"), ("acts", "activity"),
                    ("flat", "measurements"), ("empty", "measurements")):  # fmt: skip
        node.vault.create(d, kind)
    x = readings(np.random.default_rng(23))
    at = [f"2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z" for i in range(len(x))]
    anchor(node, "line-2", [{"characteristic": n, "value": round(float(v), 4), "time": at[i]}
                            for i, row in enumerate(x) for n, v in zip(VARIABLES, row, strict=True)])  # fmt: skip
    anchor(node, "line-1", [{"characteristic": "diameter", "value": 2.0 + i % 7 / 100, "time": at[i]}
                            for i in range(30)])  # fmt: skip
    anchor(node, "flat", [{"characteristic": c, "value": 3.0 if c == "load" else 100 + i % 5, "time": at[i]}
                          for i in range(20) for c in ("speed", "load")])  # fmt: skip
    records = [r | {"product": PRODUCT} | JANUARY for r in ACTIVITY]
    anchor(node, "acts", records)
    StaffStore(home.path).add("eng", "engineer", PW)
    StaffStore(home.path).add("view", "viewer", PW)
    app = create_app(node)
    yield node, app, records
    node.ledger.close()
    node.close()


def client(app, name="eng"):
    c = TestClient(app, client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)[1]
    assert c.post("/console/login", data={"name": name, "password": PW, "csrf": token}).status_code == 200
    return c


def csrf(c):
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/console/enterprise/footprints").text)[1]


def rows_of(node):
    times, x = mv.rows_at_times(node.vault.records("line-2"), VARIABLES)
    return times, x


# -- footprints -------------------------------------------------------------------------------------


def test_the_footprints_are_listed_a_page_at_a_time(maker):
    node, app, records = maker
    base = footprint_of(records)
    pfs = [base] + [footprint_of(records) | {"productIds": [f"urn:gtin:69000000{i:05d}"]} for i in range(55)]
    pact.add_footprints(node, "fps", pfs)
    c = client(app)
    first = c.get("/console/enterprise/footprints")
    assert first.status_code == 200
    listed = re.findall(r'href="/console/enterprise/footprints/([0-9a-f-]{36})"', first.text)
    assert len(listed) == 50 and "Page 1 of 2" in first.text
    second = re.findall(r'href="/console/enterprise/footprints/([0-9a-f-]{36})"',
                        c.get("/console/enterprise/footprints?page=2").text)  # fmt: skip
    assert len(second) == 6 and not set(listed) & set(second)
    assert {pf["id"] for pf in pfs} == set(listed) | set(second)
    assert base["id"] in second  # newest first: the first added is on the last page
    r = c.get("/console/enterprise/footprints?page=3")
    assert r.status_code == 404 and "no page 3" in r.text and "Traceback" not in r.text
    r = c.get("/console/enterprise/footprints?page=abc")
    assert r.status_code == 400 and "page" in r.text


def test_a_footprint_shows_its_fields_activity_data_anchor_and_table(maker):
    node, app, records = maker
    pf = footprint_of(records)
    pact.add_footprints(node, "fps", [pf])
    c = client(app, "view")
    page = c.get(f"/console/enterprise/footprints/{pf['id'].upper()}")  # ids are matched case-insensitively
    assert page.status_code == 200, page.text
    text = re.sub(r"<[^>]+>", " ", page.text)
    fp = calc.compute(records, TABLE, PRODUCT)
    assert f"{fp.pcf} kg CO2e" in text and fp.pcf == pf["pcf"]["pcfExcludingBiogenicUptake"]
    assert PRODUCT in text and "1 kilogram" in text and "2026-01-01T00:00:00+08:00" in text and "global" in text
    activity = page.text[page.text.index('id="activity"') :]
    activity = activity[: activity.index("</table>")]
    for r in ACTIVITY:
        assert f"{r['amount']} {r['unit']}" in activity and r["source"] in activity
    anchors = [row for row in node.ledger.store.rows_of_type("dataset.anchor")]
    acts = next(row.seq for row in anchors if b'"acts"' in row.leaf)
    fps = next(row.seq for row in anchors if b'"fps"' in row.leaf)
    assert f"ledger entry {acts}" in activity
    assert re.search(rf"ledger entry\s+{fps}", page.text[page.text.index('id="anchor"') :])
    assert "cn-mee-nbs-2022" in text and "2022.1" in text and calc.table_id(TABLE)["sha256"][:24] in page.text
    assert "the same as declared" in text
    assert "No low-carbon certificate" in text
    missing = c.get("/console/enterprise/footprints/no-such-footprint")
    assert missing.status_code == 404 and "no footprint" in missing.text and "Traceback" not in missing.text


def test_a_footprint_not_backed_by_the_data_says_so(maker):
    node, app, records = maker
    pf = footprint_of(records)
    pf["pcf"] |= {"pcfExcludingBiogenicUptake": "0.1", "pcfIncludingBiogenicUptake": "0.1", "fossilGhgEmissions": "0.1"}
    pact.add_footprints(node, "fps", [pf])
    text = client(app).get(f"/console/enterprise/footprints/{pf['id']}").text
    assert "not the footprint declared" in text and calc.compute(records, TABLE, PRODUCT).pcf in text


def test_the_compute_form_gives_what_the_library_computes(maker):
    node, app, records = maker
    c = client(app)
    page = c.get("/console/enterprise/footprints").text
    assert 'id="compute"' in page
    r = c.post("/console/enterprise/footprints/compute",
               data={"csrf": csrf(c), "dataset": "acts", "product": PRODUCT, "table": "cn-mee-nbs-2022"})  # fmt: skip
    assert r.status_code == 200, r.text
    fp = calc.compute(records, TABLE, PRODUCT)
    assert f"{fp.pcf} kg CO2e / kilogram" in r.text and f"{fp.emissions} kg CO2e" in r.text
    assert fp.table["sha256"][:24] in r.text
    trail = node.home.path  # the computation is in the node's audit log
    assert any(line["action"] == "footprint.compute" for line in StaffStore(trail).trail(10))
    bad = {
        "a path, not a shipped table": ({"table": "/etc/passwd"}, 400, "not an emission factor table"),
        "no product": ({"product": ""}, 400, "name the product"),
        "another product": ({"product": "urn:gtin:0"}, 400, "no activity records of product"),
        "a measurement dataset": ({"dataset": "line-2"}, 404, "not an activity dataset"),
        "no dataset": ({"dataset": "nope"}, 404, "not an activity dataset"),
    }
    for why, (change, status, said) in bad.items():
        data = {"csrf": csrf(c), "dataset": "acts", "product": PRODUCT, "table": "cn-mee-nbs-2022"} | change
        r = c.post("/console/enterprise/footprints/compute", data=data)
        assert r.status_code == status and said in r.text and "Traceback" not in r.text, why
    viewer = client(app, "view")
    assert 'id="compute"' not in viewer.get("/console/enterprise/footprints").text
    data = {"csrf": csrf(viewer), "dataset": "acts", "product": PRODUCT, "table": "cn-mee-nbs-2022"}
    r = viewer.post("/console/enterprise/footprints/compute", data=data)
    assert r.status_code == 403


# -- the multivariate chart -------------------------------------------------------------------------


def exact(page, what):
    return [float(v) for v in re.findall(rf'{what}="([^"]+)"', page)]


def test_the_t2_chart_shows_the_librarys_points_and_limits(maker):
    node, app, _ = maker
    c = client(app, "view")
    assert 'href="?dataset=line-2"' in c.get("/console/enterprise/multivariate").text
    page = c.get("/console/enterprise/multivariate?dataset=line-2&phase1=200&window=1000").text
    _, x = rows_of(node)
    model = mv.phase1(x[:200], names=tuple(VARIABLES))
    assert exact(page, "data-ucl") == [model.ucl] and exact(page, "data-ucl-phase1") == [model.ucl_phase1]
    assert exact(page, "data-t2") == list(model.score(x))
    assert "<svg" in page and "phase I UCL" in page and "UCL" in page
    signals = page[page.index('id="signals"') :]
    signals = signals[: signals.index("</table>")]
    row = next(r for r in signals.split("<tr>") if r.startswith(f"<td>{SHIFTED + 1}</td>"))
    top = re.sub(r"<[^>]+>", "", row.split("<td>")[-1])
    assert top.startswith("temperature"), top  # the variable that left the others
    parts = mv.contributions(model, x[SHIFTED : SHIFTED + 1])[0]
    for j, part in enumerate(parts):  # T² falls by that much when the variable alone is put right
        inverse = np.linalg.inv(model.cov)
        fixed = x[SHIFTED].copy()
        fixed[j] -= (inverse @ (fixed - model.mean))[j] / inverse[j, j]
        assert abs(model.score(x[SHIFTED : SHIFTED + 1])[0] - model.score(fixed[None])[0] - part) < 1e-8
        assert f"{VARIABLES[j]} {part:.3g}" in top
    above = [i + 1 for i in np.flatnonzero(model.score(x) > np.where(np.arange(len(x)) < 200, model.ucl_phase1,
                                                                      model.ucl))]  # fmt: skip
    assert re.findall(r"<tr><td>(\d+)</td>", signals) == [str(i) for i in above]


def test_a_long_series_is_windowed_and_mcd_is_selectable(maker):
    node, app, _ = maker
    c = client(app, "view")
    page = c.get("/console/enterprise/multivariate?dataset=line-2&variables=diameter&variables=tension"
                 "&method=mcd&phase1=150&window=50&start=101").text  # fmt: skip
    _, x = mv.rows_at_times(node.vault.records("line-2"), ["diameter", "tension"])
    model = mv.fit_mcd(x[:150], names=("diameter", "tension"))
    assert "Points 101–150 of 300" in page
    assert exact(page, "data-t2") == list(model.score(x)[100:150])
    assert exact(page, "data-ucl") == [model.ucl] == [mv.ucl_chi2(2)]
    default = c.get("/console/enterprise/multivariate?dataset=line-2").text
    assert "Points 101–300 of 300" in default  # the newest 200, the model from the first half
    assert exact(default, "data-ucl") == [mv.phase1(rows_of(node)[1][:150]).ucl]


def long_line(node, rows=3000, seed=5):
    """A dataset of `rows` readings of the three characteristics: longer than any window the page shows."""
    node.submit([node.home.sign("dataset.declare", {"dataset": "line-3", "title": "Line 3", "kind": "measurements",
                 "characteristics": [{"name": n, "unit": "mm"} for n in VARIABLES]})])  # fmt: skip
    node.vault.create("line-3", "measurements")
    x = np.concatenate([readings(np.random.default_rng(seed + k)) for k in range(rows // 300)])
    x[2400:2410] += [0.0, 60.0, 0.0]  # a run of tension shifts late in phase II
    anchor(node, "line-3", [{"characteristic": n, "value": round(float(v), 4), "time": f"2026-04-01T{i:06d}"}
                            for i, row in enumerate(x) for n, v in zip(VARIABLES, row, strict=True)])  # fmt: skip
    return mv.rows_at_times(node.vault.records("line-3"), VARIABLES)[1]


def test_a_window_of_a_long_series_shows_the_librarys_figures_for_its_rows_alone(maker):
    node, app, _ = maker
    x = long_line(node)
    model = mv.phase1(x[:1500], names=tuple(VARIABLES))  # the default phase I window: the first half
    scores = model.score(x)
    limits = np.where(np.arange(len(x)) < 1500, model.ucl_phase1, model.ucl)
    c = client(app, "view")
    for start, window in ((1, 1000), (1001, 1000), (2390, 50), (2990, 50)):
        page = c.get(f"/console/enterprise/multivariate?dataset=line-3&window={window}&start={start}").text
        begin = min(start - 1, len(x) - window)
        assert f"Points {begin + 1}–{begin + window} of 3000" in page
        assert exact(page, "data-t2") == list(scores[begin : begin + window])
        assert exact(page, "data-ucl") == [model.ucl] and exact(page, "data-ucl-phase1") == [model.ucl_phase1]
        here = [i for i in np.flatnonzero(scores > limits) if begin <= i < begin + window]
        assert f"out of limit here: {len(here)}" in page
        signals = page[page.index('id="signals"') :]
        signals = signals[: signals.index("</table>")]
        assert re.findall(r"<tr><td>(\d+)</td>", signals) == [str(i + 1) for i in here]
        for i in here:  # each signal's variables and contributions are the library's for that row
            parts = mv.contributions(model, x[i : i + 1])[0]
            named = re.sub(r"<[^>]+>", "", next(r for r in signals.split("<tr>") if r.startswith(f"<td>{i + 1}</td>")))
            top = [VARIABLES[j] for j in np.argsort(-parts, kind="stable")]
            assert f"{top[0]} {parts[VARIABLES.index(top[0])]:.3g}" in named
    late = c.get("/console/enterprise/multivariate?dataset=line-3&window=50&start=2390").text
    assert "tension" in late[late.index('id="signals"') :].split("</td>")[5]  # the shifted rows name tension first
    everything = c.get("/console/enterprise/multivariate?dataset=line-3&window=0").text
    assert "Points 1–3000 of 3000" in everything and "<svg" in everything
    assert not exact(everything, "data-t2") and "Choose a window of at most 1000 points" in everything


def test_the_fits_kept_are_few_and_the_least_recently_viewed_goes_first(maker):
    from qdsn.web import green

    _, app, _ = maker
    c = client(app, "view")
    green._FITS.clear()

    def view(phase1):
        page = c.get(f"/console/enterprise/multivariate?dataset=line-2&phase1={phase1}&window=50").text
        assert f"Phase I: rows 1–{phase1}," in page

    for phase1 in range(100, 100 + green.FITS):
        view(phase1)
    view(100)  # viewed again: now the most recent
    view(300)  # one more than are kept: the least recently viewed (101) goes, not the first fitted (100)
    kept = {key[4] for key in green._FITS}
    assert len(green._FITS) == green.FITS and "100" in kept and "101" not in kept and "300" in kept


def test_other_variables_methods_and_windows_do_not_read_the_records_again(maker, monkeypatch):
    from qdsn.web import green

    node, app, _ = maker
    green._FITS.clear()
    green._READINGS.clear()
    c = client(app, "view")
    reads = []
    records = node.vault.records
    monkeypatch.setattr(node.vault, "records", lambda *a: reads.append(a) or records(*a))
    base = "/console/enterprise/multivariate?dataset=line-2"
    for query in ("", "&variables=diameter&variables=tension", "&method=mcd", "&phase1=120", "&window=50&start=3"):
        assert c.get(base + query).status_code == 200
    assert [r[0] for r in reads] == ["line-2"]  # the records aligned once for every characteristic
    page = c.get(base + "&variables=tension&variables=temperature&phase1=100&window=1000").text
    _, x = mv.rows_at_times(records("line-2"), ["tension", "temperature"])
    model = mv.phase1(x[:100], names=("tension", "temperature"))
    assert exact(page, "data-t2") == list(model.score(x)) and exact(page, "data-ucl") == [model.ucl]
    anchor(node, "line-2", [{"characteristic": n, "value": 1.0 + j, "time": "2026-03-09T00:00:00Z"}
                            for j, n in enumerate(VARIABLES)])  # fmt: skip
    assert "of 301" in c.get(base).text and [r[0] for r in reads] == ["line-2"] * 2  # a new batch: read again
    long_line(node)
    for query in ("dataset=line-3", "dataset=line-2&phase1=150", "dataset=flat"):  # line-2's readings used again
        c.get(f"/console/enterprise/multivariate?{query}")
    assert len(green._READINGS) == green.READINGS and {k[1] for k in green._READINGS} == {"line-2", "flat"}


def test_newly_anchored_records_are_charted_at_once(maker):
    node, app, _ = maker
    c = client(app, "view")
    assert "Points 101–300 of 300" in c.get("/console/enterprise/multivariate?dataset=line-2").text
    more = readings(np.random.default_rng(99), n=300)[:100]
    anchor(node, "line-2", [{"characteristic": n, "value": round(float(v), 4), "time": f"2026-03-02T08:{i:04d}Z"}
                            for i, row in enumerate(more) for n, v in zip(VARIABLES, row, strict=True)])  # fmt: skip
    page = c.get("/console/enterprise/multivariate?dataset=line-2&window=1000").text
    _, x = rows_of(node)
    assert len(x) == 400 and "Points 1–400 of 400" in page
    model = mv.phase1(x[:200], names=tuple(VARIABLES))
    assert exact(page, "data-t2") == list(model.score(x)) and exact(page, "data-ucl") == [model.ucl]


def test_the_maker_console_loads_the_chart_libraries_when_it_starts(tmp_path):
    """A fresh process serving a maker's console: scipy.special, matplotlib and scikit-learn's MCD are
    loaded in the background before any page asks, so the first chart viewed does not wait a second or two."""
    import subprocess
    import sys

    code = f"""
import sys, time
from pathlib import Path
from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
root = Path({str(tmp_path)!r})
reg = NodeHome.init(root / "reg", "regulator", "SAMR", "pw", scrypt_n=16)
home = NodeHome.init(root / "acme", "enterprise", "Acme", "pw", origin=reg.origin, scrypt_n=16)
reg.submit("identity.register", home.registration())
node = Node(home, ledger=reg.ledger(), operator=True)
wanted = ("scipy.special", "matplotlib.pyplot", "sklearn.covariance", "qdsn.quality.multivariate")
assert not any(m in sys.modules for m in wanted), [m for m in wanted if m in sys.modules]
create_app(node)
deadline = time.monotonic() + 120
while not all(m in sys.modules for m in wanted) and time.monotonic() < deadline:
    time.sleep(0.05)
print(sorted(m for m in wanted if m not in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr[-2000:]


@pytest.mark.parametrize(("query", "status", "said"), [
    ("dataset=line-1", 400, "a multivariate chart needs two or more"),
    ("dataset=line-2&phase1=3", 400, "a phase I window of 3 rows does not fit"),
    ("dataset=line-2&phase1=9999", 400, "a phase I window of 9999 rows does not fit"),
    ("dataset=line-2&phase1=abc", 400, "is not a number of rows"),
    ("dataset=line-2&phase1=%C2%B2", 400, "is not a number of rows"),  # "²": a digit to str.isdigit, not to int
    ("dataset=line-2&start=%C2%B2", 400, "is not a row number"),
    ("dataset=line-2&start=abc", 400, "is not a row number"),
    ("dataset=line-2&variables=tension", 400, "choose two or more characteristics"),
    ("dataset=line-2&variables=tension&variables=colour", 400, "colour&#39; is not a characteristic"),
    ("dataset=line-2&method=svm", 400, "method is t2 or mcd"),
    ("dataset=line-2&window=x", 400, "window"),
    ("dataset=acts", 400, "not measurements"),
    ("dataset=nope", 404, "no dataset"),
    ("dataset=flat", 400, "the covariance is singular: load do(es) not vary"),
    ("dataset=empty", 400, "only 0 rows have a reading of every chosen characteristic"),
    ("dataset=flat&method=mcd", 400, "the covariance is singular"),
])  # fmt: skip
def test_bad_chart_requests_get_a_clear_page(maker, query, status, said):
    _, app, _ = maker
    r = client(app, "view").get(f"/console/enterprise/multivariate?{query}")
    assert r.status_code == status and said in r.text and "Traceback" not in r.text, r.text[-600:]


# -- in the browser ---------------------------------------------------------------------------------


def serve(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def test_both_pages_in_the_browser(maker, journey):
    node, app, records = maker
    pf = footprint_of(records)
    pact.add_footprints(node, "fps", [pf])
    server, thread, base = serve(app)
    try:
        j = journey(base)
        sign_in(j, "eng", PW)
        j.goto("/console/enterprise/footprints")
        j.page.click(f"a[href='/console/enterprise/footprints/{pf['id']}']")
        j.snap("footprint")
        assert pf["pcf"]["pcfExcludingBiogenicUptake"] in j.page.inner_text("#pcf-excl")
        assert "electricity.grid" in j.page.inner_text("#activity")
        j.goto("/console/enterprise/footprints")
        j.page.fill("#compute input[name=product]", PRODUCT)
        j.submit("#compute button", "computed")
        assert calc.compute(records, TABLE, PRODUCT).pcf in j.page.inner_text("#computed")
        j.goto("/console/enterprise/multivariate?dataset=line-2")
        j.page.uncheck("#model input[value=temperature]")
        j.page.fill("#model input[name=phase1]", "120")
        j.submit("#model button", "multivariate")
        assert j.page.locator("#chart svg").count() == 1
        assert "Phase I: rows 1–120" in j.page.inner_text("#limits")
        j.page.fill("#model input[name=phase1]", "2")
        j.page.eval_on_selector("#model input[name=phase1]", "e => e.removeAttribute('min')")
        j.submit("#model button", "phase-one-too-short")
        assert "does not fit" in j.page.inner_text("main")
    finally:
        server.should_exit = True
        thread.join(30)


# -- the low-carbon certificate behind a footprint --------------------------------------------------


def test_a_low_carbon_certificate_backs_the_footprint_and_shows_in_the_register(tmp_path):
    """A certificate issued from the attested run of the product-footprint model: kept by the maker, it
    backs the footprint of its product; the certification body's register names its footprint claim."""
    from qdsn.compute import package
    from qdsn.compute.job import Range, execute
    from qdsn.node.jobs import owner, record

    from ..credentials.consortium import build

    c = build(tmp_path)
    try:
        blob, m = package.load(package.builtin("product-footprint"))
        c.plant.order([c.cqc.sign("model.publish", {"model": m.id, "version": m.version,
                                                    "hash": package.code_hash(blob),
                                                    "manifest": m.model_dump(mode="json")})])  # fmt: skip
        c.plant.submit([c.maker.sign("dataset.declare", {"dataset": "acts", "title": "Energy", "kind": "activity"})])
        c.plant.vault.create("acts", "activity")
        records = [r | {"product": PRODUCT} | JANUARY for r in ACTIVITY]
        anchor(c.plant, "acts", records)
        run = execute(owner(c.plant), blob, {"product": PRODUCT, "table": TABLE, "threshold": "0.60"},
                      [Range("acts", 0, 3)], "nonce-lc", job="job-lc")  # fmt: skip
        assert run.attestation and run.output["pass"], run
        record(c.plant, run)
        sd = c.issue("CQC-LC-2026-0001", {"output": run.output, "attestation": run.attestation})
        pf = footprint_of(records)
        other = footprint_of(records) | {"productIds": ["urn:gtin:6900000000001"]}
        pact.add_footprints(c.plant, "fps", [pf, other])
        StaffStore(c.maker.path).add("eng", "engineer", PW)
        maker = client(create_app(c.plant))
        assert "No low-carbon certificate" in maker.get(f"/console/enterprise/footprints/{pf['id']}").text
        r = maker.post("/console/enterprise/certificates/keep", data={"csrf": csrf(maker), "certificate": sd},
                       follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, r.text
        listing = maker.get("/console/enterprise/footprints").text
        rows = {i: row for row in listing.split("<tr>") for i in (pf["id"], other["id"]) if i in row}
        assert "CQC-LC-2026-0001" in rows[pf["id"]] and "CQC-LC-2026-0001" not in rows[other["id"]]
        detail = maker.get(f"/console/enterprise/footprints/{pf['id']}").text
        certificates = detail[
            detail.index('id="certificates"') : detail.index("</table>", detail.index('id="certificates"'))
        ]
        assert "CQC-LC-2026-0001" in certificates and "CQC" in certificates and ">valid<" in certificates
        assert f"{run.output['pcf']} kg CO2e / kilogram" in certificates and "0.60" in certificates
        StaffStore(c.cqc.path).add("clerk", "viewer", PW)
        register = client(create_app(c.lab), "clerk").get("/console/certifier/certificates").text
        assert "product-footprint" in register
        assert f"{run.output['pcf']} kg CO2e / kilogram ≤ 0.60 ({PRODUCT})" in register
    finally:
        c.close()
