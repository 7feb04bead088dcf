"""Certificates on the ledger: issued by certification bodies only, each status entry used once, status
changes by the issuer alone, revocation final — and all of it survives a reopen and an audit."""

import pytest

from qdsn.errors import Conflict, NotFound, PermissionDenied
from qdsn.ledger.audit import audit
from qdsn.node import NodeHome
from qdsn.node.follow import log_key

FAST = 2**4


def test_issue_and_status(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    homes = {n: NodeHome.init(tmp_path / n, r, n, "pw", ledger_url=shared, scrypt_n=FAST)
             for n, r in (("cqc", "certifier"), ("other", "certifier"), ("maker", "enterprise"))}  # fmt: skip
    for h in homes.values():
        reg.submit("identity.register", h.registration())
    cqc, maker = homes["cqc"], homes["maker"]
    cert = {"credential": "CQC-2026-0001", "vct": "urn:qdsn:vct:quality-certificate:1", "subject": maker.did,
            "hash": "ab" * 32, "status_list": "https://cqc.example/status-lists/1", "index": 4711}  # fmt: skip
    with pytest.raises(PermissionDenied, match="role enterprise may not"):
        maker.submit("credential.issue", cert)
    cqc.submit("credential.issue", cert)
    with pytest.raises(Conflict, match="already issued"):
        cqc.submit("credential.issue", cert)
    with pytest.raises(Conflict, match="already belongs to CQC-2026-0001"):
        cqc.submit("credential.issue", cert | {"credential": "CQC-2026-0002"})
    with pytest.raises(NotFound, match="not registered"):
        cqc.submit("credential.issue", cert | {"credential": "X", "index": 1, "subject": "did:key:z6Mkx"})
    with pytest.raises(PermissionDenied, match="only its issuer"):
        homes["other"].submit("credential.status", {"credential": "CQC-2026-0001", "status": "suspended",
                                                    "reason": "not mine"})  # fmt: skip
    for status in ("suspended", "valid", "invalid"):
        cqc.submit("credential.status", {"credential": "CQC-2026-0001", "status": status, "reason": f"to {status}"})
    with pytest.raises(Conflict, match="revocation is final"):
        cqc.submit("credential.status", {"credential": "CQC-2026-0001", "status": "valid", "reason": "undo"})
    ledger = reg.ledger()
    c = ledger.state.credentials["CQC-2026-0001"]
    assert (c.status, c.issuer, c.index) == ("invalid", cqc.did, 4711)
    assert audit(ledger.store, log_key(ledger)).ok
    ledger.close()
