"""DID documents (W3C DID Core 1.0) for QDSN identities: a Multikey verification method, the
same key as a JsonWebKey, and for did:key the derived X25519 key agreement key."""

from __future__ import annotations

from typing import Any

from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import InvalidInput, NotFound
from qdsn.identity.didkey import (
    multikey_from_public_key,
    public_key_from_multikey,
    x25519_multikey,
)

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
JWK_CONTEXT = "https://w3id.org/security/jwk/v1"


def did_document(
    did: str, public_key: bytes, *, key_agreement: bool | None = None, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The DID document of `did` controlled by the Ed25519 `public_key`.

    The key appears as Multikey (`#z6Mk…`) and as JsonWebKey (`#jwk`); both are listed for
    authentication and assertion. did:key documents also carry the derived X25519 key. `history`
    (the consortium ledger's record of the DID's keys, oldest first) is listed as `keyHistory`.
    """
    mk = multikey_from_public_key(public_key)
    frag = mk if did.startswith("did:key:") else "key-1"
    vm_id = f"{did}#{frag}"
    jwk_id = f"{did}#jwk"
    methods: list[dict[str, Any]] = [
        {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": mk},
        {
            "id": jwk_id,
            "type": "JsonWebKey",
            "controller": did,
            "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_key)},
        },
    ]
    doc: dict[str, Any] = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT, JWK_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "authentication": [vm_id, jwk_id],
        "assertionMethod": [vm_id, jwk_id],
        "capabilityInvocation": [vm_id],
        "capabilityDelegation": [vm_id],
    }
    if key_agreement if key_agreement is not None else did.startswith("did:key:"):
        xmk = x25519_multikey(public_key)
        methods.append({"id": f"{did}#{xmk}", "type": "Multikey", "controller": did, "publicKeyMultibase": xmk})
        doc["keyAgreement"] = [f"{did}#{xmk}"]
    if history is not None:
        doc["keyHistory"] = history
    return doc


def ed25519_keys(doc: dict[str, Any], relationship: str = "assertionMethod") -> list[bytes]:
    """The Ed25519 public keys a DID document lists for `relationship`, in document order."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise InvalidInput("not a DID document: it has no string 'id'")
    by_id = {}
    for vm in doc.get("verificationMethod", []):
        by_id[vm.get("id")] = vm
        if isinstance(vm.get("id"), str) and vm["id"].startswith("#"):
            by_id[doc["id"] + vm["id"]] = vm
    keys: list[bytes] = []
    for ref in doc.get(relationship, []):
        vm = ref if isinstance(ref, dict) else by_id.get(ref) or by_id.get(doc["id"] + str(ref))
        if not vm:
            continue
        if vm.get("type") in ("Multikey", "Ed25519VerificationKey2020") and str(
            vm.get("publicKeyMultibase", "")
        ).startswith("z6Mk"):
            key = public_key_from_multikey(vm["publicKeyMultibase"])
        elif vm.get("type") in ("JsonWebKey", "JsonWebKey2020"):
            jwk = vm.get("publicKeyJwk", {})
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            key = b64url_decode(jwk.get("x", ""))
        else:
            continue
        if key not in keys:
            keys.append(key)
    if not keys:
        raise NotFound(f"{doc['id']} lists no Ed25519 key for {relationship}")
    return keys
