"""Whatever a presenter or an issuer sends, `verify` answers with claims or with a `Reason` — never
another exception. Valid presentations are mutated the two ways an adversary can: bytes changed in
any segment, and JSON values replaced by others of any type at any depth (header, payload,
disclosures, key binding), then signed again with the issuer's or the holder's real key so that the
mutation reaches the checks behind the signature."""

from datetime import UTC, datetime

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdsn.credentials import sdjwt
from qdsn.credentials.sdjwt import Reason, disclosure_digest
from qdsn.crypto import SigningKey
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.crypto.jose import public_jwk

NOW = datetime.fromtimestamp(1_800_000_000, UTC)
ISSUER, HOLDER = SigningKey.generate(), ec.generate_private_key(ec.SECP256R1())
CLAIMS = {
    "iss": "did:web:cqc.example", "vct": "urn:qdsn:vct:quality-certificate:1", "iat": 1_790_000_000,
    "exp": 1_890_000_000, "status": {"status_list": {"idx": 7, "uri": "https://cqc.example/status-lists/1"}},
    "enterprise": {"name": "Zhejiang Cable Works", "credit_code": "91330100MA2B3C4D5E"},
    "site": "Hangzhou plant 1", "indicators": {"cpk": 1.62, "ppm": 12}, "standards": ["GB/T 5023", "IEC 60227"],
}  # fmt: skip
SD = sdjwt.issue(CLAIMS, ISSUER, ["site", "indicators", "indicators.cpk", "standards[]", "enterprise.credit_code"],
                 holder_jwk=public_jwk(HOLDER))  # fmt: skip
SHOWN = sdjwt.present(SD, ["indicators.cpk", "standards[]", "site"], HOLDER, aud="v", nonce="n", now=NOW)
DIGESTS = sorted({disclosure_digest(d) for d in sdjwt.parse(SD).disclosures})
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def verify(presentation):
    """'ok' or the refusal's code; any other exception fails the test."""
    try:
        sdjwt.verify(presentation, lambda iss, h: ISSUER.verify_key.raw, aud="v", nonce="n", now=NOW)
    except Reason as e:
        return e.code
    return "ok"


def test_the_presentation_fuzzed_here_is_accepted():
    assert verify(SHOWN) == "ok"


def sign(header, payload, key) -> str:
    signing_input = f"{b64url_encode(orjson.dumps(header))}.{b64url_encode(orjson.dumps(payload))}"
    if isinstance(key, SigningKey):
        signature = key.sign(signing_input.encode())
    else:
        r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return f"{signing_input}.{b64url_encode(signature)}"


# -- bytes -------------------------------------------------------------------------------------------

CHARS = st.sampled_from('AZaz09-_~.=!+/ \n\t{}[]",:\\é\x00') | st.characters()


@FUZZ
@given(st.data())
def test_changed_bytes_are_refused_or_harmless(data):
    parts = SHOWN.split("~")
    i = data.draw(st.integers(0, len(parts) - 1), label="part")
    pieces = parts[i].split(".")
    j = data.draw(st.integers(0, len(pieces) - 1), label="segment")
    text = pieces[j]
    at = data.draw(st.integers(0, len(text)), label="at")
    how = data.draw(st.sampled_from(["insert", "replace", "delete", "truncate"]), label="how")
    new = data.draw(st.text(CHARS, min_size=1, max_size=4), label="text")
    text = {"insert": text[:at] + new + text[at:], "replace": text[:at] + new + text[at + len(new) :],
            "delete": text[:at] + text[at + len(new) :], "truncate": text[:at]}[how]  # fmt: skip
    pieces[j] = text
    parts[i] = ".".join(pieces)
    assert verify("~".join(parts)) in ["ok", *sdjwt.Code]


# -- JSON, signed again --------------------------------------------------------------------------------

NAMES = "_sd ... _sd_alg exp nbf iat iss vct cnf jwk status status_list idx uri site crit typ alg aud nonce sd_hash"
KEYS = st.sampled_from(NAMES.split())
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False,
           allow_infinity=False) | st.text(max_size=8) | st.sampled_from(DIGESTS))  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=4)
                   | inner.map(lambda v: {"...": v}) | st.lists(inner, max_size=3).map(lambda v: {"_sd": v})),
    max_leaves=8,
)  # fmt: skip


def mutate(data, value, label):
    """`value` with one place in it — itself, or anything at any depth — replaced by another JSON value."""
    path = []
    here = value
    while isinstance(here, dict | list) and here and data.draw(st.booleans(), label=f"{label}: deeper"):
        key = data.draw(st.sampled_from(sorted(here) if isinstance(here, dict) else range(len(here))), label=label)
        path.append(key)
        here = here[key]
    new = data.draw(VALUES, label=f"{label}: new value")
    if not path:
        return new
    copy = orjson.loads(orjson.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, dict) and data.draw(st.booleans(), label=f"{label}: add a key instead"):
        target[data.draw(KEYS, label=f"{label}: key")] = new
    else:
        target[path[-1]] = new
    return copy


def decoded(jws):
    head, body, _ = jws.split(".")
    return orjson.loads(b64url_decode(head)), orjson.loads(b64url_decode(body))


@FUZZ
@given(st.data())
def test_any_json_the_issuer_signs_is_refused_or_accepted_never_a_crash(data):
    p = sdjwt.parse(SHOWN)
    header, payload = decoded(p.jwt)
    disclosures = list(p.disclosures)
    payload_text = orjson.dumps(payload).decode()
    what = data.draw(st.sampled_from(["payload", "header", "disclosure", "both"]), label="what")
    if what in ("disclosure", "both"):  # a disclosure changed, and the issuer signs its new digest
        i = data.draw(st.integers(0, len(disclosures) - 1), label="disclosure")
        old = disclosures[i]
        disclosures[i] = b64url_encode(orjson.dumps(mutate(data, orjson.loads(b64url_decode(old)), "disclosure")))
        payload_text = payload_text.replace(disclosure_digest(old), disclosure_digest(disclosures[i]))
    payload = orjson.loads(payload_text)
    if what in ("payload", "both"):
        payload = mutate(data, payload, "payload")
    if what == "header":
        header = mutate(data, header, "header")
    body = "~".join([sign(header, payload, ISSUER), *disclosures, ""])
    _, kb_claims = decoded(p.kb)
    kb = sign({"alg": "ES256", "typ": "kb+jwt"}, kb_claims | {"sd_hash": disclosure_digest(body)}, HOLDER)
    assert verify(body + kb) in ["ok", *sdjwt.Code]


@FUZZ
@given(st.data())
def test_any_key_binding_the_holder_signs_is_refused_or_accepted_never_a_crash(data):
    p = sdjwt.parse(SHOWN)
    header, claims = decoded(p.kb)
    if data.draw(st.booleans(), label="header or claims"):
        header = mutate(data, header, "header")
    else:
        claims = mutate(data, claims, "claims")
    assert verify(p.sd_jwt + sign(header, claims, HOLDER)) in ["ok", *sdjwt.Code]


def test_a_batch_of_mutants_gives_one_result_each():
    mutants = [SHOWN[:i] + "!" + SHOWN[i:] for i in range(0, len(SHOWN), max(1, len(SHOWN) // 40))]
    results = sdjwt.verify_many([SHOWN, *mutants], {CLAIMS["iss"]: ISSUER.verify_key.raw}, aud="v",
                                nonces=["n"] * (len(mutants) + 1), now=NOW)  # fmt: skip
    assert len(results) == len(mutants) + 1 and isinstance(results[0], sdjwt.Verified)
    assert all(isinstance(r, Reason) for r in results[1:])
