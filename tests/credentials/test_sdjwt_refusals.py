"""What another organisation controls at the verifier's door — every byte of the presentation, and
the whole of a credential an issuer signed — and the refusal each fault gets: its own `Code`, never
an exception of another kind. Every case beside its untampered twin, which is accepted."""

from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from qdsn.credentials import sdjwt
from qdsn.credentials.reasons import Code
from qdsn.credentials.sdjwt import Reason, disclosure_digest, make_disclosure
from qdsn.crypto import SigningKey
from qdsn.crypto.encoding import b64url_encode
from qdsn.crypto.jose import public_jwk
from qdsn.errors import InvalidInput

NOW = datetime.fromtimestamp(1_800_000_000, UTC)
VCT = "urn:qdsn:vct:quality-certificate:1"
ISSUER = SigningKey.generate()
HOLDER = ec.generate_private_key(ec.SECP256R1())
BASE = {"iss": "did:web:cqc.example", "vct": VCT, "iat": 1_790_000_000, "exp": 1_890_000_000,
        "cnf": {"jwk": public_jwk(HOLDER)}}  # fmt: skip


def jws(header, payload, key) -> str:
    """A compact JWS signed for real over any header and payload, with no library's checks in the way:
    what a hostile or careless issuer or holder can send."""
    signing_input = f"{b64url_encode(orjson.dumps(header))}.{b64url_encode(orjson.dumps(payload))}"
    if isinstance(key, SigningKey):
        signature = key.sign(signing_input.encode())
    else:
        r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return f"{signing_input}.{b64url_encode(signature)}"


def issuer_jwt(payload, header=None, key=ISSUER) -> str:
    return jws({"alg": "EdDSA", "typ": "dc+sd-jwt"} | (header or {}), payload, key)


def sd(payload, disclosures=(), header=None) -> str:
    return issuer_jwt(payload, header) + "~" + "".join(d + "~" for d in disclosures)


def kb(sd_jwt, claims=None, header=None) -> str:
    """A key binding by the holder over `sd_jwt` for verifier v and nonce n, with `claims` changed."""
    body = {"iat": int(NOW.timestamp()), "aud": "v", "nonce": "n", "sd_hash": disclosure_digest(sd_jwt)}
    return jws({"alg": "ES256", "typ": "kb+jwt"} | (header or {}), body | (claims or {}), HOLDER)


def outcome(presentation, **kwargs):
    """'ok', or the code it was refused with; any other exception fails the test."""
    try:
        sdjwt.verify(presentation, lambda iss, h: ISSUER.verify_key.raw, now=NOW, **kwargs)
    except Reason as e:
        return e.code
    return "ok"


SITE = make_disclosure("Hangzhou plant 1", "site", salt="salt-site")
CPK = make_disclosure(1.62, "cpk", salt="salt-cpk")
GB = make_disclosure("GB/T 5023", salt="salt-gb")
GOOD = BASE | {"_sd": [disclosure_digest(SITE)], "indicators": {"_sd": [disclosure_digest(CPK)]},
               "standards": [{"...": disclosure_digest(GB)}, "IEC 60227"], "_sd_alg": "sha-256"}  # fmt: skip


def bound(payload=GOOD, disclosures=(SITE, CPK, GB), header=None) -> str:
    s = sd(payload, disclosures, header)
    return s + kb(s)


def test_the_untampered_credential_is_accepted():
    s = sd(GOOD, [SITE, CPK, GB])
    v = sdjwt.verify(s + kb(s), lambda iss, h: ISSUER.verify_key.raw, aud="v", nonce="n", now=NOW)
    assert v.key_bound and v.claims["site"] == "Hangzhou plant 1" and v.claims["indicators"] == {"cpk": 1.62}
    assert v.claims["standards"] == ["GB/T 5023", "IEC 60227"] and "_sd" not in str(v.claims)
    assert outcome(s) == "ok"


# -- base64url, strictly ---------------------------------------------------------------------------


def _insert(token: str, segment: int, text: str, at: int = 10) -> str:
    parts = token.split(".")
    parts[segment] = parts[segment][:at] + text + parts[segment][at:]
    return ".".join(parts)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s, k: s + k + "!!!!",  # appended to the key binding
        lambda s, k: s + _insert(k, 2, "!!!!"),  # inside its signature
        lambda s, k: s + _insert(k, 1, " "),  # whitespace in its payload
        lambda s, k: _insert(s, 2, "!!!!") + k,  # inside the issuer's signature
        lambda s, k: _insert(s, 0, "\n", at=4) + k,  # a newline in the issuer's header
        lambda s, k: _insert(s, 1, "==", at=0) + k,  # padding in the issuer's payload
        lambda s, k: s.replace(SITE, SITE + "!!!!") + k,  # a disclosure
        lambda s, k: s + k[:-1] + chr(ord(k[-1]) + 1),  # the last character's unused bits set
    ],
    ids=[
        "kb-appended",
        "kb-signature",
        "kb-space",
        "issuer-signature",
        "issuer-header",
        "padding",
        "disclosure",
        "unused-bits",
    ],
)
def test_base64url_outside_the_alphabet_is_refused(tamper):
    s = sd(GOOD, [SITE, CPK, GB])
    k = kb(s)
    assert outcome(s + k, aud="v", nonce="n") == "ok"
    assert outcome(tamper(s, k), aud="v", nonce="n") == Code.ENCODING


# -- a malformed issuer signature ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "code"),
    [("A", Code.ENCODING), ("{sig}\n", Code.ENCODING), ("", Code.SIGNATURE), ("AAAA", Code.SIGNATURE),
     ("{sig}AAA", Code.ENCODING), ("{sig}A", Code.SIGNATURE), (" {sig}", Code.ENCODING)],
)  # fmt: skip
def test_a_malformed_issuer_signature_is_a_refusal(signature, code):
    s = sd(GOOD, [SITE])
    sig = s.split("~")[0].split(".")[2]
    assert outcome(s) == "ok"
    assert outcome(s.replace(sig, signature.format(sig=sig))) == code


def test_one_bad_presentation_never_stops_the_others():
    good = bound()
    head, _, sig = good.split("~")[0].split(".")
    bad = [good.replace(sig, "A"), good.replace(sig, sig + "\n"), "no tilde", good.replace(head, "W10")]  # W10: []
    batch = [good] * 70
    for i, b in zip((3, 40, 55, 69), bad, strict=True):  # some in this process, some in the pool's workers
        batch[i] = b
    results = sdjwt.verify_many(batch, {BASE["iss"]: ISSUER.verify_key.raw}, aud="v", nonces=["n"] * 70, now=NOW)
    assert [i for i, r in enumerate(results) if isinstance(r, Reason)] == [3, 40, 55, 69]
    assert [results[i].code for i in (3, 40, 55, 69)] == [Code.ENCODING, Code.ENCODING, Code.FORMAT, Code.HEADER]
    assert all(isinstance(r, sdjwt.Verified) for i, r in enumerate(results) if i not in (3, 40, 55, 69))


def test_a_verifier_that_knows_no_key_for_the_issuer_refuses():
    def unknown(iss, header):
        raise KeyError(iss)  # a resolver that looks the issuer up in a dict

    with pytest.raises(Reason) as e:
        sdjwt.verify(sd(GOOD, [SITE]), unknown, now=NOW)
    assert e.value.code == Code.SIGNATURE


# -- claims SD-JWT VC keeps always visible --------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "nbf", "iss", "cnf", "vct", "status", "iat", "_sd_alg", "vct#integrity"])
def test_an_always_visible_claim_hidden_in_a_disclosure_is_refused(name):
    values = {"exp": 1_700_000_000, "nbf": 1_900_000_000, "iss": "did:web:cqc.example", "cnf": {"jwk": {}},
              "vct": VCT, "status": {"status_list": {"idx": 1, "uri": "https://x"}}, "iat": 1_700_000_000,
              "_sd_alg": "sha-256", "vct#integrity": "sha256-x"}  # fmt: skip
    hidden = make_disclosure(values[name], name)
    plain = BASE | {"_sd": [disclosure_digest(SITE)]}
    assert outcome(sd(plain, [SITE])) == "ok"
    payload = {k: v for k, v in BASE.items() if k not in (name, "cnf")} | {"iss": BASE["iss"], "vct": VCT}
    assert outcome(sd(payload | {"_sd": [disclosure_digest(hidden)]}, [hidden])) == Code.DISCLOSURE_FORBIDDEN


def test_time_checks_read_the_processed_payload():
    # exp, hidden and long past: were it read from the issuer-signed payload only, this would pass
    expired = make_disclosure(1_700_000_000, "exp")
    payload = {k: v for k, v in BASE.items() if k != "exp"} | {"_sd": [disclosure_digest(expired)]}
    assert outcome(sd(payload, [])) == "ok"  # not disclosed: nothing says it expired, nothing is hidden in sight
    assert outcome(sd(payload, [expired])) == Code.DISCLOSURE_FORBIDDEN
    assert outcome(sd(BASE | {"exp": 1_700_000_000}, [])) == Code.EXPIRED
    assert outcome(sd(BASE | {"nbf": 1_900_000_000}, [])) == Code.NOT_YET_VALID


def test_a_part_of_an_always_visible_claim_hidden_is_refused():
    idx = make_disclosure(7, "idx")
    status = {"status_list": {"_sd": [disclosure_digest(idx)], "uri": "https://cqc.example/status-lists/1"}}
    assert outcome(sd(BASE | {"status": {"status_list": {"idx": 7, "uri": "https://x"}}})) == "ok"
    assert outcome(sd(BASE | {"status": status}, [idx])) == Code.DISCLOSURE_FORBIDDEN
    assert outcome(sd(BASE | {"status": status}, [])) == Code.DISCLOSURE_FORBIDDEN


def test_issuing_an_always_visible_claim_disclosable_is_refused():
    claims = BASE | {"site": "x", "status": {"status_list": {"idx": 1, "uri": "https://x"}}}
    assert sdjwt.issue(claims, ISSUER, ["site"])
    for path in ("exp", "iss", "vct", "cnf", "iat", "status", "status.status_list.idx", "cnf.jwk"):
        with pytest.raises(InvalidInput, match="must stay visible"):
            sdjwt.issue(claims, ISSUER, [path])


# -- digests, disclosures --------------------------------------------------------------------------

DECOY = "dGhpcyBpcyBhIGRlY295IGRpZ2VzdCBvZiAzMiBieXQ"
NESTED = make_disclosure({"_sd": [DECOY]}, "indicators")
DEEP = orjson.loads("[" * 200 + "]" * 200)  # within orjson's limits, deeper than any credential


@pytest.mark.parametrize(
    ("payload", "disclosures"),
    [
        (BASE | {"_sd": [DECOY, DECOY]}, []),  # a decoy twice, nothing disclosed
        (BASE | {"_sd": [DECOY], "x": {"_sd": [DECOY]}}, []),  # across levels
        (BASE | {"_sd": [DECOY], "x": [{"...": DECOY}]}, []),  # in _sd and as an array element
        (BASE | {"_sd": [disclosure_digest(SITE)], "x": {"_sd": [disclosure_digest(SITE)]}}, [SITE]),  # disclosed
        (BASE | {"_sd": [DECOY, disclosure_digest(NESTED)]}, [NESTED]),  # again inside a disclosure
    ],
    ids=["same-level", "nested", "array", "disclosed", "inside-a-disclosure"],
)
def test_a_digest_twice_anywhere_is_refused(payload, disclosures):
    assert outcome(sd(BASE | {"_sd": [DECOY, disclosure_digest(NESTED)]}, [])) == "ok"
    assert outcome(sd(payload, disclosures)) == Code.DIGEST_DUPLICATE


def test_a_disclosed_name_already_present_or_reserved_is_refused():
    twice = make_disclosure("elsewhere", "site", salt="other")
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(SITE)]}, [SITE])) == "ok"
    assert outcome(sd(BASE | {"site": "plain", "_sd": [disclosure_digest(SITE)]}, [SITE])) == Code.DISCLOSURE_NAME
    both = BASE | {"_sd": [disclosure_digest(SITE), disclosure_digest(twice)]}
    assert outcome(sd(both, [SITE])) == "ok"
    assert outcome(sd(both, [SITE, twice])) == Code.DISCLOSURE_NAME
    for name in ("_sd", "..."):
        d = make_disclosure(["x"], name)
        assert outcome(sd(BASE | {"x": {"_sd": [disclosure_digest(d)]}}, [d])) == Code.DISCLOSURE_NAME


def test_a_disclosure_no_digest_refers_to_is_refused():
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(SITE)]}, [SITE])) == "ok"
    assert outcome(sd(BASE | {"_sd": [DECOY]}, [SITE])) == Code.DISCLOSURE_UNREFERENCED
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(SITE)]}, [SITE, SITE])) == Code.DISCLOSURE_DUPLICATE


# -- vct -------------------------------------------------------------------------------------------


def test_vct_is_required_and_can_be_required_to_be_ours():
    assert outcome(sd(BASE), vct=VCT) == "ok"
    assert outcome(sd({k: v for k, v in BASE.items() if k != "vct"})) == Code.VCT
    assert outcome(sd(BASE | {"vct": 7})) == Code.VCT
    assert outcome(sd(BASE | {"vct": "https://other.example/diploma"})) == "ok"  # any type, when none is asked
    assert outcome(sd(BASE | {"vct": "https://other.example/diploma"}), vct=VCT) == Code.VCT
    with pytest.raises(InvalidInput, match="vct"):
        sdjwt.issue({k: v for k, v in BASE.items() if k != "vct"}, ISSUER)


# -- crit --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crit", [["urn:example:ext"], ["exp"], [], "urn:example:ext", [7]])
def test_a_critical_header_parameter_is_refused(crit):
    assert outcome(sd(GOOD, [SITE], header={"kid": "k"})) == "ok"
    assert outcome(sd(GOOD, [SITE], header={"crit": crit, "urn:example:ext": 1, "exp": 1})) == Code.CRIT
    s = sd(GOOD, [SITE])
    assert outcome(s + kb(s, header={"crit": crit}), aud="v", nonce="n") == Code.CRIT


def test_jose_refuses_critical_extensions_for_every_token():
    from qdsn.crypto.jose import sign_jws, verify_jws

    token = jws({"alg": "EdDSA", "typ": "x", "crit": ["b64"], "b64": True}, {}, ISSUER)
    assert verify_jws(sign_jws({}, ISSUER, typ="x"), ISSUER.verify_key.raw, typ="x")[1] == {}
    with pytest.raises(InvalidInput, match="critical"):
        verify_jws(token, ISSUER.verify_key.raw, typ="x")


# -- key binding ---------------------------------------------------------------------------------------


def test_a_verifier_asks_for_key_binding_with_both_aud_and_nonce():
    p = bound()
    assert outcome(p, aud="v", nonce="n") == "ok"
    for kwargs in ({"aud": "v"}, {"nonce": "n"}, {"aud": "v", "nonce": ""}, {"aud": 7, "nonce": "n"}):
        with pytest.raises(InvalidInput, match=r"aud|nonce") as e:  # the verifier's mistake: never half-checked
            sdjwt.verify(p, lambda iss, h: ISSUER.verify_key.raw, now=NOW, **kwargs)
        assert isinstance(e.value, Reason) and e.value.code == Code.KB_REQUEST
    keys = {BASE["iss"]: ISSUER.verify_key.raw}
    with pytest.raises(InvalidInput, match="nonce"):
        sdjwt.verify_many([p], keys, aud="v", now=NOW)
    with pytest.raises(InvalidInput, match="aud"):
        sdjwt.verify_many([p], keys, nonces=["n"], now=NOW)
    assert isinstance(sdjwt.verify_many([p], keys, aud="v", nonces=["n"], now=NOW)[0], sdjwt.Verified)


@pytest.mark.parametrize(
    ("claims", "header", "code"),
    [
        ({"sd_hash": DECOY}, None, Code.KB_SD_HASH),
        ({"iat": 1_700_000_000}, None, Code.KB_STALE),
        ({"iat": True}, None, Code.KB_STALE),
        ({"iat": "1800000000"}, None, Code.KB_STALE),
        ({"nonce": "m"}, None, Code.KB_NONCE),
        ({"nonce": None}, None, Code.KB_NONCE),
        ({"aud": "w"}, None, Code.KB_AUD),
        ({"aud": ["v"]}, None, Code.KB_AUD),
        ({}, {"typ": "JWT"}, Code.KB_TYP),
        ({}, {"typ": None}, Code.KB_TYP),
    ],
)
def test_each_key_binding_fault_has_its_reason(claims, header, code):
    s = sd(GOOD, [SITE])
    assert outcome(s + kb(s), aud="v", nonce="n") == "ok"
    assert outcome(s + kb(s, claims, header), aud="v", nonce="n") == code


def test_a_key_binding_shown_is_checked_even_when_not_asked_for():
    s = sd(GOOD, [SITE])
    assert outcome(s + kb(s)) == "ok"
    assert outcome(s + kb(s, {"sd_hash": DECOY})) == Code.KB_SD_HASH
    assert outcome(s + kb(s, {"nonce": None})) == Code.KB_NONCE  # RFC 9901 §4.3: nonce and aud are required
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jws({"alg": "ES256", "typ": "kb+jwt"}, {"iat": int(NOW.timestamp()), "aud": "v", "nonce": "n",
                                                     "sd_hash": disclosure_digest(s)}, other)  # fmt: skip
    assert outcome(s + forged) == Code.KB_SIGNATURE
    assert outcome(sd({k: v for k, v in GOOD.items() if k != "cnf"}, [SITE]) + kb(s)) == Code.KB_NO_CNF


# -- malformed structure from the issuer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "disclosures", "code"),
    [
        (GOOD | {"standards": [{"...": 5}]}, [SITE, CPK], Code.DIGEST_MALFORMED),
        (GOOD | {"standards": [{"...": disclosure_digest(GB), "x": 1}]}, [SITE, CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"x": {"...": DECOY}}, [SITE, CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"_sd": disclosure_digest(SITE)}, [CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"_sd": {"d": disclosure_digest(SITE)}}, [CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"_sd": [disclosure_digest(SITE), 5]}, [SITE, CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"_sd": [disclosure_digest(SITE), [DECOY]]}, [SITE, CPK, GB], Code.DIGEST_MALFORMED),
        (GOOD | {"exp": "2030-01-01"}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"exp": True}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"nbf": [1]}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"iat": None}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"iat": 1e300}, [SITE, CPK, GB], Code.ISSUED_IN_FUTURE),
        (GOOD | {"cnf": "holder"}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"cnf": {"jwk": "holder"}}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"cnf": {"jwk": {"kty": "OKP"}}}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"status": "valid"}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"status": {"status_list": {"idx": "7", "uri": "https://x"}}}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"status": {"status_list": {"idx": -1, "uri": "https://x"}}}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"iss": 7}, [SITE, CPK, GB], Code.CLAIMS),
        (GOOD | {"_sd_alg": 256}, [SITE, CPK, GB], Code.SD_ALG),
        (GOOD | {"_sd_alg": "sha-512"}, [SITE, CPK, GB], Code.SD_ALG),
        (GOOD | {"deep": DEEP},
         [SITE, CPK, GB], Code.FORMAT),
        ([BASE], [], Code.CLAIMS),
    ],
)  # fmt: skip
def test_malformed_issuer_structure_is_a_refusal(payload, disclosures, code):
    assert outcome(bound(), aud="v", nonce="n") == "ok"
    s = sd(payload, disclosures)
    assert outcome(s + kb(s), aud="v", nonce="n") == code


@pytest.mark.parametrize(
    "disclosure",
    [
        b64url_encode(b'["s", "site", '),  # not JSON
        b64url_encode(b'{"salt": "s", "name": "site"}'),  # an object
        b64url_encode(b'["s"]'),  # one element
        b64url_encode(b'["s", "site", "x", "y"]'),  # four
        b64url_encode(b'[7, "site", "x"]'),  # a salt that is no string
        b64url_encode(b'["s", 7, "x"]'),  # a name that is no string
        b64url_encode(b'["s", null, "x"]'),
        b64url_encode(b'"s"'),
    ],
)
def test_a_malformed_disclosure_is_refused(disclosure):
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(SITE)]}, [SITE])) == "ok"
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(disclosure)]}, [disclosure])) == Code.DISCLOSURE_MALFORMED


def test_disclosures_in_the_wrong_place_are_refused():
    element = make_disclosure("x")
    assert outcome(sd(BASE | {"a": [{"...": disclosure_digest(element)}]}, [element])) == "ok"
    assert outcome(sd(BASE | {"_sd": [disclosure_digest(element)]}, [element])) == Code.DISCLOSURE_MALFORMED
    assert outcome(sd(BASE | {"a": [{"...": disclosure_digest(SITE)}]}, [SITE])) == Code.DISCLOSURE_MALFORMED


@pytest.mark.parametrize(
    ("header", "code"),
    [("W10", Code.HEADER), ("Ij8i", Code.HEADER), ("e30", Code.TYP), ("bnVsbA", Code.HEADER), ("eyJ", Code.ENCODING)],
    ids=["array", "string", "empty-object", "null", "not-json"],
)
def test_a_jws_header_that_is_not_an_object_is_refused(header, code):
    s = sd(GOOD, [SITE])
    assert outcome(s) == "ok"
    assert outcome(header + s[s.index(".") :]) == code
    k = kb(s)
    assert outcome(s + header + k[k.index(".") :], aud="v", nonce="n") == (Code.KB_TYP if code == Code.TYP else code)


@pytest.mark.parametrize("alg", ["none", "ES256", "HS256", None, ["EdDSA"]])
def test_an_issuer_jwt_of_another_algorithm_is_refused(alg):
    assert outcome(sd(GOOD, [SITE], header={"alg": "EdDSA"})) == "ok"
    assert outcome(sd(GOOD, [SITE], header={"alg": alg})) == Code.SIGNATURE
    s = sd(GOOD, [SITE])
    unsigned = s.split("~")[0].rsplit(".", 1)[0].replace(s.split(".")[0], b64url_encode(orjson.dumps(
        {"alg": alg, "typ": "dc+sd-jwt"}))) + "."  # fmt: skip
    assert outcome(unsigned + s[s.index("~") :]) == Code.SIGNATURE
