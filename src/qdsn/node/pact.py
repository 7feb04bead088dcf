"""A node as a PACT v3 host system: product footprints served to the recipients an agreement allows,
through OAuth 2.0 client credentials, the spec's filters and pagination, and CloudEvents.

How PACT maps onto QDSN: footprints are the records of the owner's vault datasets of kind
`footprints` (validated against the spec's schema before they are sealed and anchored). A recipient
negotiates an agreement for such a dataset as for any other; the owner's node then issues it PACT
client credentials bound to that agreement (`add_client`, or the recipient's signed `POST
/pact/clients`). Every ListFootprints, GetFootprint and answered request is a use of the agreement:
decided by its policy (count, time, purpose, role), recorded as an `access.decision` and metered —
a denial is recorded too (repeats collapsed into one entry with their count), and answered with the
spec's AccessDenied. A client bound to no agreement (`counterpart` only) may post the events a data
owner sends its recipients (fulfilled, rejected, published) and read nothing.

What the other side controls: the client id and secret it sends, the bearer token, every query
parameter, the Host header (echoed only into its own pagination link), the event body and the
`source` it names. Secrets and tokens are 256-bit random strings kept as SHA-256 digests; a token is
good at this node only, for its client's agreement only, and for `TOKEN_SECONDS`; an event's source
must be the events URL registered with the client, and that URL must lie at the recipient's node as
the ledger records it (`identity.endpoint`), before anything is sent there.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from qdsn.crypto import sha256
from qdsn.data import pact
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied, QDSNError
from qdsn.identity import didweb
from qdsn.ledger.store import entries
from qdsn.node.node import Node
from qdsn.node.transfer import uses
from qdsn.policy import Request, decide

TOKEN_SECONDS = 3600
EXPIRED_KEPT = 86400  # an expired token is still told apart from a wrong one (TokenExpired) this long
MAX_LIMIT = 1000  # footprints per page at most, whatever `limit` asks
DEFAULT_LIMIT = 100
FILTERS = ("productId", "companyId", "geography", "classification", "validOn", "validAfter", "validBefore", "status")
KIND = "footprints"
DENIAL_WINDOW = 60  # seconds: one access.decision per recipient, agreement and rule of denial; the rest counted
MAX_CLIENTS = 4  # live credentials per counterpart and agreement (or none): issuing another revokes the oldest
MAX_EVENTS = 1000  # events kept from one counterpart; beyond, its events are refused until some are removed
clock: Callable[[], float] = time.time  # the node's clock; tests move it

metadata = MetaData()
clients = Table(
    "pact_clients",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("secret", String(64), nullable=False),  # SHA-256 hex of the secret
    Column("counterpart", String(512), nullable=False),  # the DID of the organisation it was issued to
    Column("agreement", String(256), nullable=True),
    Column("purpose", String(200), nullable=True),
    Column("events", String(2000), nullable=True),  # where events for the counterpart go (https)
    Column("created", Integer, nullable=False),
    Column("revoked", Integer, nullable=True),  # when the owner revoked it (its tokens went with it)
    Column("revoked_reason", String(500), nullable=True),
)
tokens = Table(
    "pact_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("client", String(64), nullable=False),
    Column("expires", Integer, nullable=False),
)
events = Table(
    "pact_events",
    metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 of source and id: CloudEvents' identity
    Column("client", String(64), nullable=False),
    Column("type", String(100), nullable=False),
    Column("received", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(20), nullable=False),  # received | fulfilled | rejected
)


denials = Table(
    "pact_denials",
    metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 of the recipient, agreement, point and rule
    Column("since", Integer, nullable=False),  # when the last denial of this key went on the ledger
    Column("pending", Integer, nullable=False),  # denials since then, not yet on the ledger
    Column("note", Text, nullable=False),  # the latest one's access.decision, to record them with
)


@cache
def _tables(engine: Any) -> None:
    metadata.create_all(engine)
    have = {c["name"] for c in inspect(engine).get_columns("pact_clients")}
    with engine.begin() as c:  # a home made before credentials could be revoked
        for column in ("revoked INTEGER", "revoked_reason VARCHAR(500)"):
            if column.split()[0] not in have:
                c.exec_driver_sql(f"ALTER TABLE pact_clients ADD COLUMN {column}")


class Refused(QDSNError):
    """A PACT action refused with one of the spec's error codes (and its HTTP status)."""

    STATUS: ClassVar[dict[str, int]] = {"BadRequest": 400, "AccessDenied": 403, "NotFound": 404, "TokenExpired": 401,
              "NotImplemented": 400, "InternalError": 500, "Unauthorized": 401}  # fmt: skip

    def __init__(self, code: str, what: str, fix: str | None = None) -> None:
        super().__init__(what, fix)
        self.code, self.status = code, self.STATUS[code]


class OAuthError(QDSNError):
    """A token request refused as RFC 6749 §5.2 says: `error` and the status."""

    def __init__(self, error: str, what: str, status: int = 400) -> None:
        super().__init__(what)
        self.error, self.status = error, status


@dataclass(frozen=True)
class Client:
    id: str
    counterpart: str
    agreement: str | None
    purpose: str | None
    events: str | None


@dataclass(frozen=True)
class Outbound:
    """An event for a counterpart: sent to its `events` URL, which lies at `node`, the URL the ledger records
    for its node (where the sender also asks for credentials to send with)."""

    counterpart: str
    node: str
    events: str
    event: dict[str, Any]


def _digest(secret: str) -> str:
    return sha256(secret.encode()).hex()


def add_client(node: Node, *, agreement: str | None = None, counterpart: str | None = None,
               purpose: str | None = None, events_url: str | None = None) -> dict[str, str]:  # fmt: skip
    """New client credentials: for the consumer of `agreement` (a footprints dataset of this node's),
    or for `counterpart` alone (it may send events, read nothing). The secret is shown once."""
    _tables(node.policies.engine)
    if agreement is not None:
        a = node.policies.agreement(agreement)
        if a.dataset not in footprint_datasets(node):
            raise InvalidInput(f"agreement {agreement} covers {a.dataset}, which is not a footprints dataset "
                               "of this node")  # fmt: skip
        if a.ended:
            raise PermissionDenied(f"agreement {agreement} has ended: {a.ended}")
        if counterpart not in (None, a.consumer):
            raise PermissionDenied(f"agreement {agreement} was made with {a.consumer}, not {counterpart}")
        counterpart = a.consumer
    if counterpart is None or node.role_of(counterpart) is None:
        raise InvalidInput(f"{counterpart} is not a participant on this ledger" if counterpart else
                           "credentials are issued for an agreement or a participant's DID")  # fmt: skip
    if events_url is not None:
        _at_node(node, counterpart, _https(events_url, "the events URL"))
    client_id, secret = f"pact-{uuid.uuid4()}", secrets.token_urlsafe(32)
    now = int(clock())
    same = (clients.c.counterpart == counterpart) & clients.c.revoked.is_(None)
    same &= clients.c.agreement == agreement if agreement is not None else clients.c.agreement.is_(None)
    with node.policies.engine.begin() as c:
        c.execute(insert(clients).values(id=client_id, secret=_digest(secret), counterpart=counterpart,
                                         agreement=agreement, purpose=purpose, events=events_url,
                                         created=now))  # fmt: skip
        live = c.execute(select(clients.c.id).where(same).order_by(clients.c.created.desc(), clients.c.id)).all()
        for old in [r.id for r in live if r.id != client_id][MAX_CLIENTS - 1 :]:  # the oldest beyond the limit
            _revoke(c, old, now, f"replaced: at most {MAX_CLIENTS} credentials are live per counterpart and agreement")
    return {"client_id": client_id, "client_secret": secret, "counterpart": counterpart}


def _revoke(c: Any, client_id: str, now: int, reason: str) -> None:
    c.execute(update(clients).where(clients.c.id == client_id).values(revoked=now, revoked_reason=reason[:500]))
    c.execute(tokens.delete().where(tokens.c.client == client_id))


def revoke_client(node: Node, client_id: str, reason: str) -> dict[str, Any]:
    """Revoke PACT credentials: their tokens stop working at once and no new one is issued; when and why is
    kept with them (`list_clients`)."""
    _tables(node.policies.engine)
    if not reason.strip():
        raise InvalidInput("say why the credentials are revoked", "give a reason, e.g. --reason 'contract ended'")
    with node.policies.engine.begin() as c:
        row = c.execute(select(clients).where(clients.c.id == client_id[:64])).first()
        if row is None:
            raise NotFound(f"no PACT client {client_id[:80]!r} at this node", "list them: qdsn footprint clients list")
        if row.revoked is not None:
            raise Conflict(f"client {client_id} was revoked already: {row.revoked_reason}")
        _revoke(c, row.id, int(clock()), reason.strip())
    return next(r for r in list_clients(node) if r["client_id"] == row.id)


def list_clients(node: Node) -> list[dict[str, Any]]:
    """Every PACT client this node issued, oldest first: to whom, under which agreement, revoked when and why."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        rows = c.execute(select(clients).order_by(clients.c.created, clients.c.id)).all()
    return [{"client_id": r.id, "counterpart": r.counterpart, "agreement": r.agreement, "purpose": r.purpose,
             "events": r.events, "created": r.created, "revoked": r.revoked, "revoked_reason": r.revoked_reason}
            for r in rows]  # fmt: skip


def node_url(node: Node, did: str) -> str | None:
    """Where `did`'s node serves its API as the ledger records it: the regulator's latest `identity.endpoint`
    for it, else a did:web's own origin; None when the ledger records none."""
    q = select(entries.c.leaf).where(entries.c.type == "identity.endpoint").order_by(entries.c.seq)
    with node.ledger.store.engine.connect() as c:
        found = [p["url"] for r in c.execute(q) if (p := orjson.loads(r.leaf)["payload"])["did"] == did]
    if found:
        return str(found[-1])
    if did.startswith("did:web:"):
        try:
            u = urlsplit(didweb.did_web_to_url(did))
        except InvalidInput:
            return None
        return f"https://{u.netloc}"
    return None


def _under(url: str, base: str) -> bool:
    """Whether https `url` lies at `base`: the same origin, and a path inside base's path."""
    u, b = urlsplit(url), urlsplit(base)
    root = b.path.rstrip("/") + "/"
    return (u.scheme == b.scheme == "https" and (u.hostname, u.port or 443) == (b.hostname, b.port or 443)
            and (u.path.rstrip("/") + "/").startswith(root))  # fmt: skip


def _at_node(node: Node, counterpart: str, events_url: str) -> str:
    """The counterpart's node URL, as the ledger records it, if `events_url` lies there; PermissionDenied
    otherwise: events (and the owner's signed requests for credentials) go nowhere else."""
    at = node_url(node, counterpart)
    if at is None:
        raise PermissionDenied(f"the ledger records no node URL for {counterpart}, so no events are sent to it",
                               "the regulator records it: qdsn member endpoint DID URL")  # fmt: skip
    if not _under(events_url, at):
        raise PermissionDenied(f"the events URL {events_url[:200]!r} is not at {at}, the node the ledger records "
                               f"for {counterpart}", f"register an events URL under {at}")  # fmt: skip
    return at


def _https(url: str, what: str) -> str:
    try:
        u = urlsplit(url)
        ok = u.scheme == "https" and bool(u.hostname) and not u.username and not u.fragment and not u.query
        ok = ok and not {".", ".."} & set(u.path.split("/"))
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput(f"{what} {url[:200]!r} is not an https URL", "PACT hosts talk over HTTPS only")
    return url


def issue_token(node: Node, client_id: str, secret: str, grant_type: str | None,
                admit: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """RFC 6749 §4.4: an access token for a client that proves its secret; `admit` is called with the
    client's counterpart once it has, before the token is written (it may raise RateLimited)."""
    _tables(node.policies.engine)
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "this host grants client_credentials only")
    with node.policies.engine.connect() as c:
        row = c.execute(select(clients).where(clients.c.id == client_id[:64])).first()
    if row is None or not secrets.compare_digest(row.secret, _digest(secret)):
        raise OAuthError("invalid_client", "Authentication failed", 401)
    if row.revoked is not None:
        raise OAuthError("invalid_client", f"these credentials were revoked: {row.revoked_reason}", 401)
    if row.agreement is not None:
        try:
            a = node.policies.agreement(row.agreement)
        except NotFound:
            raise OAuthError("invalid_client", "the client's agreement is gone", 401) from None
        if a.ended:
            raise OAuthError("unauthorized_client", f"the client's agreement has ended: {a.ended}")
    if admit is not None:
        admit(row.counterpart)
    token = secrets.token_urlsafe(32)
    now = int(clock())
    with node.policies.engine.begin() as c:
        c.execute(tokens.delete().where(tokens.c.expires < now - EXPIRED_KEPT))
        c.execute(insert(tokens).values(digest=_digest(token), client=row.id, expires=now + TOKEN_SECONDS))
    return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}


def bearer(node: Node, authorization: str | None) -> Client:
    """The client a request's bearer token was issued to here; Refused (401) otherwise."""
    _tables(node.policies.engine)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused("Unauthorized", "no bearer token", "obtain one from /auth/token with client credentials")
    with node.policies.engine.connect() as c:
        row = c.execute(select(tokens).where(tokens.c.digest == _digest(token.strip()))).first()
        client = c.execute(select(clients).where(clients.c.id == row.client)).first() if row else None
    if row is None or client is None:
        raise Refused("Unauthorized", "the access token is not one this host issued",
                      "obtain one from this host's /auth/token")  # fmt: skip
    if client.revoked is not None:
        raise Refused("Unauthorized", f"the credentials of this token were revoked: {client.revoked_reason}")
    if row.expires <= clock():
        raise Refused("TokenExpired", "The specified access token has expired", "obtain a new one from /auth/token")
    return Client(client.id, client.counterpart, client.agreement, client.purpose, client.events)


# -- the footprints ---------------------------------------------------------------------------------


def footprint_datasets(node: Node) -> list[str]:
    """This node's datasets of footprints, as the ledger declares them."""
    state = node.ledger.state
    return [d for d, ds in state.datasets.items() if ds.owner == node.did and ds.kind == KIND]


def stored(node: Node, dataset: str) -> list[dict[str, Any]]:
    """The anchored footprints of `dataset`, in the order they were added, each with the status it
    has now: Deprecated once a later footprint names it among its precedingPfIds (the one change the
    spec allows after creation)."""
    anchored = node.ledger.state.datasets[dataset].anchored
    pfs = node.vault.records(dataset, 0, anchored)
    superseded = {i for pf in pfs for i in pf.get("precedingPfIds", ())}
    return [pf | {"status": "Deprecated"} if pf["id"] in superseded else pf for pf in pfs]


def add_footprints(node: Node, dataset: str, pfs: Sequence[Any]) -> list[str]:
    """Validate, seal and anchor footprints in `dataset` (created and declared if new). An id already
    there, a preceding id that is not, or any invalid footprint refuses all of them."""
    if not pfs:
        raise InvalidInput("no footprints given")
    for i, pf in enumerate(pfs):
        try:
            pact.validate_footprint(pf)
        except InvalidInput as e:
            raise InvalidInput(f"footprint {i}: {e.what}", e.fix) from None
    known = node.ledger.state.datasets.get(dataset)
    if known is not None and (known.owner != node.did or known.kind != KIND):
        whose = "" if known.owner == node.did else " of another member"
        raise Conflict(f"{dataset} is a {known.kind} dataset{whose}", "choose another dataset name for footprints")
    ids = {pf["id"].lower() for pd in footprint_datasets(node) for pf in node.vault.records(pd)}
    new = [pf["id"] for pf in pfs]
    if len({i.lower() for i in new}) != len(new) or ids & {i.lower() for i in new}:
        raise Conflict("a footprint id is given twice or already stored", "a changed footprint is a new one: "
                       "give it a new id and the old one in precedingPfIds")  # fmt: skip
    for pf in pfs:
        missing = {i for i in pf.get("precedingPfIds", ()) if i.lower() not in ids | {n.lower() for n in new}}
        if missing:
            raise InvalidInput(f"footprint {pf['id']}: precedingPfIds {sorted(missing)} are not footprints "
                               "of this node")  # fmt: skip
    if known is None:
        node.vault.create(dataset, KIND)
        node.submit([node.home.sign("dataset.declare", {"dataset": dataset, "title": "PACT v3 product footprints",
                                                         "kind": KIND})])  # fmt: skip
    batch = node.vault.add_batch(dataset, list(pfs))
    node.vault.mark_anchored(batch, node.anchor(batch))
    return new


def _values(params: Any, name: str) -> list[Any]:
    """Every value given for criterion `name`, under its name in any case: the spec's own example
    (openapi.yaml, ListFootprints) writes `productId=x&productid=y&validon=…` for one criterion each."""
    pairs = params.multi_items() if hasattr(params, "multi_items") else params.items()
    out: list[Any] = []
    for key, got in pairs:
        if not isinstance(key, str) or key.lower() != name.lower():
            continue
        if isinstance(got, list):
            out += got
        elif isinstance(got, str):
            out.append(got)
        else:
            raise Refused("BadRequest", f"{name} must be a string or a list of strings")
    return out


def criteria(params: Any) -> dict[str, Any]:
    """The spec's filter criteria from query parameters or a request event's data, checked: list
    criteria as lists, times as RFC 3339, status Active or Deprecated. Names are matched in any case, as
    the spec's example has them, and so are values; x-… extensions are refused (this host offers none)."""
    out: dict[str, Any] = {}
    for name in ("productId", "companyId", "geography", "classification"):
        vals = _values(params, name)
        if not all(isinstance(v, str) and 0 < len(v) <= 500 for v in vals):
            raise Refused("BadRequest", f"{name} must be one or more strings")
        if vals:
            out[name] = {v.lower() for v in vals}  # the spec: matched case-insensitively
    for name in ("validOn", "validAfter", "validBefore"):
        vals = _values(params, name)
        if len(vals) > 1:
            raise Refused("BadRequest", f"{name} is given once")
        if vals:
            try:
                t = datetime.fromisoformat(str(vals[0]).replace("Z", "+00:00"))
            except ValueError:
                raise Refused("BadRequest", f"{name} {str(vals[0])[:60]!r} is not an RFC 3339 date-time") from None
            out[name] = t if t.tzinfo else t.replace(tzinfo=UTC)
    status = _values(params, "status")
    if status:
        if len(status) > 1 or str(status[0]).lower() not in ("active", "deprecated"):
            raise Refused("BadRequest", "status must be Active or Deprecated")
        out["status"] = str(status[0]).lower()
    keys = params.keys() if hasattr(params, "keys") else ()
    for k in keys:
        if k.lower().startswith("x-"):
            raise Refused("NotImplemented", f"filter {k[:60]!r} is not implemented by this host")
    return out


def matches(pf: dict[str, Any], c: dict[str, Any]) -> bool:
    """Whether a footprint meets every criterion (OR within one, AND across them)."""
    pcf = pf["pcf"]

    def has(name: str, values: Any) -> bool:
        return name not in c or bool(c[name] & {str(v).lower() for v in values})

    geo = [pcf.get(k) for k in ("geographyRegionOrSubregion", "geographyCountry", "geographyCountrySubdivision")]
    if not (has("productId", pf["productIds"]) and has("companyId", pf["companyIds"])
            and has("classification", pf.get("productClassifications", ()))
            and has("geography", [g for g in geo if g])):  # fmt: skip
        return False
    start, end = pact.validity(pf)
    if "validOn" in c and not start <= c["validOn"] <= end:  # the filter's own rule: the end included
        return False
    if "validAfter" in c and not c["validAfter"] < start:
        return False
    if "validBefore" in c and not end < c["validBefore"]:
        return False
    return "status" not in c or pf["status"].lower() == c["status"]


def _agreed(node: Node, client: Client) -> Any:
    if client.agreement is None:
        raise Refused("AccessDenied", "these credentials grant no footprints: they carry no agreement",
                      "negotiate an agreement for the owner's footprints dataset")  # fmt: skip
    try:
        return node.policies.agreement(client.agreement)
    except NotFound:
        raise Refused("AccessDenied", "the credentials' agreement is not known here") from None


def _denied(node: Node, note: dict[str, Any]) -> None:
    """Record a denial on the ledger, repeats collapsed: the first of a recipient's denials under one
    agreement, point and rule goes on at once; those following within DENIAL_WINDOW seconds are counted
    here (across restarts) and go on as one entry whose `count` says how many it stands for, with the
    next one after the window or in the node's rounds (`flush_denials`). Call under `node.deciding`."""
    _tables(node.policies.engine)
    scope = note.get("agreement") or f"dataset {note['dataset']}"  # a negotiation's denial has no agreement yet
    key = sha256(f"{note['requester']}\n{scope}\n{note['point']}\n{note['rule']}".encode()).hex()
    now = int(clock())
    with node.policies.engine.connect() as c:
        row = c.execute(select(denials).where(denials.c.key == key)).first()
    if row is not None and now < row.since + DENIAL_WINDOW:
        with node.policies.engine.begin() as c:
            c.execute(update(denials).where(denials.c.key == key).values(pending=denials.c.pending + 1,
                                                                        note=orjson.dumps(note).decode()))  # fmt: skip
        return
    count = 1 + (row.pending if row is not None else 0)
    node.submit([node.home.sign("access.decision", note | ({"count": count} if count > 1 else {}))])
    with node.policies.engine.begin() as c:  # after the ledger holds them: a failed submit loses no count
        if row is None:
            c.execute(insert(denials).values(key=key, since=now, pending=0, note=orjson.dumps(note).decode()))
        else:
            c.execute(update(denials).where(denials.c.key == key).values(since=now, pending=0))


def record_denial(node: Node, note: dict[str, Any]) -> None:
    """Record a denial of any point (negotiation, transfer, use) as PACT's are: the first at once, its
    repeats within DENIAL_WINDOW counted into one entry (`flush_denials`). Call under `node.deciding`."""
    _denied(node, note)


def flush_denials(node: Node) -> int:
    """Put on the ledger the denials counted and not yet recorded whose window has passed (the node's
    rounds call this); returns how many entries were written."""
    _tables(node.policies.engine)
    now, written = int(clock()), 0
    with node.deciding:
        with node.policies.engine.connect() as c:
            due = c.execute(select(denials).where(denials.c.pending > 0,
                                                  denials.c.since + DENIAL_WINDOW <= now)).all()  # fmt: skip
        for row in due:
            note = orjson.loads(row.note) | ({"count": row.pending} if row.pending > 1 else {})
            node.submit([node.home.sign("access.decision", note)])
            with node.policies.engine.begin() as c:
                c.execute(update(denials).where(denials.c.key == row.key).values(since=now, pending=0))
            written += 1
    return written


def _refusal(a: Any, ask: Request, why: str) -> dict[str, Any]:
    """The access.decision of a denial no policy rule made (an ended agreement, a footprint outside it)."""
    note = {"dataset": a.dataset, "requester": ask.assignee, "action": ask.action, "point": "use",
            "allowed": False, "rule": "agreement", "reason": why[:1000], "agreement": a.uid}  # fmt: skip
    return note | ({"purpose": ask.purpose} if ask.purpose is not None else {})


def _decide(node: Node, client: Client, count: int, what: str) -> str | None:
    """Decide one use of the client's agreement and record it (a denial collapsed with its repeats):
    None when allowed, else why not."""
    a = _agreed(node, client)
    node.catch_up()
    at = datetime.fromtimestamp(clock(), UTC)
    with node.deciding:
        ask = Request("read", a.consumer, at, role=node.role_of(a.consumer), purpose=client.purpose,
                      uses=uses(node, a.uid), started=a.finalized)  # fmt: skip
        if a.ended:
            why = f"agreement {a.uid} has ended: {a.ended}"
            _denied(node, _refusal(a, ask, why))
            return why
        d = decide(a.policy, ask, point="use")
        payload = d.payload(a.dataset, ask, "use", agreement=a.uid, records=count)
        if d.allowed:
            node.submit([node.home.sign("access.decision", payload)])
            return None
        _denied(node, payload)
        return f"the agreement's policy denies {what}: {d.reason}"


def _use(node: Node, client: Client, count: int, what: str) -> None:
    """Decide and record one use of the client's agreement; Refused (AccessDenied) when its policy
    denies it or it has ended (the denial recorded as well)."""
    why = _decide(node, client, count, what)
    if why is not None:
        raise Refused("AccessDenied", why)


def listed(node: Node, client: Client, c: dict[str, Any]) -> list[dict[str, Any]]:
    """Every footprint the client's agreement covers that meets criteria `c` (no use recorded)."""
    a = _agreed(node, client)
    if a.dataset not in footprint_datasets(node):
        raise Refused("AccessDenied", f"agreement {a.uid} covers no footprints of this node")
    return [pf for pf in stored(node, a.dataset) if matches(pf, c)]


def list_page(node: Node, client: Client, c: dict[str, Any], offset: int, limit: int) -> tuple[list[dict], bool]:
    """One page of ListFootprints, decided and recorded as a use: (footprints, whether more follow)."""
    found = listed(node, client, c)
    page = found[offset : offset + limit]
    _use(node, client, len(page), "listing footprints")
    return page, offset + limit < len(found)


def get(node: Node, client: Client, pf_id: str) -> dict[str, Any]:
    """GetFootprint: the footprint if the client's agreement covers it (a use, recorded); NotFound when
    this node has none by that id, AccessDenied (recorded) when it lies outside the agreement."""
    a = _agreed(node, client)
    for dataset in footprint_datasets(node):
        for pf in stored(node, dataset):
            if pf["id"].lower() == pf_id.lower():
                if dataset != a.dataset:
                    at = datetime.fromtimestamp(clock(), UTC)
                    ask = Request("read", a.consumer, at, role=node.role_of(a.consumer), purpose=client.purpose)
                    why = f"footprint {pf_id} is outside agreement {a.uid} ({a.dataset})"
                    with node.deciding:
                        _denied(node, _refusal(a, ask, why))
                    raise Refused("AccessDenied", why)
                _use(node, client, 1, f"footprint {pf_id}")
                return pf
    raise Refused("NotFound", f"no footprint {pf_id[:80]!r} at this host")


# -- events -----------------------------------------------------------------------------------------


def _would_allow(node: Node, client: Client) -> str | None:
    """Why the client's agreement would deny a use now (nothing recorded), or None."""
    a = _agreed(node, client)
    at = datetime.fromtimestamp(clock(), UTC)
    ask = Request("read", a.consumer, at, role=node.role_of(a.consumer), purpose=client.purpose,
                  uses=uses(node, a.uid), started=a.finalized)  # fmt: skip
    if a.ended:
        return f"agreement {a.uid} has ended: {a.ended}"
    d = decide(a.policy, ask, point="use")
    return None if d.allowed else f"the agreement's policy denies a request for footprints: {d.reason}"


def _related(node: Node, owner: str) -> bool:
    """Whether the ledger shows `owner` agreed to give this node footprints: an allowed decision of its
    node, at negotiation or use, about a footprints dataset of its own, with this node as the requester."""
    key = (str(node.ledger.store.engine.url), node.did, owner)
    upto, found = _relations.get(key, (0, False))
    if found:
        return True
    q = select(entries.c.seq, entries.c.leaf).where(entries.c.type == "access.decision",
                                                    entries.c.submitter == owner, entries.c.seq >= upto)  # fmt: skip
    datasets = node.ledger.state.datasets
    with node.ledger.store.engine.connect() as c:
        for r in c.execute(q.order_by(entries.c.seq)):  # only what was appended since the last look
            p = orjson.loads(r.leaf)["payload"]
            ds = datasets.get(p["dataset"])
            upto = r.seq + 1
            if (p["allowed"] and p["requester"] == node.did and p["point"] in ("negotiation", "use")
                    and ds is not None and ds.owner == owner and ds.kind == KIND):  # fmt: skip
                found = True
                break
    _relations[key] = (upto, found)
    return found


_relations: dict[tuple[str, str, str], tuple[int, bool]] = {}  # how far the log was read for `_related`, and what


def receive_event(node: Node, client: Client, event: Any) -> str:
    """Accept a CloudEvent after checking it against the spec's schema and what the sender may send;
    returns its kind. A request must come from a recipient whose agreement would allow a use now (a
    denial is recorded; the use itself is recorded once, when it is answered); its source must be the
    events URL registered with the client. Responses are taken only for a request this node sent to that
    data owner, publications only from an owner the ledger shows agreed to give this node footprints;
    at most MAX_EVENTS are kept from one counterpart."""
    try:
        kind = pact.validate_event(event)
    except InvalidInput as e:
        raise Refused("BadRequest", e.what, e.fix) from None
    _tables(node.policies.engine)
    key = sha256(f"{event['source']}\n{event['id']}".encode()).hex()
    theirs = select(clients.c.id).where(clients.c.counterpart == client.counterpart)
    with node.policies.engine.connect() as conn:
        if conn.execute(select(events.c.key).where(events.c.key == key)).first():
            raise Refused("BadRequest", f"event {str(event['id'])[:80]!r} from this source was received already")
        kept = conn.execute(select(func.count()).select_from(events).where(events.c.client.in_(theirs))).scalar_one()
    if kept >= MAX_EVENTS:
        raise Refused("BadRequest", f"this host keeps at most {MAX_EVENTS} events from one organisation, and holds "
                      "that many of yours", "wait until the owner has dealt with them")  # fmt: skip
    if kind == "RequestCreatedEvent":
        c = criteria(event["data"])
        listed(node, client, c)  # refused here, synchronously, if the agreement covers no footprints
        if client.events is None or event["source"].removeprefix("//") != _source(client.events):
            raise Refused("BadRequest", f"source {str(event['source'])[:200]!r} is not the events URL registered for "
                          "these credentials", "register it when the credentials are issued (events URL)")  # fmt: skip
        try:  # an answer could go nowhere: refused now rather than accepted and never answered
            _at_node(node, client.counterpart, client.events)
        except PermissionDenied as e:
            raise Refused("AccessDenied", e.what, e.fix) from None
        why = _would_allow(node, client)
        if why is not None:  # refused at once, the spec's 4xx; the denial recorded like any other
            a = _agreed(node, client)
            ask = Request("read", a.consumer, datetime.fromtimestamp(clock(), UTC), role=node.role_of(a.consumer),
                          purpose=client.purpose)  # fmt: skip
            with node.deciding:
                _denied(node, _refusal(a, ask, why) | {"rule": "request"})
            raise Refused("AccessDenied", why)
    elif kind in ("RequestFulfilledEvent", "RequestRejectedEvent"):
        asked = _sent(node, client, event["data"]["requestEventId"])
        if asked is None:
            raise Refused("BadRequest", f"no request {str(event['data']['requestEventId'])[:80]!r} was sent to you")
        for pf in event["data"].get("pfs", ()):
            pact.validate_footprint(pf, lifecycle=False)
    elif kind == "PublishedEvent" and not _related(node, client.counterpart):
        raise Refused("AccessDenied", f"the ledger shows no agreement by which {client.counterpart} gives this "
                      "node footprints", "publications come from owners this node has an agreement with")  # fmt: skip
    try:
        with node.policies.engine.begin() as conn:  # the key is the primary key: of two at once, one is taken
            conn.execute(insert(events).values(key=key, client=client.id, type=kind, received=int(clock()),
                                               body=orjson.dumps(event).decode(), state="received"))  # fmt: skip
    except IntegrityError:
        raise Refused("BadRequest", f"event {str(event['id'])[:80]!r} from this source was received already") from None
    return kind


def _source(url: str) -> str:
    u = urlsplit(url)
    return f"{u.netloc}{u.path}".rstrip("/")


def _sent(node: Node, client: Client, request_id: Any) -> dict[str, Any] | None:
    """A request event this node sent to `client`'s organisation, by its id."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        rows = c.execute(select(events).where(events.c.type == "sent")).all()
    for r in rows:
        body = orjson.loads(r.body)
        if body["event"]["id"] == request_id and body["to"] == client.counterpart:
            return body
    return None


def pending_requests(node: Node) -> list[dict[str, Any]]:
    """Request events received and not yet answered, with the client each came from."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        rows = c.execute(select(events).where(events.c.type == "RequestCreatedEvent",
                                              events.c.state == "received")).all()  # fmt: skip
    return [{"key": r.key, "client": r.client, "event": orjson.loads(r.body)} for r in rows]


def answering(node: Node, key: str, base_url: str) -> Outbound:
    """The follow-up event for a received request, its use decided and recorded once, now: a
    RequestFulfilledEvent with the footprints its criteria select (as ListFootprints would list them), or
    a RequestRejectedEvent — NotFound when none, AccessDenied when the agreement no longer allows a use;
    to go to the events URL registered with the client (never what the event names), which must lie at
    the node the ledger records for the recipient. A request is answered once."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        row = c.execute(select(events).where(events.c.key == key)).first()
        client_row = c.execute(select(clients).where(clients.c.id == row.client)).first() if row else None
    if row is None or client_row is None or row.type != "RequestCreatedEvent":
        raise NotFound(f"no request event {key[:80]!r} was received")
    if row.state != "received":
        raise Conflict(f"request {key[:16]}… was answered already ({row.state})")
    client = Client(client_row.id, client_row.counterpart, client_row.agreement, client_row.purpose, client_row.events)
    if client.events is None:
        raise NotFound(f"request {key[:16]}… came under credentials with no events URL", "nowhere to answer")
    at = _at_node(node, client.counterpart, client.events)  # before any use is recorded for it
    request = orjson.loads(row.body)
    try:
        found = listed(node, client, criteria(request["data"]))
        why = _decide(node, client, len(found), "answering a request for footprints")
    except Refused as e:
        found, why = [], e.what
    source = "//" + _source(base_url.rstrip("/") + "/3/events")
    common = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
              "time": datetime.fromtimestamp(clock(), UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
    if why is None and found:
        event = common | {"type": "org.wbcsd.pact.ProductFootprint.RequestFulfilledEvent.3",
                          "data": {"requestEventId": request["id"], "pfs": found}}  # fmt: skip
    else:
        error = ({"code": "AccessDenied", "message": why[:1000]} if why is not None else
                 {"code": "NotFound", "message": "no footprint meets the criteria"})  # fmt: skip
        event = common | {"type": "org.wbcsd.pact.ProductFootprint.RequestRejectedEvent.3",
                          "data": {"requestEventId": request["id"], "error": error}}  # fmt: skip
    pact.validate_event(event)
    with node.policies.engine.begin() as c:
        c.execute(update(events).where(events.c.key == key).values(state="fulfilled" if "pfs" in event["data"]
                                                                    else "rejected"))  # fmt: skip
    return Outbound(client.counterpart, at, client.events, event)


def answer(node: Node, key: str, base_url: str) -> tuple[str, dict[str, Any]]:
    """`answering`, as (events URL, event)."""
    out = answering(node, key, base_url)
    return out.events, out.event


def request_event(criteria: dict[str, Any], own_events_url: str, comment: str | None = None) -> dict[str, Any]:
    """A RequestCreatedEvent asking a data owner for the footprints `criteria` select (the spec's
    filter names), its answers to come to `own_events_url`."""
    _https(own_events_url, "the events URL")
    at = datetime.fromtimestamp(clock(), UTC).isoformat().replace("+00:00", "Z")
    data = criteria | ({"comment": comment} if comment else {})
    event = {"type": "org.wbcsd.pact.ProductFootprint.RequestCreatedEvent.3", "specversion": "1.0",
             "id": str(uuid.uuid4()), "source": "//" + _source(own_events_url), "time": at, "data": data}  # fmt: skip
    pact.validate_event(event)
    return event


def announcing(node: Node, pf_ids: Sequence[str], base_url: str) -> list[Outbound]:
    """PublishedEvents for footprints just added: one per recipient and events URL of its live credentials
    whose agreement covers the dataset holding them (so each may then fetch every id it is told of), with
    the ids it may fetch; only events URLs at the node the ledger records for the recipient. An id this
    node does not hold is refused."""
    _tables(node.policies.engine)
    where = {pf["id"].lower(): d for d in footprint_datasets(node) for pf in stored(node, d)}
    unknown = [i for i in pf_ids if i.lower() not in where]
    if unknown or not pf_ids:
        raise NotFound(f"no footprint {unknown[0] if unknown else '(none given)'!r} at this node")
    with node.policies.engine.connect() as c:
        rows = c.execute(select(clients).where(clients.c.events.is_not(None), clients.c.agreement.is_not(None),
                                               clients.c.revoked.is_(None))).all()  # fmt: skip
    out, at = [], datetime.fromtimestamp(clock(), UTC).isoformat().replace("+00:00", "Z")
    for who, url in sorted({(r.counterpart, r.events) for r in rows}):
        try:
            there = _at_node(node, who, url)
        except PermissionDenied:
            continue  # registered before the ledger said otherwise: never sent to
        datasets = set()
        for r in rows:
            if (r.counterpart, r.events) != (who, url):
                continue
            try:
                a = node.policies.agreement(r.agreement)
            except NotFound:
                continue
            if not a.ended:
                datasets.add(a.dataset)
        ids = [i for i in pf_ids if where[i.lower()] in datasets]
        if ids:
            event = {"type": "org.wbcsd.pact.ProductFootprint.PublishedEvent.3", "specversion": "1.0",
                     "id": str(uuid.uuid4()), "source": "//" + _source(base_url.rstrip("/") + "/3/events"),
                     "time": at, "data": {"pfIds": ids}}  # fmt: skip
            pact.validate_event(event)
            out.append(Outbound(who, there, url, event))
    return out


def published(node: Node, pf_ids: Sequence[str], base_url: str) -> list[tuple[str, dict[str, Any]]]:
    """`announcing`, as (events URL, event) pairs."""
    return [(o.events, o.event) for o in announcing(node, pf_ids, base_url)]


def note_sent(node: Node, counterpart: str, event: dict[str, Any]) -> None:
    """Remember a request this node sent to `counterpart`, so its answer is taken from it alone."""
    _tables(node.policies.engine)
    key = sha256(f"sent\n{event['id']}".encode()).hex()
    with node.policies.engine.begin() as c:
        c.execute(insert(events).values(key=key, client="", type="sent", received=int(clock()), state="sent",
                                        body=orjson.dumps({"to": counterpart, "event": event}).decode()))  # fmt: skip


def received(node: Node, kind: str | None = None) -> list[dict[str, Any]]:
    """Events received, newest last (responses carry the footprints sent)."""
    _tables(node.policies.engine)
    q = select(events).where(events.c.type != "sent").order_by(events.c.received)
    with node.policies.engine.connect() as c:
        rows = c.execute(q).all()
    return [orjson.loads(r.body) for r in rows if kind in (None, r.type)]
