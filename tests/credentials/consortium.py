"""A whole small consortium built from scratch in a folder: a regulator running the log, a certification
body, a manufacturer with anchored readings, a published model, an attested run, a certificate issued
from it and a checkpoint cosigned by both members covering its credential.issue. A forger can build
one just like it, under the same origin, with keys of its own."""

import random
import time
from dataclasses import dataclass
from pathlib import Path

from qdsn.compute import package
from qdsn.compute.job import Range, execute
from qdsn.credentials import sdjwt
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome, certify
from qdsn.node.follow import log_key
from qdsn.node.jobs import owner, record

FAST = 2**4
PW = "test passphrase"
ORIGIN = "qdsn.local/samr"
URI = "https://cqc.example/status-lists/1"


@dataclass
class Consortium:
    reg: NodeHome
    cqc: NodeHome
    maker: NodeHome
    plant: Node  # the manufacturer's node, which operates the log here
    lab: Node  # the certification body's node on the same replica
    blob: bytes

    def run(self, parameters=None, job="job-1", first=0, count=300):
        """An attested run of the process-capability model on the manufacturer's data, recorded."""
        r = execute(owner(self.plant), self.blob, parameters or {"threshold": 1.33}, [Range("line-1", first, count)],
                    "nonce-" + job, job=job)  # fmt: skip
        env = record(self.plant, r)
        return {"output": r.output, "attestation": r.attestation}, tx.txid(env.leaf())

    def cosign(self):
        """A checkpoint of the log as it is now, cosigned by both members; returns the note."""
        ledger = self.plant.ledger
        note = ledger.sign_checkpoint(self.reg.log_signer())
        for m in (self.cqc, self.maker):
            note = ledger.witness(note, log_key(ledger), m.cosigner(), int(time.time()))
        return note

    def issue(self, number="CQC-2026-0001", result=None, uri=URI):
        result = result or self.run()[0]
        if uri not in certify.status_lists(self.lab).uris():
            certify.status_lists(self.lab).create(uri)
        subject = certify.Subject(number, ["GB/T 5023.3-2008"], "PVC-insulated cable", "BV 2.5 mm²",
                                  "Hangzhou plant 1", credit_code="91330100MA2B3C4D5E")  # fmt: skip
        sd = certify.issue(self.lab, result, subject, uri, note=self.cosign())
        self.cosign()  # a later checkpoint covers the credential.issue too
        return sd

    def present(self, sd, aud="did:web:buyer.example", nonce="n-1"):
        return sdjwt.present(sd, ["indicators"], self.maker.key(), aud=aud, nonce=nonce)

    def close(self):
        self.plant.close()


def build(root: Path, regulator: str = "SAMR") -> Consortium:
    """A consortium in `root`: the origin is qdsn.local/<regulator>, the same for anyone who picks the name."""
    reg = NodeHome.init(root / "reg", "regulator", regulator, PW, scrypt_n=FAST)
    shared = str(root / "reg" / "ledger.db")
    cqc = NodeHome.init(root / "cqc", "certifier", "CQC", PW, ledger_url=shared, scrypt_n=FAST)
    maker = NodeHome.init(root / "maker", "enterprise", "Maker", PW, ledger_url=shared, scrypt_n=FAST)
    for h in (cqc, maker):
        reg.submit("identity.register", h.registration())
    plant = Node(maker, operator=True)
    decl = {"dataset": "line-1", "title": "Line 1", "kind": "measurements", "characteristics": [
        {"name": "resistance", "unit": "Ω/km", "lsl": 17.0, "usl": 18.1, "critical": True}]}  # fmt: skip
    plant.submit([maker.sign("dataset.declare", decl)])
    plant.vault.create("line-1", "measurements")
    rng = random.Random(7)
    for start in (0, 150):
        rows = [{"characteristic": "resistance", "value": round(rng.gauss(17.55, 0.08), 3),
                 "time": f"2026-03-01T08:{(start + i) // 60:02d}:{(start + i) % 60:02d}Z"}
                for i in range(150)]  # fmt: skip
        batch = plant.vault.add_batch("line-1", rows)
        plant.vault.mark_anchored(batch, plant.order([maker.sign("dataset.anchor", batch.anchor_payload())])[0].txid)
    blob, m = package.load(package.builtin("process-capability"))
    plant.order([cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(blob),
                                            "manifest": m.model_dump(mode="json")})])  # fmt: skip
    lab = Node(cqc, operator=True, ledger=plant.ledger)
    return Consortium(reg, cqc, maker, plant, lab, blob)
