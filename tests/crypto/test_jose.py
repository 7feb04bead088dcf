"""Compact JWS with Ed25519: RFC 8037 Appendix A.4's example, and refusals."""

import pytest

from qdsn.crypto import SigningKey
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import header, sign_compact, sign_jws, verify_jws
from qdsn.errors import BadSignature, InvalidInput

# RFC 8037 A.1 (the key) and A.4 (the JWS of "Example of Ed25519 signing")
D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
A4 = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")  # fmt: skip


def test_rfc8037_a4():
    key = SigningKey.from_seed(b64url_decode(D))
    assert key.verify_key.raw == b64url_decode(X)
    assert sign_compact({"alg": "EdDSA"}, b"Example of Ed25519 signing", key) == A4
    with pytest.raises(InvalidInput, match="payload is not JSON"):  # the signature holds; it is no claims set
        verify_jws(A4, b64url_decode(X), typ=None)


def test_claims_round_trip_and_refusals():
    key, other = SigningKey.generate(), SigningKey.generate()
    token = sign_jws({"eat_nonce": "n-1"}, key, typ="eat+jwt", kid="did:key:z6Mk#z6Mk")
    assert header(token)["kid"] == "did:key:z6Mk#z6Mk"
    assert verify_jws(token, key.verify_key.raw, typ="eat+jwt")[1] == {"eat_nonce": "n-1"}
    with pytest.raises(BadSignature):
        verify_jws(token, other.verify_key.raw, typ="eat+jwt")
    with pytest.raises(InvalidInput, match="of type 'eat\\+jwt', not 'kb\\+jwt'"):
        verify_jws(token, key.verify_key.raw, typ="kb+jwt")
    h, p, s = token.split(".")
    with pytest.raises(BadSignature):
        verify_jws(f"{h}.{p[:-2]}AA.{s}", key.verify_key.raw, typ="eat+jwt")
    with pytest.raises(InvalidInput):
        header("not.a.jws")


def test_es256_and_algorithm_confusion():
    from cryptography.hazmat.primitives.asymmetric import ec

    from qdsn.crypto.jose import public_jwk

    p256 = ec.generate_private_key(ec.SECP256R1())
    token = sign_jws({"sub": "x"}, p256, typ="kb+jwt")
    assert header(token)["alg"] == "ES256"
    assert verify_jws(token, public_jwk(p256), typ="kb+jwt")[1] == {"sub": "x"}
    assert verify_jws(token, p256.public_key(), typ=None)[1] == {"sub": "x"}
    ed = SigningKey.generate()
    with pytest.raises(BadSignature, match="its key signs EdDSA"):  # an ES256 token never meets an Ed25519 key
        verify_jws(token, ed.verify_key.raw, typ=None)
    with pytest.raises(InvalidInput, match="P-256"):
        sign_jws({}, ec.generate_private_key(ec.SECP384R1()), typ="x")


def test_what_is_not_a_jws_or_a_key_is_invalid_input():
    from qdsn.crypto.jose import public_jwk

    key = SigningKey.generate()
    token = sign_jws({"sub": "x"}, key, typ="x")
    h, p, s = token.split(".")
    for bad in (f"W10.{p}.{s}", f"bnVsbA.{p}.{s}", f"{h}.{p}.{s}!!!!", f"{h}.{p}!.{s}", f"{h}.{p}.{s}\n", f"{h}.{p}",
                f"{h}.{p}.{s}.{s}", None):  # fmt: skip
        with pytest.raises(InvalidInput, match="not a compact JWS"):
            verify_jws(bad, key.verify_key.raw, typ=None)
    with pytest.raises(InvalidInput, match="not a JSON object"):
        header(f"W10.{p}.{s}")
    for jwk in ({"kty": "OKP"}, {"kty": "OKP", "crv": "Ed25519", "x": 7}, {"kty": "EC", "crv": "P-256", "x": "AA"},
                {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "OKP", "crv": "X25519", "x": "AA"}):  # fmt: skip
        with pytest.raises(InvalidInput, match="not an Ed25519 or P-256"):
            public_jwk(jwk)
