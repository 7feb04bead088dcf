"""A quality certificate from an attested run, presented with selective disclosure and verified the
way a buyer would: issuer, signature, disclosures, key binding, status, and the evidence chain down
to the anchored data under a cosigned checkpoint."""

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from qdsn.compute import package
from qdsn.compute.job import Range, execute
from qdsn.credentials import certificate, sdjwt
from qdsn.credentials.status import StatusLists, read_token
from qdsn.crypto import sha256
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import public_jwk, sign_compact
from qdsn.errors import InvalidInput
from qdsn.ledger import tx
from qdsn.node import NodeHome
from qdsn.node.follow import log_key
from qdsn.node.jobs import owner, record

from ..compute.test_job import plant  # noqa: F401 — the fixture: a plant with anchored readings, a published model


def test_issue_present_verify_suspend(plant, tmp_path):  # noqa: F811
    node, cqc, blob = plant
    maker = node.home
    result = execute(owner(node), blob, {"threshold": 1.33}, [Range("line-1", 0, 300)], "n-cert", job="job-c")
    txid = tx.txid(record(node, result).leaf())
    ledger = node.ledger
    key = log_key(ledger)
    regulator = NodeHome.open(maker.path.parent / "reg", "pw", scrypt_n=2**4)  # the log's operator signs
    note = ledger.sign_checkpoint(regulator.log_signer())
    note = ledger.witness(note, key, cqc.cosigner(), int(time.time()))
    lists = StatusLists(node.policies.engine)
    uri = "https://cqc.example/status-lists/1"
    lists.create(uri)
    idx = lists.allocate(uri, "CQC-2026-0001")
    now = datetime.now(UTC)
    claims = {
        "iss": cqc.did, "iat": int(now.timestamp()), "exp": int((now + timedelta(days=365)).timestamp()),
        "certificate_number": "CQC-2026-0001", "scheme": "process-capability", "standards": ["GB/T 5023.3-2008"],
        "enterprise": {"name": maker.name, "did": maker.did, "credit_code": "91330100MA2B3C4D5E"},
        "site": "Hangzhou plant 1", "product_category": "PVC-insulated cable", "scope": "BV 2.5 mm²",
        "indicators": {"cpk": result.output["characteristics"][0]["cpk"],
                       "cpk_lower": result.output["characteristics"][0]["cpk_lower"]},
        "volumes": {"records": 300}, "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(days=365)).isoformat(),
        "evidence": certificate.evidence(ledger, [txid], note, key, [result.output]),
        "status": {"status_list": {"idx": idx, "uri": uri}},
    }  # fmt: skip
    sd = certificate.issue(claims, cqc.key(), public_jwk(maker.key()), kid=cqc.did)
    node.order([cqc.sign("credential.issue", {
        "credential": "CQC-2026-0001", "vct": certificate.VCT, "subject": maker.did, "index": idx, "status_list": uri,
        "hash": sha256(sdjwt.parse(sd).jwt.encode()).hex(), "attestations": [txid]})])  # fmt: skip
    assert certificate.disclosable(claims) == ["enterprise.credit_code", "site", "indicators", "indicators.cpk",
                                               "indicators.cpk_lower", "volumes",
                                               "evidence.attestations[].output"]  # fmt: skip
    shown = sdjwt.present(sd, ["indicators.cpk"], maker.key(), aud="did:web:buyer.example", nonce="b-1")

    def fetch(u):
        return read_token(lists.token(u, cqc.key(), kid=cqc.did), u, cqc.key().verify_key.raw)

    checks = certificate.report(shown, ledger, log_key=key, aud="did:web:buyer.example", nonce="b-1", status=fetch,
                                cosigners=[cqc.cosigner().verifier()], quorum=1)  # fmt: skip
    assert [c.name for c in checks] == ["issuer", "signature", "disclosures", "key binding", "status", "record",
                                        "authority", "checkpoint", "attestation", "criteria"]  # fmt: skip
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert not checks[-1].checked and "did not show" in checks[-1].detail  # the run's output stayed hidden
    assert checks[2].detail.startswith("2 shown: indicators, cpk;") and "site" not in checks[2].detail
    lists.set(uri, idx, 2)
    status = next(c for c in certificate.report(shown, ledger, log_key=key, status=fetch) if c.name == "status")
    assert not status.ok and status.detail.startswith("suspended")
    quorum = certificate.report(shown, ledger, log_key=key, status=fetch, cosigners=[cqc.cosigner().verifier()],
                                quorum=2)  # fmt: skip
    assert not next(c for c in quorum if c.name == "checkpoint").ok
    with pytest.raises(InvalidInput, match="not a QDSN quality certificate"):
        certificate.issue(claims | {"scheme": "vibes"}, cqc.key(), public_jwk(maker.key()), kid=cqc.did)
    (refused,) = certificate.report(shown, ledger, log_key=key, aud="did:web:other", nonce="b-1")
    assert not refused.ok and "kb-aud" in refused.detail
    assert package.code_hash(blob) in str(ledger.state.models)


def test_the_report_takes_only_qdsn_quality_certificates(tmp_path):
    """A certification body's credential of another type (or of none) is no quality certificate, though
    its signature holds."""
    fast = 2**4
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=fast)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=str(tmp_path / "reg" / "ledger.db"),
                        scrypt_n=fast)  # fmt: skip
    reg.submit("identity.register", cqc.registration())
    ledger = reg.ledger()
    claims = {"iss": cqc.did, "iat": int(time.time()), "site": "Hangzhou plant 1"}
    try:
        ours = sdjwt.issue(claims | {"vct": certificate.VCT}, cqc.key(), ["site"])
        (refused,) = certificate.report(ours, ledger, log_key=log_key(ledger))  # signed, but not its claims
        assert not refused.ok and refused.name == "claims" and "is a required property" in refused.detail
        other = sdjwt.issue(claims | {"vct": "urn:example:vct:diploma"}, cqc.key(), ["site"])
        (refused,) = certificate.report(other, ledger, log_key=log_key(ledger))
        assert not refused.ok and refused.detail.startswith("vct:") and certificate.VCT in refused.detail
        jwt = ours.split("~")[0]
        payload = orjson.loads(b64url_decode(jwt.split(".")[1]))
        untyped = sign_compact(orjson.loads(b64url_decode(jwt.split(".")[0])), orjson.dumps(
            {k: v for k, v in payload.items() if k != "vct"}), cqc.key()) + "~"  # fmt: skip
        (refused,) = certificate.report(untyped, ledger, log_key=log_key(ledger))
        assert not refused.ok and refused.detail.startswith("vct:")
    finally:
        ledger.close()
