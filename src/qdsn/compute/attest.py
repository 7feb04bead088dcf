"""Attestations: what ran, on what data, to what result, signed by the node that ran it.

The evidence is shaped after the IETF Entity Attestation Token (RFC 9711) as a JWS (EdDSA, typ
`eat+jwt`): the certifier's `eat_nonce`, `measurements` of what ran (the model's code hash, the
runner's version, the isolation mode and the hash of its configuration), the input commitment (the
anchored batches and ranges read), the parameters' and the output's hashes, start and end, and a
`binding` = SHA-512(nonce ‖ code hash ‖ input commitment ‖ output hash) — the 64 bytes a hardware
TEE would put in its report data, so a real enclave can later vouch for the same statement.

What it proves: this node's key signed that this code, on these anchored records, gave this output.
What it does not: that the node ran it honestly — a dishonest operator can run other code and sign
anyway. Anchoring limits what it can fake: the inputs are fixed on the ledger before any job is
asked for, so it cannot choose data to suit a model, only lie about a result, and that lie is signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from qdsn.crypto import SigningKey, canonical_json
from qdsn.crypto.encoding import b64url_encode
from qdsn.crypto.jose import header, sign_jws, verify_jws
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError
from qdsn.identity import multikey_from_public_key
from qdsn.ledger import Ledger, tx

TYP = "eat+jwt"
PROFILE = "urn:qdsn:eat:compute:v1"


def digest(value: Any) -> str:
    """SHA-256 of a JSON value's RFC 8785 form, lowercase hex."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def binding(nonce: str, code_hash: str, input_commitment: str, output_hash: str) -> str:
    """SHA-512(nonce ‖ code hash ‖ input commitment ‖ output hash), base64url: the nonce as UTF-8,
    the three hashes as their 32 raw bytes."""
    parts = nonce.encode() + b"".join(bytes.fromhex(h) for h in (code_hash, input_commitment, output_hash))
    return b64url_encode(hashlib.sha512(parts).digest())


def attest(key: SigningKey, did: str, claims: dict[str, Any]) -> str:
    """Sign an attestation's claims (as `claims_for` builds them) with the node's key."""
    kid = f"{did}#{multikey_from_public_key(key.verify_key.raw)}"
    return sign_jws(claims, key, typ=TYP, kid=kid)


def claims_for(
    did: str,
    nonce: str,
    measurements: dict[str, Any],
    inputs: Sequence[dict[str, Any]],
    parameters: dict[str, Any],
    output: dict[str, Any],
    start: str,
    end: str,
    job: str,
    iat: int,
    dropped: Sequence[str] = (),
) -> dict[str, Any]:
    """The attestation's claims; `inputs` are [{dataset, first, count, batches: [{anchor, first, count, root}]}];
    `dropped` names the output fields the model printed but may not export, which the node withheld."""
    commitment, out = digest(list(inputs)), digest(output)
    return {
        "iss": did, "iat": iat, "eat_profile": PROFILE, "eat_nonce": nonce, "job": job,
        "measurements": measurements, "inputs": list(inputs), "input_commitment": commitment,
        "params_hash": digest(parameters), "output_hash": out, "start": start, "end": end,
        "binding": binding(nonce, measurements["code_hash"], commitment, out), "dropped": list(dropped),
    }  # fmt: skip


def verify(
    token: str,
    ledger: Ledger,
    *,
    output: dict[str, Any] | None = None,
    nonce: str | None = None,
    at: int | None = None,
) -> dict[str, Any]:
    """The claims of an attestation once every check holds; otherwise an error that names the check:
    the signature by the issuing node's key on the ledger (its key at entry `at`, the attestation's
    `compute.attest`, when it is recorded: a later rotation leaves it verifiable), the model published with
    that code hash, every input batch anchored by its dataset's owner, the commitments and the binding, and
    — given — the output and the nonce."""
    kid = str(header(token).get("kid", ""))
    did = kid.split("#", 1)[0]
    ident = ledger.state.identities.get(did)
    if ident is None:
        raise NotFound(f"signature: the attesting node {did or '(no kid)'} is not registered on the ledger")
    _, c = verify_jws(token, ident.key if at is None else ledger.key_at(did, at), typ=TYP)
    if c.get("iss") != did or c.get("eat_profile") != PROFILE:
        raise IntegrityError("profile: the attestation's issuer or profile is not QDSN's compute attestation")
    try:
        return _checked(c, did, ledger, output, nonce)
    except QDSNError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # signed, but not in the profile's shape
        raise IntegrityError(f"claims: the attestation's claims are not in the shape of {PROFILE} ({e!r})") from None


def _checked(
    c: dict[str, Any], did: str, ledger: Ledger, output: dict[str, Any] | None, nonce: str | None
) -> dict[str, Any]:
    m = c["measurements"]
    model = ledger.state.models.get(m.get("model", ""))
    if model is None or model.hash != m.get("code_hash"):
        raise IntegrityError(f"model: code hash {str(m.get('code_hash'))[:16]}… is not published as {m.get('model')}")
    for i in c["inputs"]:
        _anchored(ledger, did, i)
    if digest(c["inputs"]) != c["input_commitment"]:
        raise IntegrityError("inputs: the input commitment does not match the inputs listed")
    if binding(c["eat_nonce"], m["code_hash"], c["input_commitment"], c["output_hash"]) != c["binding"]:
        raise IntegrityError("binding: SHA-512(nonce ‖ code hash ‖ input commitment ‖ output hash) does not match")
    if output is not None and digest(output) != c["output_hash"]:
        raise IntegrityError("output: the result shown is not the one attested")
    if nonce is not None and c["eat_nonce"] != nonce:
        raise IntegrityError("nonce: the attestation answers another request")
    return c


def _anchored(ledger: Ledger, owner: str, i: dict[str, Any]) -> None:
    ds = ledger.state.datasets.get(i["dataset"])
    if ds is None or ds.owner != owner:
        raise IntegrityError(f"inputs: dataset {i['dataset']} is not declared by the attesting node")
    at = i["first"]
    for b in i["batches"]:
        try:
            e = tx.from_leaf(ledger.store.entry(txid=b["anchor"]).leaf)
        except (NotFound, InvalidInput):
            raise IntegrityError(f"inputs: no anchor {str(b['anchor'])[:16]}… on the ledger") from None
        p = e.payload
        if e.type != "dataset.anchor" or e.submitter != owner or p["dataset"] != i["dataset"] or (
            p["first"], p["count"], p["root"]) != (b["first"], b["count"], b["root"]):  # fmt: skip
            raise IntegrityError(f"inputs: batch {b['first']} of {i['dataset']} is not the one its owner anchored")
        if not b["first"] <= at < b["first"] + b["count"]:
            raise IntegrityError(f"inputs: the batches listed for {i['dataset']} do not cover record {at}")
        at = b["first"] + b["count"]
    if at < i["first"] + i["count"]:
        raise IntegrityError(f"inputs: the batches listed for {i['dataset']} do not cover its range")
