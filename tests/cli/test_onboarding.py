"""Onboarding as the README says, each organisation a process with its own home: a regulator starts the log
and serves it, a manufacturer joins it (`qdsn join`), the regulator admits it with what it records of the
organisation (`qdsn member add`), and the manufacturer's node follows and cosigns the regulator's log. A
join refuses an operator whose answers do not hold together; bad codes are refused with what to do; a
kept demo consortium can be used afterwards; a regulator's rotation does not stop its checkpoints."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from qdsn.crypto import SigningKey
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import NoteSigner, parse_verifier

from ..api.conftest import answering
from ..services import free_port

PW = "onboarding passphrase"
CODE = "91330100716105852F"  # a real unified social credit code (Alibaba (China) Co., Ltd.)


def qdsn(*args, home=None, ok=True, stdin=None, passphrase=PW):
    env = {**os.environ, "QDSN_PASSPHRASE": passphrase, "COLUMNS": "200"}
    if home is not None:
        env["QDSN_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env,
                          timeout=180, input=stdin)  # fmt: skip
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def serve(home, port, *extra):
    env = {**os.environ, "QDSN_PASSPHRASE": PW, "QDSN_HOME": str(home)}
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port), "--monitor", "0.3", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return answering(proc, str(home), port)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=15)


def log_of(home):
    ledger = Ledger.open(str(home / "ledger.db"))
    try:
        return [tx.from_leaf(x) for x in ledger.store.leaves(0, ledger.size)], ledger.root()
    finally:
        ledger.close()


def test_a_manufacturer_joins_is_admitted_and_cosigns(tmp_path):
    reg, acme = tmp_path / "reg", tmp_path / "acme"
    qdsn("init", "--role", "regulator", "--name", "浙江省市场监督管理局", "--home", str(reg))
    shown = qdsn("ledger", "checkpoint", "--home", str(reg)).stdout
    log_key = re.search(r"log key: (\S+)", shown).group(1)
    fingerprint = re.search(r"for members who join: ([0-9a-f ]+)", shown).group(1).strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    operator = serve(reg, port)
    try:
        # asked to confirm the fingerprint, a person who says no gets no home
        no = qdsn("join", url, "--role", "manufacturer", "--name", "杭州某某电缆有限公司", "--home", str(acme),
                  stdin="n\n", ok=False)  # fmt: skip
        assert no.returncode == 1 and "not joined" in no.stderr and fingerprint in no.stdout
        assert not acme.exists()
        # a wrong key given out of band is refused; the right one pins without asking
        other = NoteSigner(log_key.split("+")[0], SigningKey.generate()).verifier().text()
        bad = qdsn("join", url, "--role", "manufacturer", "--name", "X", "--home", str(acme), "--log-key", other,
                   ok=False)  # fmt: skip
        assert bad.returncode == 1 and "is not the one you were given" in bad.stderr and not acme.exists()
        joined = qdsn("join", url, "--role", "manufacturer", "--name", "杭州某某电缆有限公司", "--home", str(acme),
                      "--log-key", log_key).stdout  # fmt: skip
        did = re.search(r"DID\s+(did:key:\S+)", joined).group(1)
        assert f"qdsn member add {did} --role enterprise" in joined
        toml = (acme / "node.toml").read_text()
        assert 'origin = "qdsn.local/' in toml and f'operator = "{url}"' in toml and 'role = "enterprise"' in toml
    finally:
        stop(operator)

    # the regulator admits it; bad codes are refused with what to do, and nothing is appended
    before = len(log_of(reg)[0])
    admit = ["member", "add", did, "--role", "manufacturer", "--name", "杭州某某电缆有限公司", "--home", str(reg)]
    for flag, value, why in (("--credit-code", CODE[:17] + "G", "check character is 'G', but the first 17"),
                             ("--region", "110103", "no longer in use: it ended in 2010"),
                             ("--region", "990000", "not a GB/T 2260 administrative division code"),
                             ("--industry", "A13", "division 13 is not in section A")):  # fmt: skip
        p = qdsn(*admit, flag, value, ok=False)
        assert p.returncode == 1 and why in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(log_of(reg)[0]) == before
    wrong = qdsn("member", "add", did, "--role", "enterprise", "--name", "X", "--home", str(acme), ok=False)
    assert wrong.returncode == 1 and "only the regulator admits members" in wrong.stderr
    qdsn(*admit, "--credit-code", CODE, "--region", "330106", "--industry", "C3831",
         "--address", "杭州市西湖区文三路1号")  # fmt: skip
    members = json.loads(qdsn("member", "list", "--json", "--home", str(reg), passphrase="").stdout)
    (m,) = [m for m in members if m["did"] == did]
    assert m | {"registered": 0} == {
        "did": did, "role": "enterprise", "name": "杭州某某电缆有限公司", "credit_code": CODE, "region": "330106",
        "region_name": "浙江省 杭州市 西湖区", "industry": "C3831", "address": "杭州市西湖区文三路1号", "registered": 0,
        "key": did.removeprefix("did:key:"), "rotations": 0}  # fmt: skip
    listed = qdsn("ledger", "show", "--home", str(reg)).stdout
    assert CODE in listed and "330106" in listed

    # the manufacturer's node follows the operator named in its node.toml and cosigns its log
    operator = serve(reg, port)
    member = serve(acme, free_port())
    try:
        deadline = time.monotonic() + 60
        while not any(e.type == "checkpoint.cosign" and e.submitter == did for e in log_of(reg)[0]):
            assert time.monotonic() < deadline, "the manufacturer never cosigned the regulator's log"
            time.sleep(0.3)
    finally:
        stop(member)
        stop(operator)
    (theirs, _), (ours, _) = log_of(reg), log_of(acme)
    assert [e.leaf() for e in ours] == [e.leaf() for e in theirs[: len(ours)]] and len(ours) >= before + 1
    assert qdsn("ledger", "verify", "--home", str(acme)).returncode == 0


class Tampering(BaseHTTPRequestHandler):
    """An operator in the middle: answers as the real one does, except for what `change` rewrites."""

    upstream: ClassVar[str] = ""
    change: ClassVar[dict] = {}

    def do_GET(self):
        body = httpx.get(self.upstream + self.path).content
        body = self.change.get(self.path, lambda b: b)(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def regulator(tmp_path):
    reg = tmp_path / "reg"
    qdsn("init", "--role", "regulator", "--name", "SAMR", "--home", str(reg))
    port = free_port()
    proc = serve(reg, port)
    yield f"http://127.0.0.1:{port}", reg
    stop(proc)


def test_join_refuses_an_operator_whose_answers_do_not_hold_together(tmp_path, regulator):
    url, _ = regulator
    real = httpx.get(url + "/.well-known/qdsn-trust.json").json()

    def other_key(body):  # a trust file made again around another key: it matches its own fingerprint
        from qdsn.node.trust import fingerprint

        doc = json.loads(body) | {"log_key": NoteSigner(real["origin"], SigningKey.generate()).verifier().text()}
        return json.dumps(doc | {"fingerprint": fingerprint(doc)}).encode()

    cases = {
        "the trust file's fingerprint does not match": {
            "/.well-known/qdsn-trust.json": lambda b: b.replace(b'"quorum":1', b'"quorum":2')},
        "does not verify under the log key its trust file names": {"/.well-known/qdsn-trust.json": other_key},
        "does not list the log key": {"/.well-known/did.json": lambda b: b.replace(
            json.dumps(real["regulator"]).encode(), b'"did:key:z6MkqJrTMguhDaiaNG9w4MF5HLpmTKhTQEVaJccaUvLRcNRz"')},
        "is not a QDSN log operator": {"/.well-known/did.json": lambda b: b"<html>"},
    }  # fmt: skip
    for why, change in cases.items():
        handler = type("H", (Tampering,), {"upstream": url, "change": change})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            home = tmp_path / "acme"
            p = qdsn("join", f"http://127.0.0.1:{server.server_port}", "--role", "enterprise", "--name", "Acme",
                     "--home", str(home), stdin="y\n", ok=False)  # fmt: skip
            assert p.returncode == 1 and why in p.stderr and "Traceback" not in p.stderr, (why, p.stderr)
            assert not home.exists()
        finally:
            server.shutdown()
            server.server_close()
    gone = qdsn("join", "http://127.0.0.1:9", "--role", "enterprise", "--name", "A", "--home", str(tmp_path / "a"),
                ok=False)  # fmt: skip
    assert gone.returncode == 1 and "cannot be reached" in gone.stderr
    assert qdsn("join", url, "--role", "regulator", "--name", "A", "--home", str(tmp_path / "a"), ok=False).returncode


def test_manufacturer_is_the_readmes_word_for_enterprise(tmp_path):
    out = qdsn("init", "--role", "manufacturer", "--name", "Acme", "--home", str(tmp_path / "a")).stdout
    assert "enterprise Acme" in out and "qdsn join URL" in out
    bad = qdsn("init", "--role", "maker", "--name", "Acme", "--home", str(tmp_path / "b"), ok=False)
    assert bad.returncode == 1 and "or manufacturer, for enterprise" in bad.stderr


def test_the_regulator_rotates_and_goes_on_checkpointing(tmp_path):
    reg = tmp_path / "reg"
    qdsn("init", "--role", "regulator", "--name", "SAMR", "--home", str(reg))
    first = re.search(r"log key: (\S+)", qdsn("ledger", "checkpoint", "--home", str(reg)).stdout).group(1)
    doc_before = json.loads(qdsn("did", "show", "--home", str(reg), passphrase="").stdout)
    qdsn("did", "rotate", "--home", str(reg))
    second = re.search(r"log key: (\S+)", qdsn("ledger", "checkpoint", "--home", str(reg)).stdout).group(1)
    assert parse_verifier(first).key.raw != parse_verifier(second).key.raw
    assert qdsn("ledger", "verify", "--home", str(reg)).returncode == 0
    doc = json.loads(qdsn("did", "show", "--home", str(reg), passphrase="").stdout)
    assert doc["id"] == doc_before["id"] and doc["verificationMethod"] != doc_before["verificationMethod"]
    assert [k["publicKeyMultibase"] for k in doc["keyHistory"]] == [
        doc_before["verificationMethod"][0]["publicKeyMultibase"],
        doc["verificationMethod"][0]["publicKeyMultibase"],
    ]


def test_a_kept_demo_consortium_can_be_used_afterwards(tmp_path):
    kept = tmp_path / "kept"
    env = {k: v for k, v in os.environ.items() if k != "QDSN_PASSPHRASE"} | {"COLUMNS": "100"}
    p = subprocess.run([sys.executable, "-m", "qdsn", "demo", "--manufacturers", "1", "--keep", str(kept)],
                       capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    phrase = re.search(r"sealed under the passphrase (\S+)", p.stdout).group(1)
    assert f"QDSN_PASSPHRASE='{phrase}'" in p.stdout
    wrong = qdsn("ledger", "checkpoint", "--home", str(kept / "regulator"), passphrase="not it", ok=False)
    assert wrong.returncode == 1
    note = qdsn("ledger", "checkpoint", "--home", str(kept / "regulator"), passphrase=phrase).stdout
    assert note.startswith("qdsn.local/consortium\n")
    assert qdsn("ledger", "verify", "--home", str(kept / "regulator"), passphrase=phrase).returncode == 0
    assert "cosigned by" in qdsn("ledger", "status", "--home", str(kept / "enterprise-0"), passphrase=phrase).stdout


def test_nothing_the_operator_sends_can_hide_or_imitate_the_fingerprint(tmp_path, regulator):
    """An impostor shows the fingerprint of the real regulator's key (public) and conceals its own with
    terminal control sequences or markup in the fields of its trust file: they are escaped, or refused."""
    from qdsn.crypto import VerifyKey
    from qdsn.ledger.checkpoint import COSIGNATURE_V1, NoteVerifier
    from qdsn.node.trust import fingerprint

    url, _ = regulator
    real = httpx.get(url + "/.well-known/qdsn-trust.json").json()
    conceal = "\x1b[8m"
    fake = f"{real['regulator']}\n  fingerprint [bold]0000 1111 2222 3333 4444 5555 6666 7777[/]{conceal}"
    witness = NoteVerifier("did:key:z6Mkwitness", VerifyKey(SigningKey.generate().verify_key.raw), COSIGNATURE_V1)

    def trust_file(**changes):
        def change(body):
            doc = json.loads(body) | changes
            return json.dumps(doc | {"fingerprint": fingerprint(doc)}).encode()

        return change

    cases = [  # (what the proxy rewrites, whether the join is refused for it)
        ({"/.well-known/qdsn-trust.json": trust_file(regulator=fake),
          "/.well-known/did.json": lambda b: json.dumps(json.loads(b) | {"id": fake}).encode()}, True),
        ({"/.well-known/qdsn-trust.json": trust_file(cosigners=[
            {"did": f"did:key:z6Mkwitness{conceal}", "name": f"Acme{conceal}", "role": f"[bold]regulator[/]{conceal}",
             "key": witness.text()}])}, False),
    ]  # fmt: skip
    for change, refused in cases:
        handler = type("H", (Tampering,), {"upstream": url, "change": change})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            home = tmp_path / "acme"
            p = qdsn("join", f"http://127.0.0.1:{server.server_port}", "--role", "enterprise", "--name", "Acme",
                     "--home", str(home), stdin="n\n", ok=False)  # fmt: skip
            assert "\x1b" not in p.stdout + p.stderr and "Traceback" not in p.stderr, p.stdout
            assert p.returncode == 1 and not home.exists()
            if refused:
                assert "is not a DID" in p.stderr, p.stderr
            else:
                assert "[bold]regulator[/]" in p.stdout and "not joined" in p.stderr, p.stdout + p.stderr
                assert p.stdout.count("fingerprint") == 1
        finally:
            server.shutdown()
            server.server_close()
