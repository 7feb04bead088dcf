"""Verifying a certificate presentation: online from a node — its replica of the ledger for the
issuer, the evidence and the cosigners; the issuer's status list fetched over HTTPS and checked with
the presented certificate's issuer's key from the ledger — or offline from a bundle that carries the
log, a checkpoint covering it and the status list token. Offline, the keys that make the bundle's log
believable come from a consortium trust file the verifier already holds (`trust`), never from the
bundle: without one, the report says that nothing ties the bundle to a known consortium."""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from qdsn.credentials import certificate, sdjwt
from qdsn.credentials.certificate import Check, Cosigners, LogKey
from qdsn.credentials.status import MAX_LIST_BYTES, StatusLists, TokenCache, read_token
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError, Unavailable
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import NoteVerifier, cosigners_verified
from qdsn.node import witness
from qdsn.node.follow import log_key
from qdsn.node.node import Node
from qdsn.node.trust import Anchor, chained, majority

UNANCHORED = ("nothing ties this bundle to a known consortium: its log key and cosigners come from the bundle "
              "itself, and anyone can make those (没有信任锚：无法确认该证书属于已知联盟); get the consortium's "
              "trust file once from a member (qdsn trust export) and verify with --trust FILE")  # fmt: skip


def _issuer(presentation: str) -> str:
    """The `iss` of a presentation, read unverified: `certificate.report` asks for the status only once
    the issuer's signature over it has verified."""
    return str(orjson.loads(b64url_decode(sdjwt.parse(presentation).jwt.split(".")[1])).get("iss"))


def _status_key(ledger: Ledger, presentation: str, uri: str) -> bytes:
    """The key a status list token must be signed with: the presented certificate's issuer's current
    key, once the ledger confirms that issuer holds the list."""
    iss = _issuer(presentation)
    ident = ledger.state.identities.get(iss)
    if ident is None:
        raise NotFound(f"the certificate's issuer {iss} is not on the ledger")
    owner = next((c.issuer for c in ledger.state.credentials.values() if c.status_list == uri), None)
    if owner is None:
        raise NotFound(f"no credential.issue on the ledger names status list {uri}")
    if owner != iss:
        raise IntegrityError(f"status list {uri} is not the issuer's on the ledger (it is {owner}'s)")
    return ident.key


# A status list token is fetched from a URI its issuer chose: whatever answers there is an adversary.
# Its body is capped (a list's `lst` is at most 2 × MAX_LIST_BYTES of base64url, plus the JWT around
# it), the whole fetch has a deadline (each read waits at most READ_SECONDS, so a trickle ends within
# FETCH_SECONDS + READ_SECONDS), redirects are not followed and a failure is remembered for
# FAILURE_SECONDS, so that verifying many certificates of a dead list does not wait on it each time.
# Plain http and loopback addresses are still allowed: the demo and tests run there.
TOKEN_BYTES = 2 * MAX_LIST_BYTES + 64 * 1024
FETCH_SECONDS = 10.0
READ_SECONDS = 5.0
FAILURE_SECONDS = 30.0
_failures: dict[str, tuple[float, str]] = {}
_failures_lock = threading.Lock()


def fetch_token(uri: str, http: httpx.Client | None = None) -> str:
    """The text served at a status list `uri`, within TOKEN_BYTES and FETCH_SECONDS, without
    redirects; otherwise Unavailable saying why (and the same for FAILURE_SECONDS after)."""
    now = time.monotonic()
    with _failures_lock:
        held = _failures.get(uri)
    if held is not None and now < held[0]:
        raise Unavailable(f"status list {uri[:200]} unreachable: {held[1]} (at most {FAILURE_SECONDS:.0f} s ago); "
                          f"try again later")  # fmt: skip
    try:
        return _get(uri, http or httpx)
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, _Refused) as e:
        why = str(e) or type(e).__name__
        with _failures_lock:
            _failures[uri] = (now + FAILURE_SECONDS, why[:200])
            while len(_failures) > 1024:
                _failures.pop(next(iter(_failures)))
        raise Unavailable(f"status list {uri[:200]} unreachable: {why[:200]}; try again later") from None


class _Refused(Exception):
    """A status list answer not taken: too large, too slow, redirected or not a token."""


def _get(uri: str, http: Any) -> str:
    deadline = time.monotonic() + FETCH_SECONDS
    headers = {"Accept": "application/statuslist+jwt", "Accept-Encoding": "identity"}
    with http.stream("GET", uri, headers=headers, timeout=READ_SECONDS, follow_redirects=False) as r:
        if r.is_redirect:
            raise _Refused(f"it redirects (HTTP {r.status_code}), and redirects are not followed")
        if r.status_code != 200:
            raise _Refused(f"HTTP {r.status_code}")
        if r.headers.get("content-encoding", "identity").lower() != "identity":
            raise _Refused("the answer is content-encoded, and only a plain token is taken")
        length = r.headers.get("content-length", "")
        if length.isdigit() and int(length) > TOKEN_BYTES:
            raise _Refused(f"the answer is {int(length):,} bytes, more than the {TOKEN_BYTES:,} a token may be")
        body = bytearray()
        for chunk in r.iter_raw():
            body += chunk
            if len(body) > TOKEN_BYTES:
                raise _Refused(f"the answer is more than the {TOKEN_BYTES:,} bytes a token may be")
            if time.monotonic() > deadline:
                raise _Refused(f"the answer took more than {FETCH_SECONDS:.0f} s")
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise _Refused("the answer is not a token (not ASCII)") from None


# Another issuer's status list tokens, kept for their `ttl` and never past their `exp`
_REMOTE = TokenCache(fetch_token)


def verify_online(node: Node, presentation: str, *, aud: str | None = None, nonce: str | None = None,
                  quorum: int | None = None, trust: Anchor | None = None,
                  http: httpx.Client | None = None) -> list[Check]:  # fmt: skip
    """The full report for a presentation, as `certificate.report` gives it, against this node's own
    replica; `quorum` (cosignatures on the evidence's checkpoint) defaults to the node's. With `trust`,
    the checkpoint is checked with the trust file's keys instead of those this replica names."""
    node.catch_up()
    ledger = node.ledger
    local = StatusLists(node.policies.engine)

    def fetch(uri: str) -> tuple[int, str]:
        key = _status_key(ledger, presentation, uri)
        if uri in local.uris():
            return read_token(local.token(uri, node.home.key(), kid=node.did), uri, key)
        remote = _REMOTE if http is None else TokenCache(lambda u: fetch_token(u, http))
        return remote.read(uri, key)

    chain = chained(trust, ledger) if trust else None
    key: LogKey
    cosigners: Cosigners
    if trust is None:
        key, cosigners = ledger.log_key, lambda size: witness.cosigners(ledger, size)
    else:
        key, cosigners = chain or (trust.log_key, trust.cosigners)
    q = node.quorum if quorum is None else quorum
    checks = certificate.report(presentation, ledger, log_key=key, aud=aud, nonce=nonce, status=fetch,
                                cosigners=cosigners, quorum=q)  # fmt: skip
    if trust is None:
        return checks
    ours = log_key(ledger)
    first = Check("consortium", chain is not None, f"this node's log {ledger.origin} is signed by {ours.text()}" + (
        f", in the key history of the trust file's log key ({trust.fingerprint[:19]}…)" if chain is not None
        else f", not by the trust file's log key {trust.log_key.text()} or a key rotated from it"))  # fmt: skip
    return [first, *checks]


def members(node: Node) -> Sequence[NoteVerifier]:
    """Every member's cosigner key, as the ledger knows it."""
    return witness.cosigners(node.ledger)


def bundle(node: Node, presentation: str, *, http: httpx.Client | None = None) -> dict[str, Any]:
    """Everything a verifier needs offline: the presentation, the log up to the latest checkpoint this
    node trusts (every entry, to be re-validated on arrival) with that checkpoint and the cosignatures
    recorded of it, and the issuer's status list token. The checkpoint must cover the certificate's
    evidence and its `credential.issue`."""
    node.catch_up()
    p = sdjwt.parse(presentation)
    claims = orjson.loads(b64url_decode(p.jwt.split(".")[1]))
    try:
        size, uri = claims["evidence"]["checkpoint"]["size"], claims["status"]["status_list"]["uri"]
        number = claims["certificate_number"]
        if type(size) is not int or not isinstance(uri, str) or not isinstance(number, str):
            raise TypeError
    except (KeyError, TypeError):
        raise InvalidInput("not a QDSN quality certificate: no evidence checkpoint or status list") from None
    note = witness.cosigned_note(node.ledger, node.trusted_checkpoint())
    cp, _ = node.ledger.open_checkpoint(note)
    rec = node.ledger.state.credentials.get(number)
    # A certificate signed while its issuer is suspended is never recorded: its bundle carries the log that
    # shows the suspension, so the verifier sees why it is refused rather than being told to wait.
    iss = str(claims.get("iss"))
    held = node.ledger.state.suspension("issuer", iss) or node.ledger.state.suspension("member", iss)
    at = rec.issued if rec is not None else held.since if held is not None else None
    if at is None or cp.size <= max(at, size - 1):
        raise NotFound(
            f"the latest checkpoint this node trusts (size {cp.size}) does not cover certificate "
            f"{number}'s credential.issue yet",
            "bundle again after the members' next witness round",
        )
    local = StatusLists(node.policies.engine)
    token = (local.token(uri, node.home.key(), kid=node.did) if uri in local.uris()
             else fetch_token(uri, http))  # fmt: skip
    leaves = node.ledger.store.leaves(0, cp.size)
    return {"presentation": presentation, "origin": node.ledger.origin, "checkpoint": note,
            "status_list": {"uri": uri, "token": token},
            "log": [base64.b64encode(x).decode() for x in leaves]}  # fmt: skip


def _anchored(doc: dict[str, Any], ledger: Ledger, trust: Anchor, quorum: int) -> Check:
    """Whether the bundle's log is the consortium's: started by its log key, and exactly the tree of a
    checkpoint signed by that key and cosigned by `quorum` of its members' keys."""
    if not isinstance(doc.get("checkpoint"), str):
        return Check("consortium", False, "the bundle carries no checkpoint covering its log: make it again with "
                     "qdsn bundle")  # fmt: skip
    theirs = log_key(ledger)
    chain = chained(trust, ledger)
    if chain is None:
        return Check("consortium", False, f"the bundle's log {ledger.origin} is signed by {theirs.text()}, not by the "
                     f"consortium's log key {trust.log_key.text()} or a key rotated from it (trust file "
                     f"{trust.fingerprint[:19]}…)")  # fmt: skip
    try:
        cp, _ = ledger.open_checkpoint(str(doc.get("checkpoint")))
    except QDSNError as e:
        return Check("consortium", False, f"the bundle's checkpoint is not signed by the consortium's log key "
                     f"{trust.log_key.text()}: {e.what}")  # fmt: skip
    if cp.size != ledger.size or ledger.root_at(cp.size) != cp.root:
        return Check("consortium", False, f"the bundle's log ({ledger.size} entries) is not the tree of its "
                     f"checkpoint (size {cp.size})")  # fmt: skip
    try:
        names = cosigners_verified(str(doc["checkpoint"]), chain[1](cp.size))
    except QDSNError as e:
        return Check("consortium", False, e.what)
    if len(names) < quorum:
        return Check("consortium", False, f"the bundle's checkpoint carries {len(names)} cosignatures of the trust "
                     f"file's members, {quorum} required")  # fmt: skip
    return Check("consortium", True, f"log {trust.origin} under checkpoint {cp.size} signed by the consortium's log "
                 f"key and cosigned by {len(names)} of {len(trust.cosigners)} members (quorum {quorum}; trust file "
                 f"{trust.fingerprint[:19]}…)")  # fmt: skip


def verify_bundle(doc: dict[str, Any], *, aud: str | None = None, nonce: str | None = None,
                  quorum: int | None = None, trust: Anchor | None = None) -> list[Check]:  # fmt: skip
    """The report for a bundle, with no network: its log replayed into a scratch replica — every entry's
    signature, schema, role and order checked again — anchored in `trust` (the log key, the cosigners
    and by default its quorum), and its status list token checked with the certificate's issuer's key
    from that log. Without `trust` the first line fails: the bundle would vouch for itself."""
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("log"), list)
        or not isinstance(doc.get("origin"), str)
        or not isinstance(doc.get("presentation"), str)
        or not isinstance(doc.get("status_list"), dict)
    ):
        raise InvalidInput("not a QDSN verification bundle", "make one with qdsn bundle")  # fmt: skip
    if quorum is not None and quorum < 1:
        raise InvalidInput("an offline verifier needs at least one cosignature", "leave --quorum out for the default")
    with tempfile.TemporaryDirectory(prefix="qdsn-verify-") as d:
        ledger = Ledger.open(str(Path(d) / "ledger.db"), origin=doc["origin"])
        try:
            try:
                ledger.append([tx.from_leaf(base64.b64decode(x, validate=True)) for x in doc["log"]])
            except (QDSNError, ValueError, TypeError) as e:
                why = e.what if isinstance(e, QDSNError) else str(e)
                return [Check("log", False, f"the bundled log does not replay: {why}")]
            if ledger.size == 0:
                return [Check("log", False, "the bundle carries no log")]
            sl = doc["status_list"]
            presentation = doc["presentation"]

            def fetch(uri: str) -> tuple[int, str]:
                if uri != sl.get("uri"):
                    raise NotFound(f"the bundle holds no status list {uri}")
                return read_token(str(sl.get("token")), uri, _status_key(ledger, presentation, uri))

            if trust is None:
                first = Check("consortium", False, UNANCHORED)
                key, cosigners = ledger.log_key, lambda size: witness.cosigners(ledger, size)
                q = quorum or majority(len(witness.cosigners(ledger)))
            else:
                # The quorum is asked of the checkpoint covering the whole log; the evidence's (older)
                # checkpoint must then be signed by the log key of its size and agree with that anchored log.
                first = _anchored(doc, ledger, trust, quorum or trust.quorum)
                key, cosigners = chained(trust, ledger) or (trust.log_key, list(trust.cosigners))
                q = 0
            return [first, *certificate.report(presentation, ledger, log_key=key, aud=aud, nonce=nonce,
                                               status=fetch, cosigners=cosigners, quorum=q)]  # fmt: skip
        finally:
            ledger.close()
