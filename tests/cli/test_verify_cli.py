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


def test_a_buyer_without_a_node_verifies_as_the_readme_says(tmp_path):
    """`qdsn verify shown.txt --trust trust.json --node URL`, with no home at all: the log comes from a
    member's node, and is trusted only as far as the consortium's trust file anchors it."""
    import threading
    import time

    import uvicorn

    from qdsn.api.app import create_app

    real, forged = build(tmp_path / "real"), build(tmp_path / "forged")
    servers = []
    try:
        shown = real.present(real.issue(), aud="did:web:buyer", nonce="n-7")
        for c in (real, forged):
            server = uvicorn.Server(uvicorn.Config(create_app(c.lab), host="127.0.0.1", port=0, log_level="error"))
            threading.Thread(target=server.run, daemon=True).start()
            while not server.started:
                time.sleep(0.01)
            servers.append(server)
        (tmp_path / "shown.txt").write_text(shown)
        qdsn("trust", "export", "--home", str(tmp_path / "real" / "cqc"), "--out", str(tmp_path / "trust.json"),
             ok=True)  # fmt: skip
        url = [f"http://127.0.0.1:{s.servers[0].sockets[0].getsockname()[1]}" for s in servers]
        nowhere = {"QDSN_HOME": str(tmp_path / "no-node")}
        buyer = ("verify", str(tmp_path / "shown.txt"), "--aud", "did:web:buyer", "--nonce", "n-7")

        def as_buyer(*args):
            env = {**os.environ, **nowhere, "COLUMNS": "4000"}
            return subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env,
                                  timeout=120)  # fmt: skip

        bare = as_buyer(*buyer)  # the README's line, without a node: told what to do instead
        assert bare.returncode == 1 and "Traceback" not in bare.stderr
        assert "no node at" in bare.stderr and "--trust" in bare.stderr and "--node" in bare.stderr

        good = as_buyer(*buyer, "--trust", str(tmp_path / "trust.json"), "--node", url[0])
        assert good.returncode == 0, good.stdout + good.stderr
        assert "✗" not in good.stdout and "consortium" in good.stdout
        assert not (tmp_path / "no-node").exists()

        # A node of another consortium under the same origin cannot vouch for the presentation.
        other = as_buyer(*buyer, "--trust", str(tmp_path / "trust.json"), "--node", url[1])
        assert other.returncode == 1 and "Traceback" not in other.stdout + other.stderr

        untrusted = as_buyer(*buyer, "--node", url[0])  # no trust file: the node's word is not enough
        assert untrusted.returncode == 1 and "--trust FILE" in untrusted.stderr

        # The regulator's register is the consortium's: the certificate it did not issue nor hold, by name.
        listed = json.loads(qdsn("cert", "list", "--json", "--home", str(tmp_path / "real" / "reg"), ok=True).stdout)
        assert [(c["certificate"], c["issuer_name"], c["holder_name"]) for c in listed["consortium"]] == [
            ("CQC-2026-0001", "CQC", "Maker")]  # fmt: skip
        record = qdsn("cert", "show", "CQC-2026-0001", "--home", str(tmp_path / "real" / "reg"), ok=True).stdout
        assert "valid" in record and "Maker" in record
    finally:
        for s in servers:
            s.should_exit = True
        real.close()
        forged.close()
