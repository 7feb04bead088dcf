"""`qdsn spc` as a quality engineer uses it: stacked and vault input, phase I and II, chart parameters,
numbered tests, non-normal capability, pictures and the HTML report — each figure checked against
Montgomery's textbook examples or computed here independently with numpy and scipy."""

import csv
import json
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from qdsn.cli.main import app
from qdsn.errors import QDSNError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "quality"
runner = CliRunner()
A2, D3, D4, D2 = 0.577, 0.0, 2.114, 2.326  # Montgomery, Appendix VI, n = 5


def spc(*args, ok=True):
    r = runner.invoke(app, ["spc", *map(str, args)], env={"COLUMNS": "200"})
    if ok:
        assert r.exit_code == 0, (r.output, r.exception)
    return r


def doc(*args):
    return json.loads(spc(*args, "--json").output)


def refused(*args):
    """The command fails with one of QDSN's errors (which `qdsn` prints as one line, exit 1)."""
    r = spc(*args, ok=False)
    assert r.exit_code != 0 and isinstance(r.exception, QDSNError), (r.output, r.exception)
    return str(r.exception)


@pytest.fixture
def rings(tmp_path):
    """Montgomery's piston rings: the 25 trial subgroups and the 15 new ones, as wide CSV files."""
    rows = list(csv.DictReader((FIXTURES / "pistonrings.csv").open()))
    data = np.array([[float(r[f"d{i}"]) for i in range(1, 6)] for r in rows])
    for name, part in (("trial.csv", data[:25]), ("new.csv", data[25:]), ("all.csv", data)):
        (tmp_path / name).write_text("\n".join(",".join(f"{v:.3f}" for v in r) for r in part) + "\n")
    return tmp_path, data


def test_xbar_r_phase_one_and_two_against_montgomery(rings):
    """Tables 6.3 and 6.4: limits from the 25 trial samples (x̿ = 74.001, R̄ = 0.023; X̄ 73.988 … 74.014,
    R 0 … 0.049), frozen in a file, then the 15 new samples against them: 37, 38 and 39 beyond the UCL."""
    d, data = rings
    trial = doc("chart", "-t", "xbar-r", d / "trial.csv", "--save-limits", d / "limits.json")
    assert (round(trial["center"], 3), round(trial["lcl"], 3), round(trial["ucl"], 3)) == (74.001, 73.988, 74.014)
    rbar, xbarbar = np.ptp(data[:25], axis=1).mean(), data[:25].mean()
    assert round(trial["companion"]["center"], 3) == 0.023  # the book's 0.049 is D4 times R̄ rounded to 0.023
    assert trial["companion"]["ucl"] == pytest.approx(D4 * rbar, rel=1e-3)
    assert trial["ucl"] == pytest.approx(xbarbar + 3 * rbar / D2 / np.sqrt(5), rel=1e-3)
    assert trial["rule_violations"] == [] and trial["target_from"] == "estimated from the data"
    saved = json.loads((d / "limits.json").read_text())
    assert saved["type"] == "xbar-r" and saved["center"] == pytest.approx(xbarbar)

    new = doc("chart", "-t", "xbar-r", d / "new.csv", "--limits-from", d / "limits.json")
    assert new["center"] == trial["center"] and new["ucl"] == trial["ucl"] and "phase II" in new["target_from"]
    means = data[25:].mean(axis=1)
    beyond = [i + 1 for i in np.flatnonzero(means > trial["ucl"])]  # points numbered from 1
    assert beyond == [12, 13, 14]  # samples 37, 38, 39 of the book
    tests = {(v["point"], v["test"]) for v in new["rule_violations"] if v["label"] == "Nelson 1"}
    assert tests == {(p, 1) for p in beyond}
    text = spc("chart", "-t", "xbar-r", d / "new.csv", "--limits-from", d / "limits.json").output
    shown = re.findall(r"│ xbar\s+│ (\d+)\s+│ Nelson 1 ", text)
    assert shown == [str(p) for p in beyond]  # the same numbers in the text table
    assert "frozen in limits.json (phase II)" in text


def test_attribute_chart_points_are_numbered_from_one_in_text_and_json(tmp_path):
    """Example 7.3: c̄ = 19.85, limits 6.48 … 33.22 from the 26 trial samples; samples 6 and 20 lie beyond them."""
    c26 = [float(r["x"]) for r in list(csv.DictReader((FIXTURES / "circuit.csv").open()))[:26]]
    f = tmp_path / "c26.csv"
    f.write_text("sample,x\n" + "".join(f"{i},{v:g}\n" for i, v in enumerate(c26, 1)))
    d = doc("chart", "-t", "c", f, "--column", "x")
    assert (round(d["center"], 2), round(d["lcl"], 2)) == (19.85, 6.48)  # the book's UCL 33.22 is from c̄ rounded
    assert d["ucl"] == pytest.approx(np.mean(c26) + 3 * np.sqrt(np.mean(c26)))
    x = np.array(c26)
    beyond = [int(i) + 1 for i in np.flatnonzero((x > d["ucl"]) | (x < d["lcl"]))]
    assert beyond == [6, 20]
    assert [(v["point"], v["side"]) for v in d["rule_violations"] if v["test"] == 1] == [(6, "below"), (20, "above")]
    assert [v["point"] for v in d["violations"]] == [v["point"] for v in d["rule_violations"]]
    text = spc("chart", "-t", "c", f, "--column", "x").output
    assert re.search(r"│ c\s+│ 6\s+│ Nelson 1\s+│ a point beyond 3σ\s+│ below", text)
    assert re.search(r"│ c\s+│ 20\s+│ Nelson 1 ", text)
    # phase I without them: the book's revised limits, c̄ = 19.67
    revised = doc("chart", "-t", "c", f, "--column", "x", "--exclude", "6,20")
    assert round(revised["center"], 2) == 19.67 and revised["excluded"] == [6, 20]


def test_stacked_readings_in_any_order_chart_as_the_wide_file(rings, tmp_path):
    d, data = rings
    rng = np.random.default_rng(4)
    rows = [
        (f"S{i + 1:02d}", f"2026-03-01T{8 + i // 6:02d}:{(i % 6) * 10:02d}:00+08:00", v)
        for i, r in enumerate(data)
        for v in r
    ]
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    stacked = tmp_path / "stacked.csv"
    stacked.write_text("batch,when,diameter\n" + "".join(f"{s},{t},{v:.3f}\n" for s, t, v in shuffled))
    wide = doc("chart", "-t", "xbar-r", d / "all.csv")
    long = doc("chart", "-t", "xbar-r", stacked, "--value", "diameter", "--subgroup", "batch", "--time", "when")
    assert long["statistic"] == pytest.approx(wide["statistic"]) and long["ucl"] == pytest.approx(wide["ucl"])
    assert long["subgroups"] == [f"S{i:02d}" for i in range(1, 41)]
    assert [v["point"] for v in long["rule_violations"]] == [v["point"] for v in wide["rule_violations"]]
    assert all(v["subgroup"] == f"S{v['point']:02d}" for v in long["rule_violations"])
    # individuals in time order
    x = doc("chart", "-t", "imr", stacked, "--value", "diameter", "--time", "when")
    in_time = sorted(range(len(shuffled)), key=lambda i: shuffled[i][1])  # readings of one time: as in the file
    assert x["statistic"] == pytest.approx([round(shuffled[i][2], 3) for i in in_time])
    assert x["statistic"] != pytest.approx([round(v, 3) for _, _, v in shuffled])
    assert "--subgroup" in refused("chart", "-t", "xbar-r", stacked, "--value", "diameter", "--time", "when")
    assert "no column 'batch '" in refused(
        "chart", "-t", "xbar-r", stacked, "--value", "diameter", "--subgroup", "batch "
    )


def test_exclusions_nsigma_target_and_historical_sigma(rings):
    d, data = rings
    means, ranges = data.mean(axis=1), np.ptp(data, axis=1)
    ex = doc("chart", "-t", "xbar-r", d / "all.csv", "--exclude", "38,39")
    keep = np.ones(40, bool)
    keep[[37, 38]] = False
    assert ex["excluded"] == [38, 39] and ex["center"] == pytest.approx(means[keep].mean())
    assert ex["companion"]["center"] == pytest.approx(ranges[keep].mean(), rel=1e-12)
    assert (
        "left out of the limits (phase I): 38, 39"
        in spc("chart", "-t", "xbar-r", d / "all.csv", "--exclude", "38,39").output
    )

    viscosity = FIXTURES / "viscosity.csv"
    v = np.array([float(r["viscosity"]) for r in csv.DictReader(viscosity.open())])
    sigma = np.abs(np.diff(v)).mean() / 1.128
    two = doc("chart", "-t", "imr", viscosity, "--column", "viscosity", "--nsigma", "2")
    assert two["ucl"] == pytest.approx(v.mean() + 2 * sigma, rel=1e-3) and two["nsigma"] == 2
    assert any("beyond 2σ" in x["description"] for x in two["rule_violations"])  # zones scale with the limits
    given = doc("chart", "-t", "imr", viscosity, "--column", "viscosity", "--target", "34", "--sigma", "0.5")
    assert (given["center"], given["lcl"], given["ucl"]) == pytest.approx((34, 32.5, 35.5))
    assert (
        given["target"] == 34
        and given["target_from"] == "given (--target)"
        and given["sigma_from"] == "given (--sigma)"
    )
    half = doc("chart", "-t", "imr", viscosity, "--column", "viscosity", "--target", "34")
    assert half["process_sigma"] == pytest.approx(sigma, rel=1e-3) and half["sigma_from"] == "estimated from the data"
    # a standard fraction for a p chart: limits p ± 3√(p(1 − p)/n)
    p = doc(
        "chart", "-t", "p", FIXTURES / "orangejuice.csv", "--column", "D", "--size-column", "size", "--target", "0.1"
    )
    assert p["ucl"] == pytest.approx(0.1 + 3 * np.sqrt(0.1 * 0.9 / 50)) and p["target"] == 0.1
    assert "from its center" in refused(
        "chart", "-t", "p", FIXTURES / "orangejuice.csv", "--column", "D", "--size-column", "size", "--sigma", "0.1"
    )


def test_ewma_and_cusum_parameters_against_their_recursions():
    path = FIXTURES / "viscosity.csv"
    x = np.array([float(r["viscosity"]) for r in csv.DictReader(path.open())])
    lam, L, mu, s = 0.1, 2.7, 34.0, 0.5
    e = doc(
        "chart", "-t", "ewma", path, "--column", "viscosity", "--lambda", lam, "--L", L, "--target", mu, "--sigma", s
    )
    z, want, lo, hi = mu, [], [], []
    for i, v in enumerate(x, 1):
        z = lam * v + (1 - lam) * z
        w = L * s * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        want.append(z), lo.append(mu - w), hi.append(mu + w)
    assert e["statistic"] == pytest.approx(want) and e["ucl"] == pytest.approx(hi) and e["lcl"] == pytest.approx(lo)
    assert e["lambda"] == lam and e["L"] == L and e["target"] == mu
    assert [v["point"] for v in e["rule_violations"]] == [i + 1 for i in range(x.size) if not lo[i] <= want[i] <= hi[i]]
    k, h = 0.25, 4.0
    c = doc("chart", "-t", "cusum", path, "--column", "viscosity", "--k", k, "--h", h, "--target", mu, "--sigma", s)
    up, down, ups, downs = 0.0, 0.0, [], []
    for v in x:
        up, down = max(0, v - (mu + k * s) + up), max(0, (mu - k * s) - v + down)
        ups.append(up), downs.append(down)
    assert c["statistic"] == pytest.approx(ups) and c["companion"]["statistic"] == pytest.approx(downs)
    signals = sorted(
        [(i + 1, "cusum+") for i, u in enumerate(ups) if u > h * s]
        + [(i + 1, "cusum-") for i, u in enumerate(downs) if u > h * s]
    )
    assert sorted((v["point"], v["chart"]) for v in c["rule_violations"]) == signals and signals


def test_time_weighted_limits_are_frozen_with_their_parameters(tmp_path):
    path = FIXTURES / "viscosity.csv"
    limits = tmp_path / "ewma.json"
    first = doc("chart", "-t", "ewma", path, "--column", "viscosity", "--lambda", "0.3", "--save-limits", limits)
    again = doc("chart", "-t", "ewma", path, "--column", "viscosity", "--limits-from", limits)
    assert again["lambda"] == 0.3 and again["target"] == first["target"] and again["ucl"] == first["ucl"]
    assert "holds the limits of an ewma chart" in refused("chart", "-t", "cusum", path, "--limits-from", limits)
    assert "drop --target" in refused("chart", "-t", "ewma", path, "--limits-from", limits, "--target", "3")
    edited = json.loads(limits.read_text()) | {"lambda": "0.3"}
    limits.write_text(json.dumps(edited))
    assert "lambda must be a finite number" in refused("chart", "-t", "ewma", path, "--limits-from", limits)


def test_capability_reports_the_target_used_and_non_normal_methods(tmp_path):
    path = FIXTURES / "viscosity.csv"
    d = doc("capability", path, "--column", "viscosity", "--lsl", "32", "--usl", "36")
    assert d["target_used"] == 34 and d["target_from"] == "the middle of the limits"
    assert (
        "target 34 (the middle of the limits)"
        in spc("capability", path, "--column", "viscosity", "--lsl", "32", "--usl", "36").output
    )
    given = doc("capability", path, "--column", "viscosity", "--lsl", "32", "--usl", "36", "--target", "33")
    x = np.array([float(r["viscosity"]) for r in csv.DictReader(path.open())])
    assert given["target_used"] == 33 and given["cpm"] == pytest.approx(
        1 / (3 * np.sqrt(((x - 33) ** 2).sum() / (x.size - 1)))
    )

    # Box-Cox: λ by maximum likelihood (scipy), indices of the transformed data and limits
    y = np.random.default_rng(7).lognormal(1, 0.4, 400)
    f = tmp_path / "skewed.csv"
    f.write_text("v\n" + "\n".join(f"{v:.6f}" for v in y))
    y = np.array([float(v) for v in f.read_text().split()[1:]])
    bc = doc("capability", f, "--lsl", "0.5", "--usl", "15", "--method", "box-cox")["non_normal"]
    lam = stats.boxcox_normmax(y, method="mle")
    assert bc["lambda"] == pytest.approx(lam, rel=1e-6)
    t, lo, hi = stats.boxcox(y, lam), *stats.boxcox(np.array([0.5, 15.0]), lam)
    ppk = min(t.mean() - lo, hi - t.mean()) / (3 * t.std(ddof=1))
    assert bc["capability"]["ppk"] == pytest.approx(ppk, rel=1e-6)
    fixed = doc("capability", f, "--lsl", "0.5", "--usl", "15", "--method", "box-cox", "--lambda", "0")["non_normal"]
    lt = np.log(y)
    assert fixed["lambda"] == 0 and fixed["capability"]["pp"] == pytest.approx(
        (np.log(15) - np.log(0.5)) / (6 * lt.std(ddof=1))
    )
    # the percentile method (ISO 22514-2), empirical: the 0.135 %, 50 % and 99.865 % points of the data
    pc = doc("capability", f, "--lsl", "0.5", "--usl", "15", "--method", "percentile")["non_normal"]
    q = np.quantile(y, [stats.norm.cdf(-3), 0.5, stats.norm.cdf(3)])
    assert pc["pp"] == pytest.approx(14.5 / (q[2] - q[0])) and pc["ppu"] == pytest.approx((15 - q[1]) / (q[2] - q[1]))
    text = spc("capability", f, "--lsl", "0.5", "--usl", "15", "--method", "percentile").output
    assert "percentile method (ISO 22514-2, empirical)" in " ".join(text.split()) and f"{pc['ppk']:.3f}" in text


def test_box_cox_keeps_its_digits_far_from_zero():
    """Viscosities near 34 take λ ≈ −11: (x^λ − 1)/λ alone rounds both limits to the same number."""
    d = doc(
        "capability",
        FIXTURES / "viscosity.csv",
        "--column",
        "viscosity",
        "--lsl",
        "32",
        "--usl",
        "36",
        "--method",
        "box-cox",
    )["non_normal"]
    x = np.array([float(r["viscosity"]) for r in csv.DictReader((FIXTURES / "viscosity.csv").open())])
    lam = stats.boxcox_normmax(x, method="mle")
    t = lambda v: ((v / 34.0) ** lam - 1) / lam  # noqa: E731 — any scale gives the same indices
    tx, lo, hi = t(x), t(32.0), t(36.0)
    assert d["capability"]["ppk"] == pytest.approx(min(tx.mean() - lo, hi - tx.mean()) / (3 * tx.std(ddof=1)), rel=1e-6)


def _png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_pictures_sixpack_oc_and_pareto(tmp_path):
    six = tmp_path / "six.png"
    spc(
        "capability",
        FIXTURES / "viscosity.csv",
        "--column",
        "viscosity",
        "--lsl",
        "32",
        "--usl",
        "36",
        "--sixpack",
        six,
    )
    assert _png(six).shape[1] > 1000
    rings = tmp_path / "rings.svg"
    wide = tmp_path / "w.csv"
    wide.write_text(
        "\n".join(",".join(r.split(",")[1:6]) for r in (FIXTURES / "pistonrings.csv").read_text().splitlines()[1:])
    )
    spc("capability", wide, "--lsl", "73.95", "--usl", "74.05", "--sixpack", rings)  # subgroups: X̄-R
    ET.parse(rings)
    oc = tmp_path / "oc.svg"
    d = doc("sampling", "--lot-size", "1000", "--aql", "1.0", "--oc", oc)
    assert ET.parse(oc).getroot().tag.endswith("svg")
    assert [x["accept"] for x in d["oc"]] == pytest.approx([stats.binom.cdf(2, 80, x["p"]) for x in d["oc"]])
    per_item = doc("sampling", "--lot-size", "1000", "--aql", "25", "--oc", oc)  # AQL > 10: per 100 items, Poisson
    n, ac = per_item["n"], per_item["ac"]
    assert [x["accept"] for x in per_item["oc"]] == pytest.approx(
        [stats.poisson.cdf(ac, n * x["p"]) for x in per_item["oc"]]
    )
    assert per_item["oc"][-1]["p"] == 2.0  # 200 nonconformities per 100 items: no fraction to cap at 1
    ET.parse(oc)
    cats = ["划伤", "scratch", "气泡", "划伤", "dent", "划伤", "scratch", "气泡", "划伤"]
    f = tmp_path / "defects.csv"
    f.write_text("defect\n" + "\n".join(cats) + "\n")
    chart = tmp_path / "pareto.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of every glyph no font has
        p = doc("pareto", f, "--column", "defect", "--out", chart)
    _png(chart)
    counts = Counter(cats).most_common()
    assert [(x["category"], x["count"]) for x in p["categories"]] == [(k, float(v)) for k, v in counts]
    assert p["categories"][1]["cumulative"] == pytest.approx(100 * (4 + 2) / 9)
    weighted = tmp_path / "weighted.csv"
    weighted.write_text("defect,n\nscratch,5\ndent,7\nscratch,4\n")
    assert [
        (x["category"], x["count"]) for x in doc("pareto", weighted, "--column", "defect", "--count", "n")["categories"]
    ] == [("scratch", 9.0), ("dent", 7.0)]


def test_the_chart_marks_each_test_number_beside_its_point(tmp_path, rings):
    d, _ = rings
    from qdsn import quality
    from qdsn.quality import render

    c = quality.xbar_r(np.loadtxt(d / "all.csv", delimiter=","))
    fig = render.draw_chart(c, title="piston rings 活塞环")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert "1,5,6" in texts  # point 38 breaks Nelson 1, 5 and 6
    assert any("Nelson 6: 4 of 5 points beyond 1σ on one side" in t for t in texts)
    svg = render.svg(fig)
    ET.fromstring(svg)  # well-formed on its own, without its namespace declarations
    assert "xmlns" not in svg and "http" not in svg


class _Refs(HTMLParser):
    """Every tag and every attribute that could make a browser fetch something."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href", "xlink:href", "action", "data", "poster", "srcset")]


@pytest.mark.parametrize("study", ["chart", "capability", "sampling", "pareto"])
def test_html_reports_are_self_contained(tmp_path, study):
    page = tmp_path / "study.html"
    viscosity = FIXTURES / "viscosity.csv"
    args = {
        "chart": ["chart", "-t", "imr", viscosity, "--column", "viscosity", "--exclude", "4"],
        "capability": [
            "capability",
            viscosity,
            "--column",
            "viscosity",
            "--lsl",
            "32",
            "--usl",
            "36",
            "--method",
            "box-cox",
        ],
        "sampling": ["sampling", "--lot-size", "500", "--aql", "0.65"],
        "pareto": ["pareto", FIXTURES / "circuit.csv", "--column", "trial"],
    }[study]
    spc(*args, "--html", page)
    text = page.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    assert "svg" in parser.tags and "table" in parser.tags
    assert not parser.tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    assert all(r.startswith("#") for r in parser.refs), [r for r in parser.refs if not r.startswith("#")]
    assert not re.search(r"url\((?!#)|@import|https?:|//[a-z]", text, re.I)
    assert re.search(r"QDSN \d+\.\d+", text) and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "输入与设置" in text and "Inputs and settings" in text  # Chinese beside the English
    if study == "chart":
        assert "控制图" in text and "excluded (phase I)" in text and "<td>4</td>" in text
        assert "a point beyond 3σ · 1 个点落在 3σ 以外" in text
    if study == "capability":
        assert "过程能力" in text and "the middle of the limits" in text and "λ" in text


def test_a_vault_dataset_charts_as_its_file(tmp_path):
    from tests.cli.test_cli import manufacturer, qdsn

    _, acme = manufacturer(tmp_path)
    x = np.round(np.random.default_rng(3).normal(17.6, 0.12, 40), 4)
    rows = ["characteristic,value,time,subgroup"] + [
        f"conductor resistance,{v},2026-03-01T08:{i:02d}:00Z,{i // 4}" for i, v in enumerate(x)
    ]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    qdsn("ingest", "csv", str(tmp_path / "r.csv"), "--dataset", "line-1", home=acme)
    got = json.loads(qdsn("spc", "chart", "-t", "imr", "--dataset", "line-1", "--json", home=acme).stdout)
    assert got["statistic"] == pytest.approx(x.tolist()) and got["source"] == "dataset line-1"
    bar = json.loads(qdsn("spc", "chart", "-t", "xbar-r", "--dataset", "line-1", "--json", home=acme).stdout)
    assert bar["statistic"] == pytest.approx(x.reshape(10, 4).mean(axis=1).tolist())
    # the specification limits declared with the dataset (USL 18.1) apply by default
    cap = json.loads(qdsn("spc", "capability", "--dataset", "line-1", "--json", home=acme).stdout)
    assert cap["usl"] == 18.1 and cap["lsl"] is None and cap["n"] == 40
    bad = qdsn("spc", "chart", "--dataset", "line-9", home=acme, ok=False)
    assert bad.returncode == 1 and "no dataset 'line-9'" in bad.stderr and "line-1" in bad.stderr
    wrong = qdsn("spc", "chart", "--dataset", "line-1", home=acme, ok=False, passphrase="not it")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chart"], "either a CSV file or --dataset"),
        (["chart", "missing.csv"], "no such file"),
        (["chart", "{v}", "--exclude", "3,x"], "'x' is not a point number"),
        (["chart", "{v}", "--exclude", "0"], "'0' is not a point number"),
        (["chart", "{v}", "--exclude", "99"], "there are only 35 points"),
        (["chart", "{v}", "--limits-from", "missing.json"], "no such file"),
        (["chart", "{v}", "--limits-from", "{v}"], "is not a limits file"),
        (["chart", "{v}", "--out", "chart.pdf"], ".png or .svg"),
        (["chart", "{v}", "--html", "report.pdf"], ".html"),
        (["chart", "-t", "ewma", "{v}", "--nsigma", "2"], "--L"),
        (["chart", "-t", "imr", "{v}", "--lambda", "0.2"], "EWMA"),
        (["chart", "-t", "ewma", "{v}", "--lambda", "1.5"], "(0, 1]"),
        (["chart", "-t", "cusum", "{v}", "--h", "0"], "h > 0"),
        (["chart", "{v}", "--nsigma", "-1"], "positive"),
        (["chart", "{v}", "--sigma", "-1"], "positive"),
        (["chart", "{v}", "--value", "nope"], "no column 'nope'"),
        (["chart", "-t", "imr", "{v}", "--value", "viscosity", "--subgroup", "batch"], "single readings"),
        (["chart", "{v}", "--value", "viscosity", "--time", "trial"], "neither an ISO 8601 time"),
        (["capability", "{v}", "--column", "viscosity", "--lsl", "32", "--method", "weibull"], "unknown method"),
        (["capability", "{v}", "--column", "viscosity", "--lsl", "32", "--lambda", "1"], "--method box-cox"),
        (["capability", "{v}", "--column", "viscosity", "--lsl", "32", "--method", "percentile"], "≥ 100"),
        (["capability", "{v}", "--column", "viscosity", "--lsl", "32", "--sixpack", "six.jpg"], ".png or .svg"),
        (["capability", "{ragged}", "--lsl", "0"], "ragged.csv, line 3: a subgroup of 1 value"),
        (["chart", "-t", "xbar-r", "{ragged}"], "ragged.csv, line 3: a subgroup of 1 value"),
        (["chart", "{nan}"], "nan.csv, line 3: 'nan' is not a finite number"),
        (["pareto", "{v}", "--column", "nope"], "no column 'nope'"),
        (["pareto", "{v}", "--column", "batch", "--count", "trial"], "is not a number"),
        (["sampling", "--lot-size", "1", "--oc", "oc.svg"], "at least 2"),
    ],
)
def test_bad_options_say_what_was_wrong(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n4,5,6\n")
    (tmp_path / "nan.csv").write_text("v\n1\nnan\n2\n")
    subs = {
        "{v}": str(FIXTURES / "viscosity.csv"),
        "{ragged}": str(tmp_path / "ragged.csv"),
        "{nan}": str(tmp_path / "nan.csv"),
    }
    assert message in refused(*[subs.get(a, a) for a in args])
    assert {p.name for p in tmp_path.iterdir()} == {"ragged.csv", "nan.csv"}  # nothing half-written


def test_no_traceback_reaches_the_user(tmp_path):
    for args in (
        ["spc", "chart", str(tmp_path / "none.csv")],
        ["spc", "chart", str(FIXTURES / "viscosity.csv"), "--exclude", "a"],
        ["spc", "capability", "--dataset", "x", "--home", str(tmp_path / "nohome")],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "qdsn", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"QDSN_PASSPHRASE": "x", "PATH": "/usr/bin:/bin"},
        )
        assert p.returncode != 0 and p.stderr.startswith("error:") and "Traceback" not in p.stderr, p.stderr


def test_chinese_text_needs_a_cjk_font(monkeypatch, tmp_path):
    from qdsn.quality import render

    assert render.cjk_font() is not None  # scripts/test installs fonts-noto-cjk
    f = tmp_path / "d.csv"
    f.write_text("defect\n划伤\n气泡\n")
    monkeypatch.setattr(render, "_cjk", [None])  # as on a machine without one
    assert "apt-get install fonts-noto-cjk" in refused("pareto", f, "--out", tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
    spc("pareto", f, "--json")  # the table needs no font
