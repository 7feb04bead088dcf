"""Key rotation in a consortium of separate node processes: the regulator (the log key), a manufacturer and
a certification body (both witnesses) each rotate their key while their nodes run; the log goes on being
checkpointed and cosigned by every member, every checkpoint signed before a rotation still verifies, the
whole log audits under the log key it started with, and the DID document is the same from the CLI and the
node's /.well-known/did.json."""

import base64
import json
import os
import subprocess
import sys
import time

import httpx

from qdsn.api.client import NodeClient
from qdsn.ledger import tx
from qdsn.ledger.audit import audit
from qdsn.ledger.checkpoint import Checkpoint, cosigners_verified, open_checkpoint, parse_note
from qdsn.node import NodeHome, witness

from ..services import free_port
from .conftest import FAST
from .test_network import start


def client(url, home):
    return NodeClient(url, home.key(), home.did)


def entries(url, home):
    c = client(url, home)
    try:
        return [tx.from_leaf(base64.b64decode(x)) for x in c.call("GET", "/ledger/entries?start=0")["entries"]]
    finally:
        c.close()


def wait_for_cosignatures(url, reader, members, after, what):
    """Wait until every member has recorded a checkpoint.cosign past entry `after`; returns the log's entries."""
    deadline = time.monotonic() + 60
    while True:
        log = entries(url, reader)
        done = {e.submitter for i, e in enumerate(log) if e.type == "checkpoint.cosign" and i > after}
        if done >= {m.did for m in members}:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: cosignatures after entry {after} only from {done}")
        time.sleep(0.3)


def rotate(home, url):
    """Rotate `home`'s key through the log operator at `url`; returns the entry that recorded it."""
    c = client(url, home)
    try:
        home.rotate_key(lambda env: c.submit([env]))
    finally:
        c.close()
    log = entries(url, home)
    return max(i for i, e in enumerate(log) if e.type == "identity.rotate_key" and e.submitter == home.did)


def test_every_role_rotates_while_the_nodes_run(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    zj = NodeHome.init(tmp_path / "zj", "enterprise", "Zhejiang Cable", "pw", origin=reg.origin, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", origin=reg.origin, scrypt_n=FAST)
    for m in (zj, cqc):
        reg.submit("identity.register", m.registration())
    first_log_key = reg.log_signer().verifier()
    ports = {n: free_port() for n in ("reg", "zj", "cqc")}
    url = f"http://127.0.0.1:{ports['reg']}"
    procs = [start(reg, ports["reg"])]
    try:
        procs += [start(zj, ports["zj"], url), start(cqc, ports["cqc"], url)]
        wait_for_cosignatures(url, reg, (zj, cqc), 0, "before any rotation")
        old_note = httpx.get(url + "/ledger/checkpoint").text

        for who in (reg, zj, cqc):  # each rotation is an entry the members then cosign past
            r = rotate(who, url)
            wait_for_cosignatures(url, reg, (zj, cqc), r, f"after {who.name}'s rotation")
            c = client(url, zj)  # a later transaction of the manufacturer, signed with its current key
            c.submit([zj.sign("dataset.declare", {"dataset": f"after-{who.name.split()[0].lower()}",
                                                  "title": "Line", "kind": "measurements"})])  # fmt: skip
            c.close()

        new_note = httpx.get(url + "/ledger/checkpoint").text
        assert Checkpoint.parse(parse_note(new_note)[0]).size > Checkpoint.parse(parse_note(old_note)[0]).size
        served = httpx.get(url + "/.well-known/did.json").json()
        env = os.environ | {"QDSN_HOME": str(reg.path), "QDSN_PASSPHRASE": ""}
        shown = subprocess.run([sys.executable, "-m", "qdsn", "did", "show"], capture_output=True, text=True,
                               env=env, timeout=60)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == served  # one document: from the CLI, without a passphrase, and served
        assert served["verificationMethod"][0]["publicKeyMultibase"] == served["keyHistory"][-1]["publicKeyMultibase"]
        assert len(served["keyHistory"]) == 2 and "until" in served["keyHistory"][0]
        last = max(i for i, e in enumerate(entries(url, reg)) if e.type != "checkpoint.cosign")
        wait_for_cosignatures(url, reg, (zj, cqc), last, "after the last transaction")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)

    ledgers = {h.name: h.ledger() for h in (reg, zj, cqc)}
    try:
        operator = ledgers["SAMR"]
        assert open_checkpoint(old_note, first_log_key)  # signed before the rotation, under the first key
        assert operator.open_checkpoint(old_note)[0].size < operator.open_checkpoint(new_note)[0].size
        assert operator.log_key().key.raw != first_log_key.key.raw
        # members' cosignatures made before their rotation still count, with those made after
        for c in operator.store.cosignatures():
            cp_note = dict(operator.store.checkpoint_notes()).get(c.size)
            if cp_note is not None:
                merged = witness.cosigned_note(operator, cp_note)
                assert c.cosigner in cosigners_verified(merged, witness.cosigners(operator, c.size))
        for name, ledger in ledgers.items():  # the whole log audits under the key it started with
            report = audit(ledger.store, first_log_key)
            assert report.ok, (name, report.reason)
        for ledger in ledgers.values():  # one log: each member's replica is a prefix of the operator's
            assert ledger.size > last and ledger.root() == operator.root_at(ledger.size)
        by_key = {e.submitter: e for e in map(tx.from_leaf, operator.store.leaves(0, operator.size))
                  if e.type == "identity.rotate_key"}  # fmt: skip
        assert set(by_key) == {reg.did, zj.did, cqc.did}
    finally:
        for lg in ledgers.values():
            lg.close()
