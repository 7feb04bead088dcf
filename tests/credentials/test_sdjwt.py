"""SD-JWT (RFC 9901) and SD-JWT VC: the RFC's own disclosure and digest examples, issuance,
presentation with selective disclosure and key binding, and a distinct reason for every refusal."""

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from qdsn.credentials import sdjwt
from qdsn.credentials.sdjwt import Reason
from qdsn.crypto import SigningKey
from qdsn.crypto.jose import public_jwk, sign_compact


def test_rfc9901_4_2_1_disclosure_for_an_object_property():
    d = sdjwt.make_disclosure("Möbius", "family_name", salt="_26bc4LT-ac6q2KI6cBW5es")
    # the RFC serializes the array with ", " between items; any JSON serialization is valid, and the
    # digest is taken over the disclosure as sent — so the RFC's exact string is checked as given
    rfc = "WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0"
    assert orjson.loads(base64.urlsafe_b64decode(rfc + "==")) == orjson.loads(base64.urlsafe_b64decode(d + "=="))
    # RFC 9901 §4.2.3: the digest is over the base64url text, not the JSON it encodes
    assert sdjwt.disclosure_digest(rfc) == "X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0"


def test_rfc9901_4_2_2_disclosure_for_an_array_element():
    rfc = "WyJsa2x4RjVqTVlsR1RQVW92TU5JdkNBIiwgIkZSIl0"
    assert orjson.loads(base64.urlsafe_b64decode(rfc + "==")) == ["lklxF5jMYlGTPUovMNIvCA", "FR"]
    assert sdjwt.disclosure_digest(rfc) == "w0I8EKcdCtUPkGCNUrfwVp2xEgNjtoIDlOxc9-PlOhs"


CLAIMS = {
    "iss": "did:web:cqc.example", "vct": "urn:qdsn:vct:quality-certificate:1", "iat": 1_790_000_000,
    "exp": 1_890_000_000, "certificate": "CQC-2026-0001",
    "enterprise": {"name": "Zhejiang Cable Works", "credit_code": "91330100MA2B3C4D5E"},
    "site": "Hangzhou plant 1", "indicators": {"cpk": 1.62, "ppm": 12}, "standards": ["GB/T 5023", "IEC 60227"],
}  # fmt: skip
DISCLOSABLE = ["site", "indicators", "indicators.cpk", "indicators.ppm", "standards[]", "enterprise.credit_code"]
NOW = datetime.fromtimestamp(1_800_000_000, UTC)


@pytest.fixture
def issued():
    issuer, holder = SigningKey.generate(), ec.generate_private_key(ec.SECP256R1())
    sd = sdjwt.issue(CLAIMS, issuer, DISCLOSABLE, holder_jwk=public_jwk(holder))
    return sd, issuer, holder


def resolver(key):
    return lambda iss, header: key.verify_key.raw


def test_issue_hides_what_is_disclosable(issued):
    sd, issuer, _ = issued
    p = sdjwt.parse(sd)
    payload = orjson.loads(base64.urlsafe_b64decode(p.jwt.split(".")[1] + "=="))
    assert "site" not in payload and "indicators" not in payload and payload["_sd_alg"] == "sha-256"
    assert all(set(x) == {"..."} for x in payload["standards"]) and "credit_code" not in payload["enterprise"]
    assert payload["cnf"]["jwk"]["crv"] == "P-256" and len(p.disclosures) == 7
    assert len(payload["_sd"]) >= 2  # site and indicators, plus any decoys
    full = sdjwt.verify(sd, resolver(issuer), now=NOW)
    assert full.claims["indicators"] == {"cpk": 1.62, "ppm": 12} and full.claims["standards"] == CLAIMS["standards"]


def test_present_only_what_is_chosen_with_key_binding(issued):
    sd, issuer, holder = issued
    shown = sdjwt.present(sd, ["indicators.cpk", "standards[]"], holder, aud="did:web:buyer.example", nonce="n-42",
                          now=NOW)  # fmt: skip
    v = sdjwt.verify(shown, resolver(issuer), aud="did:web:buyer.example", nonce="n-42", now=NOW)
    assert v.key_bound and v.claims["indicators"] == {"cpk": 1.62} and "site" not in v.claims
    assert v.claims["enterprise"] == {"name": "Zhejiang Cable Works"} and v.disclosed == 4


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda sd, kb: sd.replace("~", "~WyJ4IiwgInNpdGUiLCAiZm9vIl0~", 1) + kb, "disclosure-unreferenced"),
        (lambda sd, kb: sd + sdjwt.parse(sd).disclosures[0] + "~" + kb, "disclosure-duplicate"),
        (lambda sd, kb: sd + kb[:-3] + "AAA", "kb-signature"),
        (lambda sd, kb: sd, "kb-missing"),
    ],
    ids=["unreferenced", "duplicate", "kb-forged", "kb-missing"],
)  # fmt: skip
def test_each_refusal_has_its_reason(issued, tamper, code):
    sd, issuer, holder = issued
    shown = sdjwt.present(sd, ["site"], holder, aud="v", nonce="n", now=NOW)
    kb = shown.rsplit("~", 1)[1]
    body = shown[: -len(kb)]
    with pytest.raises(Reason) as e:
        sdjwt.verify(tamper(body, kb), resolver(issuer), aud="v", nonce="n", now=NOW)
    assert e.value.code == code


def test_time_audience_nonce_and_signature(issued):
    sd, issuer, holder = issued
    shown = sdjwt.present(sd, ["site"], holder, aud="v", nonce="n", now=NOW)
    for kwargs, code in [
        ({"aud": "other", "nonce": "n", "now": NOW}, "kb-aud"),
        ({"aud": "v", "nonce": "m", "now": NOW}, "kb-nonce"),
        ({"aud": "v", "nonce": "n", "now": NOW + timedelta(hours=1)}, "kb-stale"),
        ({"now": datetime.fromtimestamp(1_900_000_000, UTC)}, "expired"),
    ]:
        with pytest.raises(Reason) as e:
            sdjwt.verify(shown, resolver(issuer), **kwargs)
        assert e.value.code == code
    with pytest.raises(Reason) as e:
        sdjwt.verify(shown, resolver(SigningKey.generate()), aud="v", nonce="n", now=NOW)
    assert e.value.code == "signature"
    header = {"alg": "EdDSA", "typ": "JWT"}
    plain = sign_compact(header, orjson.dumps(CLAIMS), issuer) + "~"
    with pytest.raises(Reason) as e:
        sdjwt.verify(plain, resolver(issuer), now=NOW)
    assert e.value.code == "typ"


def test_es256_issuers_work_and_vc_sd_jwt_is_refused_on_input():
    issuer = ec.generate_private_key(ec.SECP256R1())
    sd = sdjwt.issue(CLAIMS, issuer, ["site"])
    v = sdjwt.verify(sd, lambda iss, h: issuer.public_key(), now=NOW)
    assert v.header["typ"] == "dc+sd-jwt" and v.claims["site"] == "Hangzhou plant 1" and not v.key_bound
    jwt, rest = sd.split("~", 1)
    old = sign_compact({"alg": "ES256", "typ": "vc+sd-jwt"}, base64.urlsafe_b64decode(jwt.split(".")[1] + "=="), issuer)
    with pytest.raises(Reason) as e:  # the earlier media type, signed and otherwise the same credential
        sdjwt.verify(old + "~" + rest, lambda iss, h: issuer.public_key(), now=NOW)
    assert e.value.code == "typ"
    with pytest.raises(Exception, match="no claim at nowhere"):
        sdjwt.issue(CLAIMS, issuer, ["nowhere"])


def test_many_at_once_on_every_core():
    issuer, holder = SigningKey.generate(), ec.generate_private_key(ec.SECP256R1())
    sd = sdjwt.issue(CLAIMS, issuer, DISCLOSABLE, holder_jwk=public_jwk(holder))
    shown = [sdjwt.present(sd, ["site"], holder, aud="v", nonce=f"n{i}", now=NOW) for i in range(150)]
    nonces = [f"n{i}" for i in range(150)]
    nonces[7] = "replayed"
    results = sdjwt.verify_many(shown, {CLAIMS["iss"]: issuer.verify_key.raw}, aud="v", nonces=nonces, now=NOW)
    assert [type(r).__name__ for r in results].count("Verified") == 149
    assert isinstance(results[7], Reason) and results[7].code == "kb-nonce"
    assert results[100].claims["site"] == "Hangzhou plant 1"
    (unknown,) = sdjwt.verify_many(shown[:1], {}, aud="v", nonces=nonces[:1], now=NOW)
    assert unknown.code == "signature" and "not one this verifier knows" in str(unknown)


def test_a_did_key_issuer_needs_no_lookup():
    from qdsn.credentials.issuers import resolver
    from qdsn.identity import did_key_from_public_key

    issuer = SigningKey.generate()
    did = did_key_from_public_key(issuer.verify_key.raw)
    sd = sdjwt.issue(CLAIMS | {"iss": did}, issuer, ["site"])
    assert sdjwt.verify(sd, resolver(), now=NOW).issuer == did
    other = sdjwt.issue(CLAIMS | {"iss": did}, SigningKey.generate(), ["site"])  # signed by someone else
    with pytest.raises(Reason) as e:
        sdjwt.verify(other, resolver(), now=NOW)
    assert e.value.code == "signature"
