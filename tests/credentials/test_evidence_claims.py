"""The evidence behind a certificate must back what the certificate says: the run was attested by the
certificate's enterprise, of the scheme's model, with the output the certificate carries, meeting the
scheme's criteria, and the certificate is the one its credential.issue recorded. A certification
body's node refuses to issue otherwise, and every verifier — online and offline — refuses to believe
a certificate made otherwise (here, one a careless or dishonest body signed by hand)."""

from datetime import UTC, datetime, timedelta

import pytest

from qdsn.compute import package
from qdsn.compute.job import Range, execute
from qdsn.credentials import certificate, sdjwt
from qdsn.crypto import sha256
from qdsn.crypto.jose import public_jwk
from qdsn.errors import Conflict, InvalidInput, PermissionDenied
from qdsn.ledger import tx
from qdsn.ledger.audit import audit
from qdsn.node import NodeHome, certify, trust
from qdsn.node.follow import log_key
from qdsn.node.jobs import owner, record
from qdsn.node.verification import bundle, verify_bundle, verify_online

from .consortium import FAST, PW, URI, build


@pytest.fixture
def c(tmp_path):
    c = build(tmp_path)
    c.other = NodeHome.init(tmp_path / "other", "enterprise", "Other Cable Co", PW, scrypt_n=FAST,
                            ledger_url=str(tmp_path / "reg" / "ledger.db"))  # fmt: skip
    c.rival = NodeHome.init(tmp_path / "rival", "certifier", "Rival Body", PW, scrypt_n=FAST,
                            ledger_url=str(tmp_path / "reg" / "ledger.db"))  # fmt: skip
    c.plant.order([c.reg.sign("identity.register", h.registration()) for h in (c.other, c.rival)])
    yield c
    c.close()


def by_hand(c, txid, output, *, number="CQC-2026-0099", signer=None, subject=None, record=True, evidence=None,
            uri=URI, **claims):  # fmt: skip
    """A certificate signed by a certification body without `certify.issue`'s checks, recorded on the ledger."""
    signer = signer or c.cqc
    subject = subject or c.maker
    lists = certify.status_lists(c.lab)
    if uri not in lists.uris():
        lists.create(uri)
    idx = lists.allocate(uri, number)
    now = datetime.now(UTC)
    ev = evidence or certificate.evidence(c.plant.ledger, [txid], c.cosign(), log_key(c.plant.ledger), [output])
    doc = {
        "iss": signer.did, "iat": int(now.timestamp()), "exp": int((now + timedelta(days=30)).timestamp()),
        "certificate_number": number, "scheme": "process-capability", "standards": ["GB/T 5023.3-2008"],
        "enterprise": {"name": subject.name, "did": subject.did}, "product_category": "cable", "scope": "BV 2.5",
        "indicators": {"cpk": 1.5}, "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
        "evidence": ev, "status": {"status_list": {"idx": idx, "uri": uri}},
    } | claims  # fmt: skip
    sd = certificate.issue(doc, signer.key(), public_jwk(subject.key()), kid=signer.did)
    if record:
        c.plant.order([signer.sign("credential.issue", {
            "credential": number, "vct": certificate.VCT, "subject": subject.did, "status_list": uri, "index": idx,
            "hash": sha256(sdjwt.parse(sd).jwt.encode()).hex(), "attestations": [a["txid"] for a in ev["attestations"]],
        })])  # fmt: skip
        c.cosign()
    return sd


def report(c, sd):
    checks = verify_online(c.lab, sdjwt.present(sd, ["evidence.attestations[].output"], None), quorum=1)
    return {x.name: x for x in checks}, checks


def test_the_honest_certificate_verifies_online_and_offline(c):
    sd = c.issue()
    by, checks = report(c, sd)
    assert all(x.ok for x in checks), [x for x in checks if not x.ok]
    assert "signed by the certificate's enterprise" in by["attestation"].detail
    assert "meets scheme process-capability" in by["criteria"].detail and by["criteria"].checked
    assert by["record"].detail.startswith("credential.issue at entry")


def test_a_certificate_naming_another_enterprise_does_not_rest_on_this_run(c):
    result, txid = c.run()
    sd = by_hand(c, txid, result["output"], subject=c.other)  # the maker's run, the other's name
    by, _ = report(c, sd)
    assert not by["attestation"].ok and "subject: the run was attested by " + c.maker.did in by["attestation"].detail
    doc = bundle(c.lab, sdjwt.present(sd, [], None))
    checks = verify_bundle(doc, trust=trust.load(trust.export(c.plant.ledger, quorum=2)))  # two members cosign
    assert checks[0].ok and not next(x for x in checks if x.name == "attestation").ok  # offline alike


def test_a_scheme_is_backed_only_by_its_own_model(c):
    result, txid = c.run()
    sd = by_hand(c, txid, result["output"], scheme="spc-stability")
    by, _ = report(c, sd)
    assert not by["attestation"].ok and "scheme: the run is of model 'process-capability'" in by["attestation"].detail
    sd = by_hand(c, txid, result["output"], number="X-2", scheme="product-certification")  # no model at all
    assert not report(c, sd)[0]["attestation"].ok


def test_a_failing_or_leniently_judged_run_backs_nothing(c):
    failed, txid = c.run({"threshold": 5.0}, job="job-strict")
    assert failed["output"]["pass"] is False
    with pytest.raises(InvalidInput, match="did not pass"):
        c.issue("CQC-F", failed)
    by, _ = report(c, by_hand(c, txid, failed["output"], number="CQC-F"))
    assert by["attestation"].ok and not by["criteria"].ok and "criteria: " in by["criteria"].detail
    assert "did not pass" in by["criteria"].detail

    lenient, txid = c.run({"threshold": 0.5}, job="job-lenient")  # passes, but judged below the scheme's Cpk 1.0
    assert lenient["output"]["pass"] is True
    with pytest.raises(InvalidInput, match=r"below the scheme's 1\.0"):
        c.issue("CQC-L", lenient)
    assert "CQC-L" not in c.plant.ledger.state.credentials  # refused before anything was written
    by, _ = report(c, by_hand(c, txid, lenient["output"], number="CQC-L"))
    assert not by["criteria"].ok and "below the scheme's 1.0" in by["criteria"].detail

    good, txid = c.run(job="job-good")  # an output the attestation did not attest
    bent = good["output"] | {"threshold": 2.0}
    by, _ = report(c, by_hand(c, txid, bent, number="CQC-B"))
    assert not by["criteria"].ok and "not the one attested" in by["criteria"].detail


def test_evidence_must_name_attested_runs(c):
    result, txid = c.run()
    ledger = c.plant.ledger
    ev = certificate.evidence(ledger, [txid], c.cosign(), log_key(ledger), [result["output"]])
    with pytest.raises(InvalidInput, match=r"at \$\.evidence\.attestations: \[\] should be non-empty"):
        by_hand(c, txid, result["output"], number="E-0", evidence=ev | {"attestations": []})

    anchor = next(r for r in ledger.store.rows_of_type("dataset.anchor"))
    size = ev["checkpoint"]["size"]
    item = {"txid": tx.txid(anchor.leaf), "seq": anchor.seq, "output": result["output"],
            "proof": [h.hex() for h in ledger.inclusion_proof(anchor.seq, size)]}  # fmt: skip
    by, _ = report(c, by_hand(c, txid, result["output"], number="E-1", evidence=ev | {"attestations": [item]}))
    assert not by["attestation"].ok
    assert f"ledger entry {anchor.seq} is a dataset.anchor, not a compute.attest" in by["attestation"].detail
    with pytest.raises(InvalidInput, match="at least one attested run"):
        certificate.evidence(ledger, [], c.cosign(), log_key(ledger))
    with pytest.raises(InvalidInput, match=f"ledger entry {anchor.seq} is a dataset.anchor"):
        certificate.evidence(ledger, [tx.txid(anchor.leaf)], c.cosign(), log_key(ledger))

    bare = ev | {"attestations": [{k: v for k, v in ev["attestations"][0].items() if k != "output"}]}
    by, _ = report(c, by_hand(c, txid, result["output"], number="E-2", evidence=bare))
    assert by["attestation"].ok and by["criteria"].ok and not by["criteria"].checked  # not shown: judged at issue
    assert "did not show" in by["criteria"].detail and "credential.issue is on the ledger" in by["criteria"].detail


def test_the_certificate_is_the_one_credential_issue_recorded(c):
    sd = c.issue()
    claims = sdjwt.verify(sd, lambda iss, h: c.plant.ledger.state.identities[iss].key).claims
    # the same number, signed again by its issuer with a wider scope: not what the ledger recorded
    wider = by_hand(c, claims["evidence"]["attestations"][0]["txid"], claims["evidence"]["attestations"][0]["output"],
                    number=claims["certificate_number"], record=False, scope="every cable there is")  # fmt: skip
    by, _ = report(c, wider)
    assert not by["record"].ok and "hash is not the one its credential.issue" in by["record"].detail
    unrecorded = by_hand(
        c,
        claims["evidence"]["attestations"][0]["txid"],
        claims["evidence"]["attestations"][0]["output"],
        number="NOT-ON-LEDGER",
        record=False,
    )
    by, _ = report(c, unrecorded)
    assert not by["record"].ok and "no credential.issue for certificate NOT-ON-LEDGER" in by["record"].detail


def test_a_status_list_belongs_to_the_body_that_first_used_it(c):
    sd = c.issue()
    taken = {"credential": "RIVAL-1", "vct": certificate.VCT, "subject": c.maker.did, "hash": "ab" * 32,
             "status_list": URI, "index": 7}  # fmt: skip
    with pytest.raises(PermissionDenied, match=f"status list {URI} belongs to {c.cqc.did}"):
        c.plant.order([c.rival.sign("credential.issue", taken)])
    c.plant.order([c.rival.sign("credential.issue", taken | {"status_list": "https://rival.example/sl/1"})])
    ledger = c.plant.ledger
    assert audit(ledger.store, log_key(ledger)).ok  # the rule replays the same on every node
    with pytest.raises(Conflict, match="belongs to " + c.rival.did):  # refused before a status entry is taken
        c.issue("CQC-R", uri="https://rival.example/sl/1")

    # A rival's certificate that names the body's list is checked with the rival's key, and the list is not its own
    result, txid = c.run(job="job-r")
    forged = by_hand(c, txid, result["output"], number="RIVAL-2", signer=c.rival, record=False)
    by, _ = report(c, forged)
    assert not by["status"].ok and f"is not the issuer's on the ledger (it is {c.cqc.did}'s)" in by["status"].detail
    assert report(c, sd)[0]["status"].ok


def test_continuous_certification_judges_by_the_scheme(c):
    c.issue()
    strict, _ = c.run({"threshold": 5.0}, job="job-strict")
    assert certify.recheck(c.lab, "CQC-2026-0001", strict) == "suspended"
    lenient, _ = c.run({"threshold": 0.5}, job="job-lenient")  # "pass": true, by a laxer threshold
    assert lenient["output"]["pass"] is True
    assert certify.recheck(c.lab, "CQC-2026-0001", lenient) == "suspended"
    blob, m = package.load(package.builtin("spc-stability"))
    c.plant.order([c.cqc.sign("model.publish", {"model": m.id, "version": m.version, "hash": package.code_hash(blob),
                                                "manifest": m.model_dump(mode="json")})])  # fmt: skip
    r = execute(owner(c.plant), blob, {}, [Range("line-1", 0, 300)], "n-spc", job="job-spc")
    record(c.plant, r)
    with pytest.raises(InvalidInput, match="judged by 'process-capability' runs"):
        certify.recheck(c.lab, "CQC-2026-0001", {"output": r.output, "attestation": r.attestation})
    good, _ = c.run(job="job-good")
    assert certify.recheck(c.lab, "CQC-2026-0001", good) == "valid"


def test_an_older_status_token_does_not_hide_a_suspension_on_the_ledger(c):
    shown = c.present(c.issue())
    anchor = trust.load(trust.export(c.plant.ledger, quorum=2))
    before = bundle(c.lab, shown)
    certify.set_status(c.lab, "CQC-2026-0001", "suspended", "audit finding")
    c.cosign()
    after = bundle(c.lab, shown)
    status = {x.name: x for x in verify_bundle(after, aud="did:web:buyer.example", nonce="n-1", trust=anchor)}
    assert not status["status"].ok and status["status"].detail.startswith("suspended")
    replayed = after | {"status_list": before["status_list"]}  # the token from before, still unexpired
    by = {x.name: x for x in verify_bundle(replayed, aud="did:web:buyer.example", nonce="n-1", trust=anchor)}
    assert by["consortium"].ok and not by["status"].ok and "suspended on the ledger" in by["status"].detail


def test_a_result_that_is_not_one_is_refused_plainly(c):
    for bad in (None, [], {"output": {}}, {"output": [], "attestation": "x"}, {"attestation": 3, "output": {}}):
        subject = certify.Subject("CQC-X", ["GB/T 5023"], "cable", "BV 2.5", "Hangzhou")
        with pytest.raises(InvalidInput, match="a job's result is"):
            certify.issue(c.lab, bad, subject, URI, note=c.cosign())
        with pytest.raises(InvalidInput, match="a job's result is"):
            certify.recheck(c.lab, "CQC-X", bad)


def test_a_refused_issue_leaves_no_status_entry_taken(tmp_path):
    """The ledger refuses a certificate number issued before: its status entry is freed, not left taken."""
    from sqlalchemy import func, select

    from qdsn.credentials.status import entries

    c = build(tmp_path)
    try:
        c.issue()
        with pytest.raises(Conflict, match="already issued"):
            c.issue()
        with c.lab.policies.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(entries)).scalar_one() == 1
    finally:
        c.close()


def test_one_run_backs_one_certificate(c):
    result, _ = c.run(job="job-once")
    c.issue("CQC-ONCE-1", result=result)
    with pytest.raises(Conflict, match="the run of job job-once already backs certificate CQC-ONCE-1"):
        c.issue("CQC-ONCE-2", result=result)
    assert "CQC-ONCE-2" not in c.lab.ledger.state.credentials
