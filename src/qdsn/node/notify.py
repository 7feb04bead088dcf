"""A node's side of quality notifications (CX-0125): raising one (CREATED on the ledger, the content
kept here), sending it (SENT on the ledger, then the content sealed with HPKE to the recipient's did:key
X25519 key and posted over the signed API), receiving it (the recipient's node checks it against the
ledger, stores it, and only then records RECEIVED), answering and listing; and raising one where the
evidence already exists (a certificate suspended by continuous certification, a split view of the log).

What the other side controls when it delivers: the signed request (bound to this node and used once,
by `api.signatures`), the notification id it names and every byte sealed in it. A delivery is taken
only for a notification the ledger says is SENT from its signer to this node, whose sealed content
opens under this node's key in that notification's context and hashes to what the ledger holds.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol

import httpx
import orjson
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, update

from qdsn.clock import system_clock
from qdsn.crypto import hpke
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, QDSNError, Unavailable
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.ledger import tx
from qdsn.node.node import Node
from qdsn.supervision import notifications as qn

log = logging.getLogger(__name__)
metadata = MetaData()
kept = Table(  # the content of every notification this node sent or received, and where to deliver it
    "notifications",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("doc", Text, nullable=False),  # the canonical content
    Column("url", String(500), nullable=True),  # the recipient's API, for a notification this node sends
    Column("tries", Integer, nullable=False, default=0),
    Column("due", Integer, nullable=False, default=0),  # unix time of the next delivery attempt
)
evidence = Table(  # the ledger entry each automatically raised notification rests on: raised once per entry
    "notification_evidence",
    metadata,
    Column("txid", String(64), primary_key=True),
    Column("id", String(128), nullable=False),
)
addresses = Table(  # where this node reaches another participant's API, as it learned it: what waits is sent there
    "notification_addresses",
    metadata,
    Column("did", String(512), primary_key=True),
    Column("url", String(500), nullable=False),
)
failures = Table(  # why the last delivery of a notification this node sends failed, until one succeeds
    "notification_failures",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("reason", Text, nullable=False),
)
MAX_SEALED = 2 * qn.MAX_CONTENT  # base64url characters of a sealed notification
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_scanned: dict[str, int] = {}  # per home: the log size up to which its split views were raised
MOVE_WORDS = {"ack": "ACKNOWLEDGED", "accept": "ACCEPTED", "decline": "DECLINED", "close": "CLOSED",
              "cancel": "CANCELED"}  # fmt: skip


class Peer(Protocol):
    """Another node's API (`api.client.NodeClient`)."""

    def call(self, method: str, path: str, payload: Any = None) -> Any: ...


@cache
def _tables(engine: Any) -> None:
    metadata.create_all(engine)


def _keep(node: Node, n: qn.Notification, url: str | None = None) -> None:
    _tables(node.policies.engine)
    doc = n.canonical().decode()
    with node.policies.engine.begin() as c:
        row = c.execute(select(kept.c.doc).where(kept.c.id == n.id)).first()
        if row is None:
            c.execute(insert(kept).values(id=n.id, doc=doc, url=url, tries=0, due=0))
        elif row.doc != doc:
            raise Conflict(f"this node keeps another content under notification {n.id}")
        elif url is not None:
            c.execute(update(kept).where(kept.c.id == n.id).values(url=url))


def content(node: Node, id: str) -> qn.Notification | None:
    """The content of a notification this node sent or received, if it keeps it."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        row = c.execute(select(kept.c.doc).where(kept.c.id == id)).first()
    return qn.parse(orjson.loads(row.doc)) if row else None


def _notice(node: Node, id: str) -> qn.Folded:
    """A notification of this node's as the ledger has it; somebody else's does not exist for it."""
    if not isinstance(id, str) or not _ID.match(id):
        raise InvalidInput(f"a notification id is 1 to 128 letters, digits and ._:- ; not {str(id)[:80]!r}")
    rows = node.ledger.store.rows_of_type("notification.transition")
    got = qn.fold(rows).get(id)
    if got is None or got.side_of(node.did) is None:
        raise NotFound(f"no notification {id!r} of this node on the ledger", "qdsn notify list shows this node's")
    return got


def raise_(node: Node, recipient: str, classification: str, severity: str, description: str, *,
           target_date: str | None = None, related: str | None = None,
           affected: dict[str, list[str]] | None = None, url: str | None = None,
           now: datetime | None = None) -> qn.Notification:  # fmt: skip
    """Raise a notification to `recipient`: its content checked and kept here, CREATED on the ledger.
    `url`: the recipient's API, where `send` or the node's rounds deliver it."""
    n = qn.new(node.did, recipient, classification, severity, description, target_date=target_date, related=related,
               affected=affected, now=now or system_clock())  # fmt: skip
    node.catch_up()
    if recipient not in node.ledger.state.identities:
        raise NotFound(f"the recipient {recipient} is not registered on the ledger", "name a member (qdsn member list)")
    if related is not None and related not in node.ledger.state.notices:
        raise NotFound(f"the related notification {related!r} is not on the ledger")
    _keep(node, n, url or address_of(node, recipient))
    node.submit([node.home.sign("notification.transition", n.transition("CREATED"))])
    if url is not None:
        remember(node, recipient, url)
    return n


def address_of(node: Node, did: str) -> str | None:
    """The API of participant `did` as this node last learned it, if it did."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        return c.execute(select(addresses.c.url).where(addresses.c.did == did)).scalar()


def remember(node: Node, did: str, url: str) -> list[str]:
    """Learn where participant `did`'s API is: every notification this node raised to it and has not
    delivered is sent there by the node's next round (or `deliver_due` now). Returns their ids."""
    _tables(node.policies.engine)
    url = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", url) or len(url) > 500:
        raise InvalidInput(
            f"{url[:80]!r} is not a node's API URL", "give scheme://host[:port], e.g. https://maker:8420"
        )
    waiting = [i for i, n in node.ledger.state.notices.items()
               if n.sender == node.did and n.recipient == did and n.state in ("CREATED", "SENT")]  # fmt: skip
    with node.policies.engine.begin() as c:
        if c.execute(update(addresses).where(addresses.c.did == did).values(url=url)).rowcount == 0:
            c.execute(insert(addresses).values(did=did, url=url))
        if waiting:
            c.execute(update(kept).where(kept.c.id.in_(waiting)).values(url=url, tries=0, due=0))
    return waiting


def info(n: qn.Folded | qn.Notification) -> bytes:
    """The HPKE context of one notification's content: it opens only as that notification, between
    those two parties, with that content hash."""
    digest = n.content if isinstance(n, qn.Folded) else n.digest()
    return "\n".join(("qdsn/notification/v1", n.sender, n.recipient, n.id, digest)).encode()


def send(node: Node, id: str, peer: Peer) -> dict[str, Any]:
    """Deliver a notification this node raised: SENT on the ledger (when it was CREATED), then its
    content sealed to the recipient and posted to the recipient's node, which answers once it has stored
    it and recorded RECEIVED. Sending again after a lost answer delivers the same content again."""
    node.catch_up()
    n = _notice(node, id)
    if n.sender != node.did:
        raise PermissionDenied(f"only its sender sends notification {id}")
    if n.state not in ("CREATED", "SENT"):
        raise Conflict(f"notification {id} is {n.state}: it was delivered already" if n.state != "CANCELED"
                       else f"notification {id} was canceled")  # fmt: skip
    body = content(node, id)
    if body is None or body.digest() != n.content:
        raise NotFound(f"this node keeps no content of notification {id}")
    key = node.key_of(n.recipient)
    if key is None:
        raise NotFound(f"the recipient {n.recipient} is not registered on the ledger")
    if n.state == "CREATED":
        _record(node, id, body.transition("SENT"), done=("SENT", *_DELIVERED))
        if (now := node.ledger.state.notices[id].state) in _DELIVERED:  # the node's round delivered it meanwhile
            return {"notification": id, "state": now}
    sealed = hpke.seal(x25519_from_ed25519(key), body.canonical(), info(body))
    try:
        got = peer.call(
            "POST",
            "/notifications/inbox",
            {"notification": id, "suite": hpke.SUITE, "sealed": base64.urlsafe_b64encode(sealed).decode().rstrip("=")},
        )
    except httpx.HTTPError as e:
        raise Unavailable(f"the recipient's node did not answer the delivery of {id}: {e}",
                          "it stays SENT; send it again when that node is up (qdsn notify send)") from None  # fmt: skip
    if not isinstance(got, dict) or got.get("notification") != id:
        raise IntegrityError(f"the recipient's node answered the delivery of {id} with something else")
    node.catch_up()
    return {"notification": id, "state": node.ledger.state.notices[id].state}


_DELIVERED = ("RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED")  # states past a delivery


def _record(node: Node, id: str, payload: dict[str, Any], done: tuple[str, ...]) -> None:
    """Record a move that two rounds of this node may make at once (a delivery sent by a command while
    the node's round sends it too): refused because the other made it first, it is made."""
    try:
        node.submit([node.home.sign("notification.transition", payload)])
    except Conflict:
        node.catch_up()
        if node.ledger.state.notices[id].state not in done:
            raise


def receive(node: Node, sender: str, body: dict[str, Any]) -> dict[str, Any]:
    """A notification delivered to this node by `sender` (the request's signer): checked against the
    ledger, opened, stored, and then RECEIVED recorded. A delivery of one already stored is answered
    with its state (the sender lost the first answer)."""
    id, sealed = body.get("notification"), body.get("sealed")
    if not isinstance(id, str) or not _ID.match(id):
        raise InvalidInput('the body is {"notification": ID, "sealed": base64url} with an id of 1 to 128 of '
                           "A-Z a-z 0-9 . _ : -")  # fmt: skip
    if not isinstance(sealed, str) or not 0 < len(sealed) <= MAX_SEALED:
        raise InvalidInput(f"sealed is the notification's HPKE ciphertext, base64url, at most {MAX_SEALED} characters")
    n = node.ledger.state.notices.get(id)
    if n is None:
        node.catch_up()
        n = node.ledger.state.notices.get(id)
    if n is None:
        raise NotFound(f"notification {id} is not on the ledger", "record it (CREATED, SENT) before delivering it")
    if n.recipient != node.did:
        raise PermissionDenied(f"notification {id} is addressed to {n.recipient}, not to this node")
    if n.sender != sender:
        raise PermissionDenied(f"notification {id} was raised by {n.sender}; {sender} cannot deliver it")
    if n.state == "CREATED":
        node.catch_up()
        n = node.ledger.state.notices[id]
    if n.state == "CREATED":
        raise Conflict(f"notification {id} is not SENT on the ledger yet", "record SENT, then deliver it")
    if n.state == "CANCELED":
        raise Conflict(f"notification {id} was canceled before it was sent: there is nothing to deliver")
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("sealed is not base64url") from None
    folded = qn.Folded(id, n.sender, n.recipient, n.classification, n.severity, n.content, n.state)
    plain = hpke.unseal(node.home.key(), raw, info(folded))
    try:
        doc = orjson.loads(plain)
    except orjson.JSONDecodeError:
        raise IntegrityError("the sealed notification is not JSON") from None
    got = qn.parse(doc)
    if got.digest() != n.content:
        raise IntegrityError(f"the content delivered does not hash to the one notification {id} has on the ledger")
    if (got.id, got.sender, got.recipient, got.classification, got.severity) != (
            id, n.sender, n.recipient, n.classification, n.severity):  # fmt: skip
        raise IntegrityError(f"the content delivered names another notification than {id} on the ledger")
    _keep(node, got)
    if n.state == "SENT":
        _record(node, id, got.transition("RECEIVED"), done=("RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "DECLINED"))
    return {"notification": id, "state": node.ledger.state.notices[id].state}


def answer(node: Node, id: str, state: str, reason: str | None = None) -> qn.Folded:
    """Move a notification of this node's to `state` (ACKNOWLEDGED, ACCEPTED, DECLINED by its recipient —
    which declines one it never received too; CLOSED, CANCELED by its sender), with a reason where it
    declines or closes."""
    if state not in MOVE_WORDS.values():
        raise InvalidInput(f"a notification is answered with {', '.join(MOVE_WORDS.values())}, not {str(state)[:40]!r}",
                           "SENT and RECEIVED are recorded by delivering it (qdsn notify send)")  # fmt: skip
    if reason is not None:
        tx.check_payload("notification.transition", {  # the reason's form, before anything is asked of the log
            "notification": "x", "state": state, "classification": "alert", "severity": "MINOR",
            "sender": node.did, "recipient": node.did, "content": "0" * 64, "reason": reason})  # fmt: skip
    node.catch_up()
    n = _notice(node, id)
    side = n.side_of(node.did)
    assert side is not None
    qn.move(n.state, state, side, reason)  # refused here with the same words the ledger would use
    if side == "recipient" and state != "DECLINED" and content(node, id) is None:  # it may decline what never came
        raise NotFound(f"this node has not received the content of notification {id}",
                       "ask its sender to send it again (qdsn notify send)")  # fmt: skip
    p = {
        "notification": id,
        "state": state,
        "classification": n.classification,
        "severity": n.severity,
        "sender": n.sender,
        "recipient": n.recipient,
        "content": n.content,
    } | ({"reason": reason} if reason else {})
    node.submit([node.home.sign("notification.transition", p)])
    return _notice(node, id)


def listing(node: Node) -> dict[str, Any]:
    """This node's notifications (sent and received) with their content where it keeps it and the
    parties' names; for the regulator, counts of all the others sent (a CREATED one is its sender's draft)."""
    folded = qn.fold(node.ledger.store.rows_of_type("notification.transition"))
    mine = [n for n in folded.values() if n.side_of(node.did)]
    out: dict[str, Any] = {"notifications": [view(node, n) for n in mine]}
    if node.home.role == "regulator":
        out["others"] = qn.counts(n for n in folded.values() if not n.side_of(node.did) and n.state != "CREATED")
    return out


def show(node: Node, id: str) -> dict[str, Any]:
    """One notification of this node's, with its content and history."""
    return view(node, _notice(node, id))


def view(node: Node, n: qn.Folded) -> dict[str, Any]:
    names = node.ledger.state.identities
    body = content(node, n.id)
    side = n.side_of(node.did)
    return n.to_json() | {
        "side": side, "sender_name": names[n.sender].name if n.sender in names else None,
        "recipient_name": names[n.recipient].name if n.recipient in names else None,
        "moves": qn.moves(n.state, side) if side else [], "delivery": delivery(node, n),
        "body": body.model_dump(mode="json") if body is not None and body.digest() == n.content else None,
    }  # fmt: skip


def deliver_due(node: Node, links: Callable[[str], Peer], now: int | None = None) -> list[str]:
    """Deliver the notifications this node raised that are not yet received and whose recipient's API it
    knows (the node's rounds call this); a failed delivery is tried again later, waiting longer each time.
    Returns the ids delivered."""
    _tables(node.policies.engine)
    t = int(time.time()) if now is None else now
    with node.policies.engine.connect() as c:
        known = dict(c.execute(select(addresses.c.did, addresses.c.url)).all())
        bare = [r.id for r in c.execute(select(kept.c.id).where(kept.c.url.is_(None))).all()]
    for id in bare:  # raised before the recipient's address was known (on a start or after `remember`)
        n = node.ledger.state.notices.get(id)
        if n is not None and n.sender == node.did and n.state in ("CREATED", "SENT") and n.recipient in known:
            with node.policies.engine.begin() as c:
                c.execute(update(kept).where(kept.c.id == id).values(url=known[n.recipient], tries=0, due=0))
    with node.policies.engine.connect() as c:
        rows = c.execute(select(kept).where(kept.c.url.is_not(None), kept.c.due <= t)).all()
    done = []
    for r in rows:
        n = node.ledger.state.notices.get(r.id)
        if n is None or n.sender != node.did or n.state not in ("CREATED", "SENT"):
            with node.policies.engine.begin() as c:
                c.execute(update(kept).where(kept.c.id == r.id).values(url=None))
            continue
        try:
            send(node, r.id, links(r.url))
            done.append(r.id)
            wait, tries, why = 0, 0, None
        except QDSNError as e:
            log.warning("delivering notification %s to %s: %s", r.id, r.url, e)
            tries = r.tries + 1
            wait, why = min(2**tries, 3600), f"{r.url}: {e.what}"[:2000]
        with node.policies.engine.begin() as c:
            c.execute(update(kept).where(kept.c.id == r.id).values(tries=tries, due=t + wait))
            c.execute(failures.delete().where(failures.c.id == r.id))
            if why is not None:
                c.execute(insert(failures).values(id=r.id, reason=why))
    return done


def delivery(node: Node, n: qn.Folded) -> dict[str, Any] | None:
    """For a notification this node raised and has not delivered: why it waits and what comes next
    ({delivered: False, url, reason, next}); None for any other."""
    if n.sender != node.did or n.state not in ("CREATED", "SENT"):
        return None
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        row = c.execute(select(kept.c.url, kept.c.due).where(kept.c.id == n.id)).first()
        failed = c.execute(select(failures.c.reason).where(failures.c.id == n.id)).scalar()
    url = (row.url if row is not None else None) or address_of(node, n.recipient)
    by_hand = f"qdsn notify send {n.id} --url <the recipient's API>"
    if row is None:
        return {"delivered": False, "url": None, "reason": "this node keeps no content of it",
                "next": f"cancel it (qdsn notify cancel {n.id}) and raise it again"}  # fmt: skip
    if url is None:
        return {"delivered": False, "url": None,
                "reason": "the recipient's node address is not known to this node",
                "next": f"qdsn notify address --to {n.recipient} --url <its API> (then this node delivers every "
                        f"notification waiting for it), or {by_hand}"}  # fmt: skip
    if failed is not None:
        at = datetime.fromtimestamp(row.due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if row.due else "its next round"
        return {"delivered": False, "url": url, "reason": f"the last delivery failed: {failed}",
                "next": f"the running node tries again at {at}; or {by_hand}"}  # fmt: skip
    return {"delivered": False, "url": url, "reason": "not tried yet",
            "next": f"the running node (qdsn node start) delivers it in its next round; or {by_hand}"}  # fmt: skip


# -- raised where the evidence already exists ------------------------------------------------------------


def _raised_for(node: Node, txid: str) -> str | None:
    """The notification already raised on the evidence of ledger entry `txid`, if any."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        return c.execute(select(evidence.c.id).where(evidence.c.txid == txid)).scalar()


def _raise_on(node: Node, txid: str, recipient: str, *args: Any, **kw: Any) -> qn.Notification | None:
    """`raise_`, once per piece of evidence (the ledger entry `txid`)."""
    if _raised_for(node, txid) is not None:
        return None
    n = raise_(node, recipient, *args, **kw)
    with node.policies.engine.begin() as c:
        c.execute(insert(evidence).values(txid=txid, id=n.id))
    return n


def _ranges(inputs: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {"datasets": sorted({str(i["dataset"]) for i in inputs})[: qn.MAX_ITEMS],
            "batches": [f"{i['dataset']}#{i['first']}+{i['count']}" for i in inputs][: qn.MAX_ITEMS]}  # fmt: skip


def _due(days: int) -> tuple[datetime, str]:
    now = system_clock()
    return now, (now + timedelta(days=days)).strftime("%Y-%m-%d")


def on_suspension(node: Node, number: str, reason: str, cause: str, inputs: list[dict[str, Any]],
                  shortfalls: list[str], *, url: str | None = None) -> qn.Notification | None:  # fmt: skip
    """A certificate this node suspended by continuous certification: an investigation to its holder,
    naming the certificate, the attested run that failed (`cause`, its `compute.attest`) and the records
    it read. It goes to the data's owner only, whose own data it describes, so no policy's consent is
    needed; of the data it carries only what the attested output (which the agreement let this node
    see) says fell short."""
    c = node.ledger.state.credentials[number]
    figures = "; ".join(shortfalls) or "the run did not pass"
    text = (f"Certificate {number} was suspended by continuous certification: {reason}. "
            f"Attested run (compute.attest {cause}): {figures}. Investigate the cause, correct it, and answer; "
            "the certificate is reinstated by the next passing run.")  # fmt: skip
    now, target = _due(30)
    return _raise_on(node, cause, c.subject, "investigation", "MAJOR", text[:8000], url=url, now=now,
                     affected={"certificates": [number], **_ranges(inputs)}, target_date=target)  # fmt: skip


def on_run(node: Node, claims: dict[str, Any], output: dict[str, Any], attestation: str, *,
           url: str | None = None) -> qn.Notification | None:  # fmt: skip
    """An attested SPC run (spc-stability) out of control, as this node received it: an investigation to
    the data's owner, whose node attested it, naming the rules broken per characteristic; MAJOR when a
    point lies beyond the control limits (Nelson 1 / WE 1), else MINOR. Raised once per run, and not
    when a suspension already raised one on it. Nothing else is raised: a run in control, another model."""
    if str(claims.get("measurements", {}).get("model", "")).split("@")[0] != "spc-stability":
        return None
    if output.get("pass") is not False:
        return None
    entry = next((r for r in node.ledger.store.rows_of_type("compute.attest")
                  if r.submitter == claims.get("iss") and tx.from_leaf(r.leaf).payload["attestation"] == attestation),
                 None)  # fmt: skip
    if entry is None:
        raise NotFound("the run's compute.attest is not on this node's replica", "catch up with the log and retry")
    broken, beyond = [], False
    for ch in output.get("characteristics", [])[:50]:
        counts = {k: v for k, v in (ch.get("violations") or {}).items() if v}
        beyond = beyond or bool(counts.get("nelson1") or counts.get("we1"))
        if counts:
            broken.append(f"{ch.get('name')}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())))
    text = (f"An attested SPC run is out of control (compute.attest {entry.txid}, job {claims.get('job')}): "
            f"{'; '.join(broken) or 'the run did not pass'}. Investigate the special cause and answer.")  # fmt: skip
    now, target = _due(14)
    return _raise_on(node, entry.txid, str(claims["iss"]), "investigation", "MAJOR" if beyond else "MINOR",
                     text[:8000], affected=_ranges(claims.get("inputs", [])), url=url, now=now,
                     target_date=target)  # fmt: skip


def on_split_views(node: Node, url_of: Callable[[str], str | None] = lambda did: None) -> list[qn.Notification]:
    """Each split view this node put on the ledger (`alert.raise`, whose evidence stays there): an alert
    to the participant whose signed claim contradicts this replica, naming the alert's entry, once. Its
    content is what the ledger shows every member already, so no policy's consent is needed. `url_of`
    gives a participant's API where this node knows it (the log operator's)."""
    out = []
    start = _scanned.get(str(node.home.path), 0)  # the log is scanned once per process, then from where it stood
    size = node.ledger.size
    for row in node.ledger.store.rows_of_type("alert.raise", start):
        if row.seq >= size:
            break
        if row.submitter != node.did:
            continue
        p = tx.from_leaf(row.leaf).payload
        other = next((c for c in p["claims"] if c["signer"] != node.did), None)
        if other is None or other["signer"] not in node.ledger.state.identities:
            continue
        text = (f"Split view of the log {p['origin']} at size {p['size']}: your signed claim of root {other['root']} "
                f"contradicts this node's replica. The evidence is alert.raise {row.txid} (entry {row.seq}) on the "
                "ledger. Check your replica (qdsn ledger verify) and answer.")  # fmt: skip
        n = _raise_on(node, row.txid, other["signer"], "alert", "CRITICAL", text, url=url_of(other["signer"]))
        if n is not None:
            out.append(n)
    _scanned[str(node.home.path)] = size
    return out


def record_move(word: str) -> str:
    """The state a command's word moves to (ack → ACKNOWLEDGED, …)."""
    if word not in MOVE_WORDS:
        raise InvalidInput(f"{word!r} is not a move; one of {', '.join(MOVE_WORDS)}")
    return MOVE_WORDS[word]
