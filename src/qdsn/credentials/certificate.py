"""The QDSN quality certificate: an SD-JWT VC of type `urn:qdsn:vct:quality-certificate:1`, issued by a
certification body from attested model runs, and checked by anyone down to the anchored data.

Which claims are selectively disclosable is part of the published schema (`certificate.schema.json`,
the `x-qdsn-disclosable` marks): indicators, the site, the credit code, volumes and each run's
attested output are; the issuer, type, validity, status and the rest of the evidence are always
shown. The evidence names the `compute.attest` entries the certificate rests on, the checkpoint they
are under and their inclusion proofs. A verifier checks the claims it is shown against the same
schema before it reads any of them: the issuer controls their shape.
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
from qdsn.credentials import schemes, sdjwt
from qdsn.credentials.status import status_at
from qdsn.crypto import sha256
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import PrivateKey
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError
from qdsn.ledger import Ledger, merkle, tx
from qdsn.ledger.checkpoint import Checkpoint, NoteVerifier, cosigners_verified, open_checkpoint, parse_note
from qdsn.ledger.state import standing_key

# The log's key and the members' cosigner keys, given as such or (with key history) as functions of the
# checkpoint size they sign: a rotation must not unmake the evidence checkpoints signed before it.
LogKey = NoteVerifier | Callable[[int], NoteVerifier]
Cosigners = Sequence[NoteVerifier] | Callable[[int], Sequence[NoteVerifier]]

VCT = "urn:qdsn:vct:quality-certificate:1"
STATUS_NAMES = {0: "valid", 1: "revoked", 2: "suspended"}


@cache
def schema() -> dict[str, Any]:
    """The certificate's published JSON Schema."""
    return json.loads(resources.files("qdsn.credentials").joinpath("certificate.schema.json").read_text())


@cache
def _presented() -> jsonschema.Draft202012Validator:
    """The schema as a verifier applies it to the claims shown: what the holder may hide is not required."""

    def loosen(sch: Any) -> Any:
        if isinstance(sch, list):
            return [loosen(x) for x in sch]
        if not isinstance(sch, dict):
            return sch
        out = {k: loosen(v) for k, v in sch.items()}
        props = sch.get("properties", {})
        if "required" in sch:
            out["required"] = [r for r in sch["required"] if not props.get(r, {}).get("x-qdsn-disclosable")]
        return out

    return jsonschema.Draft202012Validator(loosen(schema()))


def malformed(claims: dict[str, Any]) -> str | None:
    """Why the claims a verifier was shown are not a QDSN quality certificate's; None when they are."""
    err = jsonschema.exceptions.best_match(_presented().iter_errors(claims))
    return None if err is None else f"at {err.json_path}: {err.message[:300]}"


def disclosable(claims: dict[str, Any]) -> list[str]:
    """The paths of `claims` the schema marks selectively disclosable."""
    out = []

    def walk(sch: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, list) and isinstance(sch.get("items"), dict):
            for v in value:
                walk(sch["items"], v, f"{path}[]")
            return
        if not isinstance(value, dict):
            return
        props = sch.get("properties", {})
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            s = props.get(k) or sch.get("additionalProperties") or {}
            if isinstance(s, dict):
                if s.get("x-qdsn-disclosable") and sub not in out:
                    out.append(sub)
                walk(s, v, sub)

    walk(schema(), claims, "")
    return out


def indicators(output: dict[str, Any]) -> dict[str, Any]:
    """The indicators a run's attested output gives a certificate: its figures, and each characteristic's
    as "<name>_<figure>"."""
    out = {k: v for k, v in output.items() if k not in ("pass", "characteristics", "rules")}
    chars = output.get("characteristics")
    for c in chars if isinstance(chars, list) else []:
        if isinstance(c, dict):
            out |= {f"{c.get('name')} {k}".replace(" ", "_"): v for k, v in c.items() if k not in ("name", "pass")}
    return out


def evidence(ledger: Ledger, attestations: Sequence[str], note: str, log_key: LogKey,
             outputs: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The evidence block: each `compute.attest` entry with its inclusion proof in the checkpoint `note`,
    and the attested output of each run (`outputs`, in the same order), which a verifier judges."""
    size = Checkpoint.parse(parse_note(note)[0]).size
    cp, _ = open_checkpoint(note, log_key(size) if callable(log_key) else log_key)
    if not attestations:
        raise InvalidInput("a certificate rests on at least one attested run")
    if outputs is not None and len(outputs) != len(attestations):
        raise InvalidInput("give one attested output for each attestation")
    items = []
    for n, txid in enumerate(attestations):
        e = ledger.store.entry(txid=txid)
        if e.type != "compute.attest" or e.seq >= cp.size:
            raise InvalidInput(f"ledger entry {e.seq} is a {e.type}, not a compute.attest under the checkpoint of "
                               f"size {cp.size}")  # fmt: skip
        items.append({"txid": txid, "seq": e.seq, "proof": [h.hex() for h in ledger.inclusion_proof(e.seq, cp.size)]}
                     | ({"output": outputs[n]} if outputs is not None else {}))  # fmt: skip
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


def backs(item: dict[str, Any], claims: dict[str, Any], ledger: Ledger) -> dict[str, Any]:
    """The attestation's claims once the run an evidence `item` names backs the certificate `claims`: a
    `compute.attest` whose attestation verifies, by the certificate's enterprise, of the scheme's
    model. Otherwise an IntegrityError naming the check. Whether its output met the criteria is
    `judged`, once the holder shows it."""
    entry = ledger.store.entry(txid=item["txid"])
    if entry.type != "compute.attest":
        raise IntegrityError(f"ledger entry {entry.seq} is a {entry.type}, not a compute.attest")
    env = tx.from_leaf(entry.leaf)
    a = attest.verify(env.payload["attestation"], ledger, at=entry.seq)
    subject = (claims.get("enterprise") or {}).get("did")
    if a["iss"] != subject or env.submitter != subject:
        raise IntegrityError(f"subject: the run was attested by {a['iss']}, not by the certificate's enterprise "
                             f"{subject}")  # fmt: skip
    scheme, model = claims.get("scheme"), str(a["measurements"].get("model", "")).split("@")[0]
    if schemes.model_of(str(scheme)) is None:
        raise IntegrityError(f"scheme: {scheme!r} is not a scheme that model runs are judged by")
    if model != schemes.model_of(str(scheme)):
        raise IntegrityError(f"scheme: the run is of model {model!r}, not the model of scheme {scheme!r}")
    return a


def judged(output: Any, a: dict[str, Any], claims: dict[str, Any]) -> str:
    """What a run's shown `output` proves, once it is the output attested in `a`, meets the scheme's
    criteria and gives every indicator the certificate shows (as `certify.issue` derives them).
    Otherwise an IntegrityError naming the difference."""
    if not isinstance(output, dict):
        raise IntegrityError("output: the run's output shown is not a JSON object")
    if attest.digest(output) != a["output_hash"]:
        raise IntegrityError("output: the run's output shown is not the one attested")
    scheme = claims.get("scheme")
    short = schemes.shortfalls(str(scheme), output)
    if short:
        raise IntegrityError(f"criteria: the attested run does not meet scheme {scheme}: {'; '.join(short)}")
    derived, shown = indicators(output), claims.get("indicators")
    for name, value in shown.items() if isinstance(shown, dict) else ():
        if name not in derived:
            raise IntegrityError(f"indicators: the certificate shows {name} = {str(value)[:40]}, which the attested "
                                 f"run did not find")  # fmt: skip
        if not _same(derived[name], value):
            raise IntegrityError(f"indicators: the certificate shows {name} = {str(value)[:40]}, the attested run "
                                 f"found {str(derived[name])[:40]}")  # fmt: skip
    told = f", and the {len(shown)} indicators shown are the run's" if isinstance(shown, dict) and shown else ""
    return f"the run's output shown is the one attested and meets scheme {scheme}{told}"


def _same(a: Any, b: Any) -> bool:
    """JSON equality that tells true from 1 (Python's == does not)."""
    try:
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return False


def recorded(claims: dict[str, Any], issuer_jwt: str, ledger: Ledger) -> str:
    """What the certificate's `credential.issue` on the ledger says, once it matches the certificate:
    its issuer, subject, hash of the issuer-signed JWT, status entry and attestations. Otherwise an
    IntegrityError naming the difference."""
    number = claims.get("certificate_number")
    rec = ledger.state.credentials.get(str(number))
    if rec is None:
        raise NotFound(f"no credential.issue for certificate {number} on the ledger")
    issued = tx.from_leaf(ledger.store.entry(rec.issued).leaf).payload
    ref = (claims.get("status") or {}).get("status_list") or {}
    ev = [a.get("txid") for a in (claims.get("evidence") or {}).get("attestations", []) if isinstance(a, dict)]
    for what, ours, theirs in (
        ("issuer", claims.get("iss"), rec.issuer),
        ("subject", (claims.get("enterprise") or {}).get("did"), rec.subject),
        ("hash", sha256(issuer_jwt.encode()).hex(), rec.hash),
        ("status entry", (ref.get("uri"), ref.get("idx")), (rec.status_list, rec.index)),
        ("attestations", ev, issued.get("attestations", [])),
    ):
        if ours != theirs:
            raise IntegrityError(f"the certificate's {what} is not the one its credential.issue (entry {rec.issued}) "
                                 f"recorded")  # fmt: skip
    return f"credential.issue at entry {rec.issued} records this certificate's hash, subject and status entry"


def issuer_key(ledger: Ledger, iss: str, presentation: str) -> bytes:
    """The key a certificate of `iss` must be signed with: the key `iss` held when the certificate's
    `credential.issue` entered the log (so a later rotation leaves it valid), or — not recorded — its
    current key. A certificate signed with a retired key after the rotation is thereby refused."""
    try:
        number = orjson.loads(b64url_decode(sdjwt.parse(presentation).jwt.split(".")[1])).get("certificate_number")
    except (QDSNError, ValueError, TypeError, AttributeError, IndexError):
        number = None  # unreadable: sdjwt.verify refuses it with its reason
    rec = ledger.state.credentials.get(number) if isinstance(number, str) else None
    if rec is not None and rec.issuer == iss:
        return ledger.key_at(iss, rec.issued)
    return ledger.state.identities[iss].key


@dataclass(frozen=True)
class Check:
    """One line of a verification report: passed or failed, or — `checked` false — a check this
    verifier could not make (the holder did not show what it needs), which fails nothing."""

    name: str
    ok: bool
    detail: str
    checked: bool = True


def report(
    presentation: str,
    ledger: Ledger,
    *,
    log_key: LogKey,
    aud: str | None = None,
    nonce: str | None = None,
    status: Callable[[str], tuple[int, str]] | None = None,
    cosigners: Cosigners = (),
    quorum: int = 0,
    now: datetime | None = None,
) -> list[Check]:
    """Everything a careful verifier checks, each line passed or failed with its reason: the issuer, the
    signature and disclosures, the key binding, the status, and the evidence chain — the attestation's
    inclusion under a checkpoint signed by the log (and `quorum` of `cosigners`), its signature, the
    published model and the anchored inputs. `log_key` is the log's checkpoint key; `status(uri)` gives a
    status list's (bits, lst). Nothing but a failed line comes of a malformed certificate."""

    def key_of(iss: str, header: dict[str, Any]) -> bytes:
        ident = ledger.state.identities.get(iss)
        if ident is None or ident.role != "certifier":
            raise sdjwt.BadSignature(f"{iss} is not a certification body on the ledger")
        return issuer_key(ledger, iss, presentation)

    try:
        v = sdjwt.verify(presentation, key_of, aud=aud, nonce=nonce, now=now, vct=VCT)
    except QDSNError as e:
        return [Check("certificate", False, e.what)]
    except (LookupError, TypeError, ValueError, AttributeError) as e:  # sdjwt refuses with a Reason; never a traceback
        return [Check("certificate", False, f"the presentation could not be read: {type(e).__name__}: {str(e)[:200]}")]
    c = v.claims
    why = malformed(c)
    if why is not None:
        return [Check("claims", False, f"not a QDSN quality certificate's claims {why}")]
    try:
        return _report(v, c, presentation, ledger, log_key=log_key, aud=aud, nonce=nonce, status=status,
                       cosigners=cosigners, quorum=quorum)  # fmt: skip
    except (QDSNError, LookupError, TypeError, ValueError, AttributeError) as e:  # never a traceback for a verifier
        why = e.what if isinstance(e, QDSNError) else f"{type(e).__name__}: {str(e)[:200]}"
        return [Check("certificate", False, f"the certificate could not be checked: {why}")]


def _report(v: sdjwt.Verified, c: dict[str, Any], presentation: str, ledger: Ledger, *, log_key: LogKey,
            aud: str | None, nonce: str | None, status: Callable[[str], tuple[int, str]] | None,
            cosigners: Cosigners, quorum: int) -> list[Check]:  # fmt: skip
    out: list[Check] = []
    issuer = ledger.state.identities[v.issuer]
    out.append(Check("issuer", True, f"{issuer.name} ({v.issuer}), a certification body on the ledger"))
    out.append(Check("signature", True, f"{v.header['alg']} over the {v.header['typ']} credential; not expired"))
    names = [_name(d) for d in sdjwt.parse(presentation).disclosures]
    always = ", ".join(k for k in sorted(c) if k not in ("cnf", "status", "evidence", *names))
    out.append(Check("disclosures", True, f"{v.disclosed} shown: {', '.join(names) or 'none'}; always shown: {always}"))
    out.append(_binding(v, presentation, aud, nonce))
    out.append(_status(c, ledger, status))
    try:
        out.append(Check("record", True, recorded(c, sdjwt.parse(presentation).jwt, ledger)))
    except QDSNError as e:
        out.append(Check("record", False, e.what))
    out.append(authority(c, ledger))
    out += _evidence(c, ledger, log_key, cosigners, quorum)
    return out


def authority(claims: dict[str, Any], ledger: Ledger) -> Check:
    """Whether the regulator lets the certificate stand, read from the ledger, never from the certificate:
    one issued (recorded, or not at all) while its issuer's membership or authority to issue is suspended is
    refused, and so is one withdrawn by name; one recorded before a suspension stands."""
    iss, number = str(claims.get("iss")), str(claims.get("certificate_number"))
    rec = ledger.state.credentials.get(number)
    at = rec.issued if rec is not None and rec.issuer == iss else None
    for scope, what in (("member", "membership"), ("issuer", "authority to issue")):
        held = ledger.state.suspension(scope, iss)
        if held is not None and (at is None or at > held.since):
            return Check("authority", False, f"issued while its issuer's {what} is suspended by the regulator "
                         f"(regulator.action at entry {held.since}: {held.reason[:300]}); certificates issued "
                         f"meanwhile are refused (监管已暂停该认证机构的发证资格)")  # fmt: skip
    standing = ledger.state.standings.get(standing_key("issuer", iss))
    if standing is not None and number in standing.withdrawn:
        return Check(
            "authority",
            False,
            "withdrawn by the regulator with its issuer's suspension (reason: "
            f"{standing.reason[:300]}); refused until a regulator.action restores it (监管已撤回)",
        )
    held = ledger.state.suspension("issuer", iss) or ledger.state.suspension("member", iss)
    if held is not None:
        return Check("authority", True, f"its issuer is suspended by the regulator since entry {held.since}; this "
                     f"certificate was recorded at entry {at}, before that, and stands")  # fmt: skip
    return Check("authority", True, "the regulator has not suspended its issuer or withdrawn it")


def _binding(v: sdjwt.Verified, presentation: str, aud: str | None, nonce: str | None) -> Check:
    """The key binding line: whom the holder's signature names, and whether this verifier checked it."""
    if not v.key_bound:
        return Check("key binding", aud is None and nonce is None, "none (the verifier asked for none)")
    if aud is not None or nonce is not None:  # sdjwt.verify checked both against the KB-JWT
        return Check("key binding", True, f"the holder's key signed this presentation for this verifier ({aud}, "
                     f"nonce {nonce})")  # fmt: skip
    kb = orjson.loads(b64url_decode(str(sdjwt.parse(presentation).kb).split(".")[1]))  # verified by sdjwt.verify
    return Check("key binding", True, f"the holder's key signed this presentation for {str(kb.get('aud'))[:200]} "
                 f"with nonce {str(kb.get('nonce'))[:100]}; this verifier gave no audience or nonce, so it did not "
                 f"check that the presentation was meant for it or is fresh")  # fmt: skip


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
    except QDSNError as e:
        return Check("status", False, f"the status list could not be read: {e.what}")
    if value == 0 and on_ledger is not None and on_ledger.status != "valid":  # an older token, replayed
        return Check("status", False, f"{on_ledger.status} on the ledger (credential.status at entry "
                     f"{on_ledger.updated}), though the status list token shown says valid")  # fmt: skip
    return Check("status", value == 0, f"{STATUS_NAMES.get(value, value)} (status list {ref['uri']}#{ref['idx']})")


def _evidence(c: dict[str, Any], ledger: Ledger, log_key: LogKey, cosigners: Cosigners,
              quorum: int) -> list[Check]:  # fmt: skip
    out = []
    ev = c.get("evidence", {})
    cp_doc = ev.get("checkpoint", {})
    try:
        size = Checkpoint.parse(parse_note(cp_doc["note"])[0]).size  # names the keys; verified next
        cp, _ = open_checkpoint(cp_doc["note"], log_key(size) if callable(log_key) else log_key)
        if callable(cosigners):
            cosigners = cosigners(size)
        if (cp.size, cp.root.hex()) != (cp_doc["size"], cp_doc["root"]):
            raise InvalidInput("the evidence's checkpoint fields do not match its note")
        if ledger.size >= cp.size and ledger.root_at(cp.size) != cp.root:
            raise InvalidInput("the checkpoint disagrees with this verifier's replica: a split view")
        names = cosigners_verified(cp_doc["note"], list(cosigners)) if cosigners else []
        if len(names) < quorum:
            raise InvalidInput(f"{len(names)} cosignatures, {quorum} required")
        cosigned = f", cosigned by {len(names)} of {len({v.name for v in cosigners})} members" if cosigners else ""
        out.append(Check("checkpoint", True, f"size {cp.size} signed by the log {cp.origin}{cosigned}"))
    except (QDSNError, KeyError) as e:
        return [*out, Check("checkpoint", False, str(e))]
    items = ev.get("attestations")
    if not isinstance(items, list) or not items:
        return [*out, Check("attestation", False, "the certificate rests on no attested run")]
    records = 0
    for a in items:
        try:
            entry = ledger.store.entry(txid=a["txid"])
            merkle.verify_inclusion(merkle.leaf_hash(entry.leaf), a["seq"], cp.size,
                                    [bytes.fromhex(h) for h in a["proof"]], cp.root)  # fmt: skip
            claims = backs(a, c, ledger)
            batches = sum(len(i["batches"]) for i in claims["inputs"])
            records += sum(i["count"] for i in claims["inputs"])
            what = (f"entry {a['seq']} included ✓; {claims['measurements']['model']} signed by the certificate's "
                    f"enterprise {claims['iss'][:24]}… ✓, code hash published ✓, {batches} input batches anchored "
                    f"✓")  # fmt: skip
            out.append(Check("attestation", True, what))
        except (QDSNError, KeyError, TypeError, ValueError) as e:
            why = e.what if isinstance(e, QDSNError) else f"malformed evidence ({type(e).__name__}: {e})"
            out.append(Check("attestation", False, f"{str(a.get('txid') if isinstance(a, dict) else a)[:16]}…: {why}"))
            continue
        if "output" not in a:  # the holder chose to hide it: nothing here was checked, nothing failed
            out.append(Check("criteria", True, f"not shown: the holder did not show run {a['txid'][:16]}…'s output, so "
                             f"its figures were judged by the issuer at issue (its credential.issue is on the ledger), "
                             f"not by this verifier", checked=False))  # fmt: skip
            continue
        try:
            out.append(Check("criteria", True, judged(a["output"], claims, c)))
        except IntegrityError as e:
            out.append(Check("criteria", False, e.what))
    volumes = c.get("volumes")
    if isinstance(volumes, dict) and "records" in volumes and all(x.ok for x in out):
        shown = volumes["records"]
        out.append(Check("volumes", shown == records, f"{shown} records, as the attested runs read" if shown == records
                         else f"the certificate shows {shown} records; its attested runs read {records}"))  # fmt: skip
    return out


def _name(disclosure: str) -> str:
    d = orjson.loads(b64url_decode(disclosure))  # one that verified
    return str(d[1]) if len(d) == 3 else "(an array element)"
