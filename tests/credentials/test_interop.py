"""Interoperability with the OpenWallet Foundation's reference implementation (PyPI `sd-jwt`): it
accepts the credentials and presentations QDSN issues, and QDSN accepts its own. Its key binding
supports ES256 holder keys only, so the holders here have P-256 keys."""

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from qdsn.credentials import sdjwt
from qdsn.crypto import SigningKey
from qdsn.crypto.jose import public_jwk

CLAIMS = {
    "iss": "did:web:cqc.example", "vct": "urn:qdsn:vct:quality-certificate:1", "iat": 1_790_000_000,
    "site": "Hangzhou plant 1", "indicators": {"cpk": 1.62, "ppm": 12}, "standards": ["GB/T 5023", "IEC 60227"],
}  # fmt: skip


def jwk_of(key) -> JWK:
    return JWK.from_json(orjson.dumps(public_jwk(key)).decode())


def test_the_reference_implementation_accepts_ours():
    issuer, holder = SigningKey.generate(), ec.generate_private_key(ec.SECP256R1())
    sd = sdjwt.issue(CLAIMS, issuer, ["site", "indicators.cpk", "standards[]"], holder_jwk=public_jwk(holder))
    shown = sdjwt.present(sd, ["indicators.cpk", "standards[]"], holder, aud="did:web:buyer.example", nonce="n-1")
    theirs = SDJWTVerifier(shown, lambda iss, header: jwk_of(issuer), expected_aud="did:web:buyer.example",
                           expected_nonce="n-1").get_verified_payload()  # fmt: skip
    ours = sdjwt.verify(shown, lambda iss, h: issuer.verify_key.raw, aud="did:web:buyer.example", nonce="n-1")
    assert theirs["indicators"] == ours.claims["indicators"] == {"cpk": 1.62, "ppm": 12}
    assert theirs["standards"] == ours.claims["standards"] and "site" not in theirs


def test_we_accept_the_reference_implementations():
    issuer_key, holder_key = JWK.generate(kty="EC", crv="P-256"), JWK.generate(kty="EC", crv="P-256")
    claims = {k: v for k, v in CLAIMS.items() if k != "site"} | {  # SDObj marks what is disclosable
        SDObj("site"): "Hangzhou plant 1", "indicators": {SDObj("cpk"): 1.62, "ppm": 12},
        "standards": [SDObj("GB/T 5023"), "IEC 60227"],
    }  # fmt: skip
    issued = SDJWTIssuer(claims, issuer_key, holder_key, sign_alg="ES256", add_decoy_claims=True,
                         extra_header_parameters={"typ": "dc+sd-jwt"}).sd_jwt_issuance  # fmt: skip
    holder = SDJWTHolder(issued)
    holder.create_presentation({"indicators": {"cpk": True}, "standards": [True, True]}, nonce="n-2",
                               aud="did:web:buyer.example", holder_key=holder_key, sign_alg="ES256")  # fmt: skip
    public = orjson.loads(issuer_key.export_public())
    v = sdjwt.verify(holder.sd_jwt_presentation, lambda iss, h: public, aud="did:web:buyer.example", nonce="n-2")
    assert v.key_bound and v.claims["indicators"] == {"cpk": 1.62, "ppm": 12} and "site" not in v.claims
    assert v.claims["standards"] == ["GB/T 5023", "IEC 60227"]
