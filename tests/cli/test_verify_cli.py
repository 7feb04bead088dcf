"""`qdsn verify` of an offline bundle as a buyer runs it: anchored in the consortium trust file it got once
(`qdsn trust export`), a forged consortium under the same origin fails naming the log key; without a
trust file every bundle fails, saying so in English and Chinese."""

import json
import os
import subprocess
import sys

from qdsn.node.verification import bundle

from ..credentials.consortium import build
from .test_cli import PASS


def qdsn(*args, ok=None):
    env = {**os.environ, **PASS, "COLUMNS": "4000"}  # one line per check, however long its detail
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env, timeout=120)
    if ok is not None:
        assert (proc.returncode == 0) == ok, proc.stderr + proc.stdout
    return proc


def test_a_buyer_verifies_bundles_against_the_consortium_trust_file(tmp_path):
    real, forged = build(tmp_path / "real"), build(tmp_path / "forged")
    try:
        for c, name in ((real, "real.json"), (forged, "forged.json")):
            shown = c.present(c.issue(), aud="did:web:buyer", nonce="n-7")
            (tmp_path / name).write_text(json.dumps(bundle(c.lab, shown)))
    finally:
        real.close()
        forged.close()
    key = "--aud", "did:web:buyer", "--nonce", "n-7"
    out = qdsn("trust", "export", "--home", str(tmp_path / "real" / "cqc"), "--out", str(tmp_path / "trust.json"),
               ok=True)  # fmt: skip
    doc = json.loads((tmp_path / "trust.json").read_text())
    assert doc["fingerprint"] in out.stderr and doc["quorum"] == 2

    good = qdsn("verify", "--trust", str(tmp_path / "trust.json"), str(tmp_path / "real.json"), *key, ok=True)
    assert "✗" not in good.stdout and "consortium" in good.stdout

    bad = qdsn("verify", "--trust", str(tmp_path / "trust.json"), str(tmp_path / "forged.json"), *key, ok=False)
    assert bad.returncode == 1 and doc["log_key"] in bad.stdout and "not by the consortium's log key" in bad.stdout

    alone = qdsn("verify", str(tmp_path / "forged.json"), *key, ok=False)  # every other line passes: see
    assert alone.returncode == 1 and "nothing ties this bundle to a known consortium" in alone.stdout  # the unit test
    assert "没有信任锚" in alone.stdout and "--trust FILE" in alone.stdout

    (tmp_path / "bent.json").write_text(json.dumps(doc | {"quorum": 1}))
    bent = qdsn("verify", "--trust", str(tmp_path / "bent.json"), str(tmp_path / "real.json"), ok=False)
    assert bent.returncode == 1 and "fingerprint does not match" in bent.stderr and "Traceback" not in bent.stderr
    (tmp_path / "junk.json").write_text("{not json")
    junk = qdsn("verify", "--trust", str(tmp_path / "junk.json"), str(tmp_path / "real.json"), ok=False)
    assert junk.returncode == 1 and "cannot read the trust file" in junk.stderr and "Traceback" not in junk.stderr
    (tmp_path / "notabundle.json").write_text('{"log": 3}')
    notabundle = qdsn("verify", "--trust", str(tmp_path / "trust.json"), str(tmp_path / "notabundle.json"), ok=False)
    assert "not a QDSN verification bundle" in notabundle.stderr and "Traceback" not in notabundle.stderr

    qr = qdsn("trust", "export", "--home", str(tmp_path / "real" / "cqc"), "--qr", ok=True)
    assert "█" in qr.stdout or "▀" in qr.stdout
