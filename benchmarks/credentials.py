"""Credential benchmark: SD-JWT VC presentations verified per second — issuer signature, disclosures,
key binding (ES256 issuer and holder keys), status from a cached status list — on all cores and on
one, beside the OpenWallet Foundation's `sd-jwt` verifying the same presentations (with the same
status lookup) in the same run. As in use, each of 16 certificates is presented many times, each
time to a new nonce. Target ≥ 2,000/s and ≥ 5×.

    python benchmarks/credentials.py [--n 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from rich.console import Console
from rich.table import Table
from sd_jwt.verifier import SDJWTVerifier

from qdsn.credentials import sdjwt
from qdsn.credentials.status import MIN_SIZE, encode_status_list, status_at
from qdsn.crypto.jose import public_jwk

CLAIMS = {
    "iss": "did:web:cqc.example", "vct": "urn:qdsn:vct:quality-certificate:1", "iat": 1_790_000_000,
    "certificate": "CQC-2026-0001", "site": "Hangzhou plant 1", "scope": "BV 2.5 mm² cable",
    "indicators": {"cpk": 1.62, "ppm": 12}, "standards": ["GB/T 5023", "IEC 60227"],
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    issuer = ec.generate_private_key(ec.SECP256R1())
    holders = [ec.generate_private_key(ec.SECP256R1()) for _ in range(16)]
    uri = "https://cqc.example/status-lists/1"
    statuses = np.zeros(MIN_SIZE, dtype=np.uint8)
    statuses[np.random.default_rng(1).integers(0, MIN_SIZE, 3000)] = 2
    lst = encode_status_list(statuses, 2)
    certs = [sdjwt.issue(CLAIMS | {"status": {"status_list": {"idx": 1000 + i, "uri": uri}}}, issuer,
                         ["site", "scope", "indicators.cpk", "indicators.ppm", "standards[]"],
                         holder_jwk=public_jwk(h)) for i, h in enumerate(holders)]  # fmt: skip
    shown = [sdjwt.present(certs[i % 16], ["indicators.cpk", "standards[]"], holders[i % 16], aud="did:web:buyer",
                           nonce=f"n{i}") for i in range(n)]  # fmt: skip
    public = public_jwk(issuer)
    t = time.perf_counter()
    for i, p in enumerate(shown):
        v = sdjwt.verify(p, lambda iss, h: public, aud="did:web:buyer", nonce=f"n{i}")
        status_at(lst, 2, v.claims["status"]["status_list"]["idx"])
    one_core = n / (time.perf_counter() - t)
    nonces = [f"n{i}" for i in range(n)]
    sdjwt.verify_many(shown[:64], {CLAIMS["iss"]: public}, aud="did:web:buyer", nonces=nonces[:64])  # start the pool
    t = time.perf_counter()
    results = sdjwt.verify_many(shown, {CLAIMS["iss"]: public}, aud="did:web:buyer", nonces=nonces)
    for r in results:
        status_at(lst, 2, r.claims["status"]["status_list"]["idx"])  # type: ignore[union-attr]
    ours = n / (time.perf_counter() - t)
    assert all(isinstance(r, sdjwt.Verified) for r in results)
    reference_key = JWK.from_json(orjson.dumps(public).decode())
    t = time.perf_counter()
    for i, p in enumerate(shown):
        claims = SDJWTVerifier(p, lambda iss, h: reference_key, expected_aud="did:web:buyer",
                               expected_nonce=f"n{i}").get_verified_payload()  # fmt: skip
        status_at(lst, 2, claims["status"]["status_list"]["idx"])
    theirs = n / (time.perf_counter() - t)
    table = Table(title=f"SD-JWT VC presentations verified, {n:,} each")
    for col in ("verifier", "rate", "ratio"):
        table.add_column(col, justify="left" if col == "verifier" else "right")
    table.add_row("qdsn.credentials.sdjwt.verify_many (all cores)", f"{ours:,.0f} /s", f"{ours / theirs:.2f}")
    table.add_row("qdsn.credentials.sdjwt.verify (one core)", f"{one_core:,.0f} /s", f"{one_core / theirs:.2f}")
    table.add_row("sd-jwt (OpenWallet Foundation)", f"{theirs:,.0f} /s", "1.00")
    Console().print(table)


if __name__ == "__main__":
    main()
