"""Verifying a certificate presentation: online from a node — its replica of the ledger for the
issuer, the evidence and the cosigners; the issuer's status list fetched over HTTPS and checked with
the presented certificate's issuer's key from the ledger — or offline from a bundle that carries the
log, a checkpoint covering it and the status list token. Offline, the keys that make the bundle's log
believable come from a consortium trust file the verifier already holds (`trust`), never from the
bundle: without one, the report says that nothing ties the bundle to a known consortium."""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from qdsn.credentials import certificate, sdjwt
from qdsn.credentials.certificate import Check, Cosigners, LogKey
from qdsn.credentials.status import MAX_LIST_BYTES, StatusLists, TokenCache, read_token
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied, QDSNError, Unavailable
from qdsn.ledger import Ledger, tx
from qdsn.ledger.checkpoint import NoteVerifier, cosigners_verified
from qdsn.net import outbound
from qdsn.net.outbound import Policy
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


# A status list token is fetched from the URI its issuer recorded on the ledger (`credential.issue`),
# never one a presentation names, and only at the issuer's node as the regulator records it
# (`identity.endpoint`); whatever answers there is still an adversary. The fetch goes through the node's
# outbound policy (`net.outbound`: https, public addresses unless the operator allows others, the checked
# address connected to, no redirects), its body is capped (a list's `lst` is at most 2 × MAX_LIST_BYTES of
# base64url, plus the JWT around it), the whole fetch has a deadline, and a failure is remembered for
# FAILURE_SECONDS, so that verifying many certificates of a dead list does not wait on it each time.
TOKEN_BYTES = 2 * MAX_LIST_BYTES + 64 * 1024
FETCH_SECONDS = 10.0
READ_SECONDS = 5.0
FAILURE_SECONDS = 30.0
_failures: dict[str, tuple[float, str]] = {}
_failures_lock = threading.Lock()


def fetch_token(uri: str, policy: Policy | None = None, *, origins: Iterable[str] | None = None) -> str:
    """The text served at a status list `uri`, fetched under `policy` (default: the environment's) from one of
    `origins` (None: any host the policy lets through), within TOKEN_BYTES and FETCH_SECONDS, without
    redirects; otherwise Unavailable saying why (and the same for FAILURE_SECONDS after)."""
    now = time.monotonic()
    with _failures_lock:
        held = _failures.get(uri)
    if held is not None and now < held[0]:
        raise Unavailable(f"status list {uri[:200]} unreachable: {held[1]} (at most {FAILURE_SECONDS:.0f} s ago); "
                          f"try again later")  # fmt: skip
    try:
        body = outbound.get(uri, policy or Policy.of({}), origins=origins, accept="application/statuslist+jwt",
                            max_bytes=TOKEN_BYTES, seconds=FETCH_SECONDS, read_seconds=READ_SECONDS)  # fmt: skip
        try:
            return body.decode("ascii")
        except UnicodeDecodeError:
            raise Unavailable("the answer is not a token (not ASCII)") from None
    except (Unavailable, outbound.Refused) as e:
        why = e.what
        with _failures_lock:
            _failures[uri] = (now + FAILURE_SECONDS, why[:200])
            while len(_failures) > 1024:
                _failures.pop(next(iter(_failures)))
        raise Unavailable(f"status list {uri[:200]} unreachable: {why[:200]}; try again later") from None


def policy_of(node: Node) -> Policy:
    """The node's outbound-fetch policy, from node.toml's [service] table and the environment."""
    return Policy.of(node.home.service())


def issuer_origins(node: Node, issuer: str) -> list[str]:
    """Where the issuer's node serves, as the regulator records it (or a did:web's own origin): the only
    origin its status lists are fetched from; none recorded, only an address the operator allows is."""
    from qdsn.node.pact import node_url

    at = node_url(node, issuer)
    return [at] if at else []


def member_origins(node: Node) -> list[str]:
    """Every member node's endpoint the regulator recorded (`identity.endpoint`, the latest per DID), read
    off the log in one pass."""
    from sqlalchemy import select

    from qdsn.ledger.store import entries

    latest: dict[str, str] = {}
    q = select(entries.c.leaf).where(entries.c.type == "identity.endpoint").order_by(entries.c.seq)
    with node.ledger.store.engine.connect() as c:
        for r in c.execute(q):
            p = orjson.loads(r.leaf)["payload"]
            latest[str(p["did"])] = str(p["url"])
    return [u for did, u in latest.items() if did in node.ledger.state.identities]


# Other issuers' status list tokens, kept for their `ttl` and never past their `exp`, one cache per policy
_REMOTE: dict[Policy, TokenCache] = {}
_REMOTE_LOCK = threading.Lock()


def _remote(policy: Policy) -> TokenCache:
    with _REMOTE_LOCK:
        if policy not in _REMOTE:
            _REMOTE[policy] = TokenCache(lambda u: fetch_token(u, policy))
        return _REMOTE[policy]


def _status_token(node: Node, uri: str, key: Any) -> tuple[int, str]:
    """(bits, lst) of the status list `uri` (already known to be recorded by its issuer) signed with `key`:
    this node's own, or fetched from the issuer's recorded node and checked."""
    local = StatusLists(node.policies.engine)
    if uri in local.uris():
        return read_token(local.token(uri, node.home.key(), kid=node.did), uri, key)
    owner = next(c.issuer for c in node.ledger.state.credentials.values() if c.status_list == uri)
    policy = policy_of(node)
    outbound.target(uri, policy, issuer_origins(node, owner))  # refused before the cache is even asked
    return _remote(policy).read(uri, key)


def verify_online(node: Node, presentation: str, *, aud: str | None = None, nonce: str | None = None,
                  quorum: int | None = None, trust: Anchor | None = None) -> list[Check]:  # fmt: skip
    """The full report for a presentation, as `certificate.report` gives it, against this node's own
    replica; `quorum` (cosignatures on the evidence's checkpoint) defaults to the node's. With `trust`,
    the checkpoint is checked with the trust file's keys instead of those this replica names."""
    node.catch_up()
    ledger = node.ledger

    def fetch(uri: str) -> tuple[int, str]:
        return _status_token(node, uri, _status_key(ledger, presentation, uri))

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


def bundle(node: Node, presentation: str) -> dict[str, Any]:
    """Everything a verifier needs offline: the presentation, the log up to the latest checkpoint this
    node trusts (every entry, to be re-validated on arrival) with that checkpoint and the cosignatures
    recorded of it, and the issuer's status list token. The checkpoint must cover the certificate's
    evidence and its `credential.issue`. (`bundle_stream` gives the same bytes without holding the log.)"""
    return dict(orjson.loads(b"".join(bundle_stream(node, presentation))))


def bundle_stream(node: Node, presentation: str) -> Iterator[bytes]:
    """The bundle of `bundle` as JSON, in pieces: everything is checked and the status list token fetched
    before the first piece is given; the log comes from a file written once per checkpoint."""
    head, log = _bundle_head(node, presentation)

    def pieces() -> Iterator[bytes]:
        yield orjson.dumps(head)[:-1] + b',"log":'
        with log.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
        yield b"}"

    return pieces()


def _bundle_head(node: Node, presentation: str) -> tuple[dict[str, Any], Path]:
    """The bundle but its log, and the file of the log. What the presentation says is used only to find
    the certificate: its number, whose `credential.issue` must be the presentation's issuer's; the status
    list is the one that record names, and its token is verified under the issuer's key before it is
    handed on — a presentation never chooses what this node fetches."""
    node.catch_up()
    p = sdjwt.parse(presentation)
    claims = orjson.loads(b64url_decode(p.jwt.split(".")[1]))
    try:
        size, number = claims["evidence"]["checkpoint"]["size"], claims["certificate_number"]
        if type(size) is not int or not isinstance(number, str):
            raise TypeError
    except (KeyError, TypeError):
        raise InvalidInput("not a QDSN quality certificate: no evidence checkpoint or certificate number") from None
    note = witness.cosigned_note(node.ledger, node.trusted_checkpoint())
    cp, _ = node.ledger.open_checkpoint(note)
    state = node.ledger.state
    rec = state.credentials.get(number)
    iss = str(claims.get("iss"))
    if rec is not None and rec.issuer != iss:
        raise PermissionDenied(
            f"certificate {number[:200]} was issued by {rec.issuer} on the ledger, not by the presentation's "
            f"issuer {iss[:200]}",
            "only the issuer's own certificate is bundled",
        )
    # A certificate signed while its issuer is suspended is never recorded: its bundle carries the log that
    # shows the suspension, so the verifier sees why it is refused rather than being told to wait.
    held = state.suspension("issuer", iss) or state.suspension("member", iss)
    at = rec.issued if rec is not None else held.since if held is not None else None
    if at is None or cp.size <= max(at, size - 1):
        raise NotFound(
            f"the latest checkpoint this node trusts (size {cp.size}) does not cover certificate "
            f"{number}'s credential.issue yet",
            "bundle again after the members' next witness round",
        )
    status: dict[str, Any] = {}
    if rec is not None:
        uri, key = rec.status_list, state.identities[rec.issuer].key
        local = StatusLists(node.policies.engine)
        token = (local.token(uri, node.home.key(), kid=node.did) if uri in local.uris()
                 else fetch_token(uri, policy_of(node), origins=issuer_origins(node, rec.issuer)))  # fmt: skip
        try:
            read_token(token, uri, key)
        except QDSNError as e:
            raise IntegrityError(f"the status list {uri[:200]} of {rec.issuer} does not hold: {e.what}",
                                 "ask the issuer to serve its status list token again") from None  # fmt: skip
        status = {"uri": uri, "token": token}
    head = {"presentation": presentation, "origin": node.ledger.origin, "checkpoint": note, "status_list": status}
    return head, _log_file(node, cp.size, cp.root)


# Each bundle carries the log up to a checkpoint: the log's JSON array is written once per checkpoint, a
# slice of leaves at a time, into the node's home, and then only read, whoever asks; the newest KEPT stay.
LOG_SLICE = 4096
KEPT = 2
_log_lock = threading.Lock()


def _log_file(node: Node, size: int, root: bytes) -> Path:
    folder = node.home.path / "bundles"
    path = folder / f"log-{size}-{root.hex()[:32]}.json"
    with _log_lock:
        if path.is_file():
            return path
        folder.mkdir(mode=0o700, exist_ok=True)
        tmp = folder / f".{path.name}.partial"
        with tmp.open("wb") as f:
            f.write(b"[")
            for i in range(0, size, LOG_SLICE):
                leaves = node.ledger.store.leaves(i, min(i + LOG_SLICE, size))
                f.write((b"," if i else b"") + b",".join(b'"' + base64.b64encode(x) + b'"' for x in leaves))
            f.write(b"]")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for old in sorted(folder.glob("log-*.json"), key=lambda q: q.stat().st_mtime)[:-KEPT]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


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
