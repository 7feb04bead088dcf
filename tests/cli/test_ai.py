"""`qdsn ai` as a user runs it: train on a CSV file, score new rows against the saved parameters (checked by
their SHA-256 first), draw the T² chart; bad files said in one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def qdsn(*args, cwd, ok=True):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "qdsn", "ai", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)  # fmt: skip
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(3)
    a = np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0.2, 0.3, 0.9]])
    x = rng.normal(size=(700, 3)) @ a.T
    x[600:610, 0] += 4.0  # shifted rows among the new ones: 101 to 110
    for name, rows in (("train.csv", x[:600]), ("new.csv", x[600:])):
        np.savetxt(tmp_path / name, rows, delimiter=",", header="diameter,tension,temperature", comments="")
    return tmp_path


def test_train_then_score_with_the_chart(files):
    doc = json.loads(qdsn("train", "train.csv", "--out", "t2.npz", "--json", cwd=files).stdout)
    assert doc["method"] == "t2" and doc["rows"] == 600 and doc["variables"] == ["diameter", "tension", "temperature"]
    assert doc["ucl"] > doc["ucl_phase1"] > 0
    got = json.loads(qdsn("score", "new.csv", "--model", "t2.npz", "--sha256", doc["sha256"], "--chart", "t2.svg",
                          "--json", cwd=files).stdout)  # fmt: skip
    assert set(range(1, 11)) <= set(got["signals"]) and got["limit"] == pytest.approx(doc["ucl"])
    assert (files / "t2.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    qdsn("score", "new.csv", "--model", "t2.npz", "--sha256", doc["sha256"], "--chart", "t2.html", cwd=files)
    page = (files / "t2.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "rows above the limit" in page


@pytest.mark.parametrize(("method", "suffix", "extra"), [("mcd", "npz", []), ("isolation-forest", "skops", []),
                                                         ("predictive", "npz", ["--target", "tension"])])  # fmt: skip
def test_each_method_round_trips(files, method, suffix, extra):
    out = f"m.{suffix}"
    doc = json.loads(qdsn("train", "train.csv", "--out", out, "--method", method, *extra, "--json", cwd=files).stdout)
    got = json.loads(qdsn("score", "new.csv", "--model", out, "--sha256", doc["sha256"], "--json", cwd=files).stdout)
    assert got["method"] == method and got["rows"] == 100 and got["signals"]


def test_a_changed_parameters_file_or_a_pickle_is_refused(files):
    doc = json.loads(qdsn("train", "train.csv", "--out", "t2.npz", "--json", cwd=files).stdout)
    data = bytearray((files / "t2.npz").read_bytes())
    data[100] ^= 1
    (files / "t2.npz").write_bytes(bytes(data))
    r = qdsn("score", "new.csv", "--model", "t2.npz", "--sha256", doc["sha256"], cwd=files, ok=False)
    assert r.returncode == 1 and "not the" in r.stderr and "Traceback" not in r.stderr
    import pickle

    (files / "p.npz").write_bytes(pickle.dumps({"mean": [0.0]}))
    digest = __import__("hashlib").sha256((files / "p.npz").read_bytes()).hexdigest()
    r = qdsn("score", "new.csv", "--model", "p.npz", "--sha256", digest, cwd=files, ok=False)
    assert r.returncode == 1 and "not an .npz" in r.stderr


@pytest.mark.parametrize(("content", "said"), [
    ("diameter,tension,temperature\n1,2,3\n2,3,5\n", "too few for 3 variables"),
    ("diameter,tension,temperature\n" + "".join(f"{i},{2 * i},{i % 3}\n" for i in range(20)), "linearly dependent"),
    ("diameter,tension,temperature\n1,2,x\n", "line 2"),
])  # fmt: skip
def test_bad_training_data_is_said(files, content, said):
    (files / "bad.csv").write_text(content)
    r = qdsn("train", "bad.csv", "--out", "m.npz", cwd=files, ok=False)
    assert r.returncode == 1 and said in r.stderr and "Traceback" not in r.stderr
    assert not (files / "m.npz").exists()


def test_a_forest_is_named_by_the_digest_an_attestation_carries(files):
    """Two trainings of one forest write different skops bytes, yet print one parameters_sha256 (the forest's
    canonical digest, as the sandbox attests it), under which `score` opens either file."""
    one = json.loads(qdsn("train", "train.csv", "--out", "a.skops", "--method", "isolation-forest", "--seed", "3",
                          "--json", cwd=files).stdout)  # fmt: skip
    two = json.loads(qdsn("train", "train.csv", "--out", "b.skops", "--method", "isolation-forest", "--seed", "3",
                          "--json", cwd=files).stdout)  # fmt: skip
    assert one["parameters_sha256"] == two["parameters_sha256"] != one["sha256"]
    for out in ("a.skops", "b.skops"):
        got = qdsn("score", "new.csv", "--model", out, "--sha256", one["parameters_sha256"], cwd=files).stdout
        assert f"parameters {one['parameters_sha256']}" in got
    text = qdsn("train", "train.csv", "--out", "c.skops", "--method", "isolation-forest", "--seed", "3",
                cwd=files).stdout  # fmt: skip
    assert f"forest digest {one['parameters_sha256']}" in text
