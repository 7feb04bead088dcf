"""The QDSN quality certificate: an SD-JWT VC of type `urn:qdsn:vct:quality-certificate:1`, issued by a
certification body from attested model runs, and checked by anyone down to the anchored data.

Which claims are selectively disclosable is part of the published schema (`certificate.schema.json`,
the `x-qdsn-disclosable` marks): indicators, the site, the credit code and volumes are; the issuer,
type, validity, status and evidence are always shown. The evidence names the `compute.attest`
entries the certificate rests on, the checkpoint they are under and their inclusion proofs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import orjson

from qdsn.compute import attest
from qdsn.credentials import sdjwt
from qdsn.credentials.status import status_at
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import PrivateKey
from qdsn.errors import InvalidInput, QDSNError
from qdsn.ledger import Ledger, merkle, tx
from qdsn.ledger.checkpoint import NoteVerifier, cosigners_verified, open_checkpoint

VCT = "urn:qdsn:vct:quality-certificate:1"
STATUS_NAMES = {0: "valid", 1: "revoked", 2: "suspended"}


@cache
def schema() -> dict[str, Any]:
    """The certificate's published JSON Schema."""
    return json.loads(resources.files("qdsn.credentials").joinpath("certificate.schema.json").read_text())


def disclosable(claims: dict[str, Any]) -> list[str]:
    """The paths of `claims` the schema marks selectively disclosable."""
    out = []

    def walk(sch: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        props = sch.get("properties", {})
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            s = props.get(k) or sch.get("additionalProperties") or {}
            if isinstance(s, dict):
                if s.get("x-qdsn-disclosable"):
                    out.append(sub)
                walk(s, v, sub)

    walk(schema(), claims, "")
    return out


def evidence(ledger: Ledger, attestations: Sequence[str], note: str, log_key: NoteVerifier) -> dict[str, Any]:
    """The evidence block: each `compute.attest` entry with its inclusion proof in the checkpoint `note`."""
    cp, _ = open_checkpoint(note, log_key)
    items = []
    for txid in attestations:
        e = ledger.store.entry(txid=txid)
        if e.type != "compute.attest" or e.seq >= cp.size:
            raise InvalidInput(f"{txid[:16]}… is not a compute.attest entry under the checkpoint of size {cp.size}")
        items.append({"txid": txid, "seq": e.seq, "proof": [h.hex() for h in ledger.inclusion_proof(e.seq, cp.size)]})
    return {"attestations": items,
            "checkpoint": {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(), "note": note}}  # fmt: skip


def issue(claims: dict[str, Any], key: PrivateKey, holder_jwk: dict[str, Any], *, kid: str) -> str:
    """A certificate checked against the schema, its disclosable claims hidden, bound to the holder."""
    claims = {"vct": VCT} | claims
    try:
        jsonschema.validate(claims, schema())
    except jsonschema.ValidationError as e:
        raise InvalidInput(f"not a QDSN quality certificate: at {e.json_path}: {e.message}") from None
    return sdjwt.issue(claims, key, disclosable(claims), holder_jwk, kid=kid)


@dataclass(frozen=True)
class Check:
    """One line of a verification report."""

    name: str
    ok: bool
    detail: str


def report(
    presentation: str,
    ledger: Ledger,
    *,
    log_key: NoteVerifier,
    aud: str | None = None,
    nonce: str | None = None,
    status: Callable[[str], tuple[int, str]] | None = None,
    cosigners: Sequence[NoteVerifier] = (),
    quorum: int = 0,
    now: datetime | None = None,
) -> list[Check]:
    """Everything a careful verifier checks, each line passed or failed with its reason: the issuer, the
    signature and disclosures, the key binding, the status, and the evidence chain — the attestation's
    inclusion under a checkpoint signed by the log (and `quorum` of `cosigners`), its signature, the
    published model and the anchored inputs. `log_key` is the log's checkpoint key; `status(uri)` gives a
    status list's (bits, lst)."""
    out: list[Check] = []

    def key_of(iss: str, header: dict[str, Any]) -> bytes:
        ident = ledger.state.identities.get(iss)
        if ident is None or ident.role != "certifier":
            raise sdjwt.BadSignature(f"{iss} is not a certification body on the ledger")
        return ident.key

    try:
        v = sdjwt.verify(presentation, key_of, aud=aud, nonce=nonce, now=now, vct=VCT)
    except QDSNError as e:
        return [Check("certificate", False, e.what)]
    c = v.claims
    issuer = ledger.state.identities[v.issuer]
    out.append(Check("issuer", True, f"{issuer.name} ({v.issuer}), a certification body on the ledger"))
    out.append(Check("signature", True, f"{v.header['alg']} over the {v.header['typ']} credential; not expired"))
    names = [_name(d) for d in sdjwt.parse(presentation).disclosures]
    always = ", ".join(k for k in sorted(c) if k not in ("cnf", "status", "evidence", *names))
    out.append(Check("disclosures", True, f"{v.disclosed} shown: {', '.join(names) or 'none'}; always shown: {always}"))
    out.append(Check("key binding", v.key_bound or (aud is None and nonce is None),
                     "the holder's key signed this presentation for this verifier" if v.key_bound
                     else "none (the verifier asked for none)"))  # fmt: skip
    out.append(_status(c, ledger, status))
    out += _evidence(c.get("evidence", {}), ledger, log_key, cosigners, quorum)
    return out


def _status(c: dict[str, Any], ledger: Ledger, fetch: Callable[[str], tuple[int, str]] | None) -> Check:
    ref = c.get("status", {}).get("status_list", {})
    on_ledger = next((x for x in ledger.state.credentials.values() if (x.status_list, x.index) ==
                      (ref.get("uri"), ref.get("idx"))), None)  # fmt: skip
    if fetch is None:
        if on_ledger is None:
            return Check("status", False, "no status list to ask and no credential.issue on the ledger")
        return Check("status", on_ledger.status == "valid", f"{on_ledger.status} (on the ledger)")
    try:
        bits, lst = fetch(ref["uri"])
        value = status_at(lst, bits, ref["idx"])
    except (QDSNError, KeyError) as e:
        return Check("status", False, f"the status list could not be read: {e}")
    return Check("status", value == 0, f"{STATUS_NAMES.get(value, value)} (status list {ref['uri']}#{ref['idx']})")


def _evidence(ev: dict[str, Any], ledger: Ledger, log_key: NoteVerifier, cosigners: Sequence[NoteVerifier],
              quorum: int) -> list[Check]:  # fmt: skip
    out = []
    cp_doc = ev.get("checkpoint", {})
    try:
        cp, _ = open_checkpoint(cp_doc["note"], log_key)
        if (cp.size, cp.root.hex()) != (cp_doc["size"], cp_doc["root"]):
            raise InvalidInput("the evidence's checkpoint fields do not match its note")
        if ledger.size >= cp.size and ledger.root_at(cp.size) != cp.root:
            raise InvalidInput("the checkpoint disagrees with this verifier's replica: a split view")
        names = cosigners_verified(cp_doc["note"], list(cosigners)) if cosigners else []
        if len(names) < quorum:
            raise InvalidInput(f"{len(names)} cosignatures, {quorum} required")
        cosigned = f", cosigned by {len(names)} of {len(cosigners)} members" if cosigners else ""
        out.append(Check("checkpoint", True, f"size {cp.size} signed by the log {cp.origin}{cosigned}"))
    except (QDSNError, KeyError) as e:
        return [*out, Check("checkpoint", False, str(e))]
    for a in ev.get("attestations", []):
        try:
            entry = ledger.store.entry(txid=a["txid"])
            merkle.verify_inclusion(merkle.leaf_hash(entry.leaf), a["seq"], cp.size,
                                    [bytes.fromhex(h) for h in a["proof"]], cp.root)  # fmt: skip
            p = tx.from_leaf(entry.leaf).payload
            claims = attest.verify(p["attestation"], ledger)
            batches = sum(len(i["batches"]) for i in claims["inputs"])
            what = (f"entry {a['seq']} included ✓; {claims['measurements']['model']} signed by {claims['iss'][:24]}…, "
                    f"code hash published ✓, {batches} input batches anchored ✓")  # fmt: skip
            out.append(Check("attestation", True, what))
        except (QDSNError, KeyError) as e:
            out.append(Check("attestation", False, f"{str(a.get('txid'))[:16]}…: {e}"))
    return out


def _name(disclosure: str) -> str:
    d = orjson.loads(b64url_decode(disclosure))  # one that verified
    return str(d[1]) if len(d) == 3 else "(an array element)"
