"""`qdsn supervise` as the regulator runs it, and `qdsn verify` as a buyer without a node runs it (the README's
commands), each in its own process: a certificate its issuer signs while suspended is refused, one recorded
before stands; bad input is one clear line, never a traceback."""

import json
import os
import subprocess
import sys
import threading
import time

import uvicorn

from qdsn.api.app import create_app
from qdsn.cli.main import run

from ..cli.test_cli import PASS
from ..credentials.consortium import build
from .test_actions import forge


def qdsn(*args, ok=None, env=None):
    env = {**os.environ, **PASS, "COLUMNS": "4000", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env, timeout=120)
    if ok is not None:
        assert (proc.returncode == 0) == ok, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc


def here(monkeypatch, capsys, *args):
    """`qdsn ARGS` in this process through the real entry point: (exit code, what it printed)."""
    monkeypatch.setenv("QDSN_PASSPHRASE", PASS["QDSN_PASSPHRASE"])
    monkeypatch.setenv("COLUMNS", "4000")
    capsys.readouterr()
    try:
        run(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    got = capsys.readouterr()
    assert "Traceback" not in got.out + got.err
    return code, got.out + got.err


def test_bad_regulator_actions_are_one_clear_line(tmp_path, monkeypatch, capsys):
    """In this process only: a command run here opens the shared test ledger beside the plant's replica, and no
    other process writes to it meanwhile."""
    c = build(tmp_path / "real")
    reg, cqc = str(tmp_path / "real" / "reg"), str(tmp_path / "real" / "cqc")
    try:
        cases = [
            (("suspend", c.cqc.did, "--scope", "issuer", "--reason", " ", "--home", reg), "says why"),
            (("suspend", c.cqc.did, "--scope", "issuer", "--reason", "x", "--home", cqc), "only the regulator"),
            (("suspend", c.cqc.did, "--scope", "ward", "--reason", "x", "--home", reg), "not one of"),
            (("suspend", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "--scope", "member",
              "--reason", "x", "--home", reg), "not registered"),
            (("reinstate", c.cqc.did, "--scope", "issuer", "--reason", "x", "--home", reg), "nothing to reinstate"),
            (("suspend", c.maker.did, "--scope", "issuer", "--reason", "x", "--home", reg), "not a certification body"),
            (("suspend", "process-capability@9.9.9", "--scope", "model", "--reason", "x", "--home", reg),
             "no model process-capability@9.9.9"),
            (("suspend", c.maker.did, "--scope", "member", "--reason", "x", "--credential", "C-1", "--home", reg),
             "only an issuer's certificates"),
        ]  # fmt: skip
        for args, why in cases:
            code, said = here(monkeypatch, capsys, "supervise", *args)
            assert code == 1 and why in said, said
        code, said = here(monkeypatch, capsys, "supervise", "suspend", c.cqc.did, "--scope", "issuer", "--home", reg)
        assert code == 2 and "--reason" in said
        assert c.plant.ledger.store.rows_of_type("regulator.action") == []  # nothing half-written
        code, said = here(monkeypatch, capsys, "supervise", "suspend", c.maker.did, "--scope", "member", "--reason",
                          "x", "--home", reg)  # fmt: skip
        assert code == 0 and "membership" in said
        code, said = here(monkeypatch, capsys, "supervise", "suspend", c.maker.did, "--scope", "member", "--reason",
                          "x", "--home", reg)  # fmt: skip
        assert code == 1 and "already suspended" in said
        code, said = here(monkeypatch, capsys, "supervise", "actions", "--home", cqc)
        assert code == 0 and "Maker" in said and "已暂停" in said
    finally:
        c.close()


def test_a_suspended_issuers_certificate_is_refused_by_a_buyer_in_another_process(tmp_path):
    c = build(tmp_path / "real")
    reg, cqc, maker = (str(tmp_path / "real" / n) for n in ("reg", "cqc", "maker"))
    server = None
    try:
        before = c.issue("CQC-2026-0001")
        (tmp_path / "before.txt").write_text(c.present(before, aud="did:web:buyer", nonce="n-7"))
        qdsn("trust", "export", "--home", cqc, "--out", str(tmp_path / "trust.json"), ok=True)

        done = qdsn("supervise", "suspend", c.cqc.did, "--scope", "issuer", "--reason", "抽查不合格 failed sampling",
                    "--notification", "urn:uuid:n-1", "--home", reg, ok=True)  # fmt: skip
        assert "suspended" in done.stdout and "authority to issue" in done.stdout and "entry" in done.stdout
        c.plant.ledger.refresh()

        # the certification body signs a certificate anyway: it never reaches the ledger
        (tmp_path / "forged.txt").write_text(c.present(forge(c, before, "CQC-2026-0002"), aud="did:web:buyer",
                                                       nonce="n-7"))  # fmt: skip
        c.cosign()  # the members' witness round covers the suspension

        server = uvicorn.Server(uvicorn.Config(create_app(c.lab), host="127.0.0.1", port=0, log_level="error"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        buyer = {"QDSN_HOME": str(tmp_path / "no-node")}

        def verify(name):
            return qdsn("verify", str(tmp_path / name), "--aud", "did:web:buyer", "--nonce", "n-7", "--trust",
                        str(tmp_path / "trust.json"), "--node", url, env=buyer)  # fmt: skip

        refused = verify("forged.txt")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        line = next(x for x in refused.stdout.splitlines() if "authority" in x)
        assert "✗" in line and "suspended by the regulator" in line and "抽查不合格" in line
        stands = verify("before.txt")
        assert stands.returncode == 0, stands.stdout + stands.stderr
        assert "before that, and stands" in stands.stdout

        listed = json.loads(qdsn("supervise", "actions", "--json", "--home", maker, ok=True).stdout)
        assert [(a["action"], a["scope"], a["subject"], a["notification"]) for a in listed["actions"]] == [
            ("suspend", "issuer", c.cqc.did, "urn:uuid:n-1")]  # fmt: skip
        assert listed["in_force"][0]["suspended"] is True
    finally:
        if server is not None:
            server.should_exit = True
        c.close()
