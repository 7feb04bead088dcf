"""The regional quality graph: a fold over the regulator's replica and the EPCIS documents members shared.

Nodes are organisations (with the region and industry of their `identity.register`), products, datasets,
certificates, models and batches; edges point downstream — a supplier to its customer, an organisation to
what it makes, owns, holds or publishes, a batch to what it was made into and to whom it was shipped — so
"everything downstream" of a supplier or a batch is the set of nodes reachable from it. Notifications,
inspections and regulator actions are attributes of the organisations they concern.

The graph is rustworkx's `PyDiGraph` (reachability in Rust; measured against networkx in
`benchmarks/graph.py`). It is folded incrementally: `update` reads only the entries appended since the last
one it folded. Transaction types other branches define (`notification.transition`, `inspection.result`,
`regulator.action`) are read by type when present, and their payloads only as far as their contract says;
a type this node does not know yet is simply absent.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import rustworkx as rx

from qdsn.errors import InvalidInput, NotFound
from qdsn.graph import divisions, documents, shared, svgmap
from qdsn.ledger.tx import is_did, txid

FINAL_STATES = ("CLOSED", "CANCELED")
SEVERITIES = ("MINOR", "MAJOR", "CRITICAL", "LIFE-THREATENING")
CHUNK = 50_000  # entries read from the store at a time


@dataclass(slots=True)
class Org:
    """A participant as the graph knows it."""

    did: str
    name: str
    role: str
    region: str | None
    industry: str | None
    seq: int
    suspended: bool = False


@dataclass(slots=True)
class Certificate:
    """A certificate on the ledger and its current status."""

    id: str
    issuer: str
    subject: str
    vct: str
    status: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "issuer": self.issuer, "subject": self.subject, "vct": self.vct,
                "status": self.status, "seq": self.seq}  # fmt: skip


@dataclass(slots=True)
class Notification:
    """A quality notification's parties and latest state (from its `notification.transition` entries)."""

    id: str
    sender: str
    recipient: str
    classification: str
    severity: str
    state: str
    seq: int

    @property
    def open(self) -> bool:
        """Sent and not yet CLOSED or CANCELED: a CREATED notification is its sender's draft, which no
        recipient has seen and nobody has to answer yet."""
        return self.state not in FINAL_STATES and self.state != "CREATED"


@dataclass(slots=True)
class Inspection:
    """A sampling-inspection result (`inspection.result`)."""

    enterprise: str
    product: str
    standard: str
    passed: bool
    date: str
    seq: int


class Relation:
    """A supply relation: the products named on it, who declared it, and where it was read from ("ledger",
    "epcis"). A plain class: one is made per relation folded, and a dataclass's factories cost twice as much."""

    __slots__ = ("declared_by", "entries", "products", "shared", "sources")

    def __init__(self, by: str, source: str) -> None:
        self.products: set[str] = set()
        self.declared_by = {by}
        self.sources = {source}
        self.entries: dict[str, tuple[str, str | None]] = {}  # declaring supply.relation id → (by, product)
        self.shared: tuple[set[str], set[str]] = (set(), set())  # sharers and products of EPCIS events

    def withdraw(self, entry: str) -> bool:
        """Leave one declaration out; returns whether anything still says the relation holds."""
        self.entries.pop(entry, None)
        sharers, shipped = self.shared
        self.declared_by = {by for by, _ in self.entries.values()} | sharers
        self.products = {p for _, p in self.entries.values() if p is not None} | shipped
        self.sources = ({"ledger"} if self.entries else set()) | ({"epcis"} if sharers else set())
        return bool(self.sources)

    def confirmed(self, supplier: str, customer: str) -> bool:
        """Both parties said so (each by a declaration or a shared event)."""
        return {supplier, customer} <= self.declared_by


@dataclass
class Impact:
    """Everything downstream of a supplier or a batch."""

    source: str
    kind: str  # "supplier" or "batch"
    enterprises: list[dict[str, Any]]
    products: list[dict[str, str]]
    batches: list[str]
    certificates: list[dict[str, Any]]
    datasets: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RegionGraph:
    """The graph of one replica (and the shared documents folded into it)."""

    def __init__(self) -> None:
        self._graph: rx.PyDiGraph = rx.PyDiGraph(multigraph=False)
        self.size = 0  # entries of the log folded so far
        self.orgs: dict[str, Org] = {}
        self.certificates: dict[str, Certificate] = {}
        self.notifications: dict[str, Notification] = {}
        self.inspections: list[Inspection] = []
        self.models: dict[str, str] = {}  # "id@version" → publisher
        self.datasets: dict[str, str] = {}  # dataset → owner
        self.relations: dict[tuple[str, str], Relation] = {}
        self._declared: dict[str, tuple[str, str]] = {}  # supply.relation id → (supplier, customer)
        self.documents: set[str] = set()  # shared documents folded, by digest
        self._nodes: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []  # node index → (kind, key)
        self._edges: dict[tuple[int, int], str] = {}
        self._pending: list[tuple[int, int, str]] = []  # edges not yet in `graph`

    # -- building ------------------------------------------------------------------------------

    # Nodes and edges are numbered here and handed to rustworkx in bulk when a query needs the graph: one
    # `add_edges_from` of the edges folded since, instead of a call (and a duplicate check) per edge.
    def _node(self, kind: str, key: str) -> int:
        at = self._nodes.get((kind, key))
        if at is None:
            at = self._nodes[(kind, key)] = len(self._keys)
            self._keys.append((kind, key))
        return at

    def _edge(self, a: tuple[str, str], b: tuple[str, str], what: str) -> None:
        nodes = self._nodes
        x = nodes.get(a)
        if x is None:
            x = nodes[a] = len(self._keys)
            self._keys.append(a)
        y = nodes.get(b)
        if y is None:
            y = nodes[b] = len(self._keys)
            self._keys.append(b)
        if (x, y) not in self._edges:
            self._edges[(x, y)] = what
            self._pending.append((x, y, what))

    @property
    def graph(self) -> rx.PyDiGraph:
        """The rustworkx graph of everything folded so far; node payloads are (kind, key)."""
        g = self._graph
        if g.num_nodes() < len(self._keys):
            g.add_nodes_from(self._keys[g.num_nodes() :])
        if self._pending:
            g.add_edges_from(self._pending)
            self._pending = []
        return g

    def update(self, store: Any) -> int:
        """Fold the entries `store` (a `ledger.store.Store`) holds beyond those already folded; returns how
        many were read. Only the types the graph reads are fetched."""
        start = self.size
        types = [*_FOLDS, *_BY_ENTRY]
        m = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
        sql = (f"SELECT seq, type, submitter, leaf FROM entries WHERE seq >= {m} AND seq < {m} "
               f"AND type IN ({', '.join([m] * len(types))}) ORDER BY seq")  # fmt: skip
        folds = _FOLDS
        loads = orjson.loads
        end = store.size
        conn = store.engine.raw_connection()  # plain driver rows: SQLAlchemy's row objects cost more than the fold
        # The fold makes hundreds of thousands of small containers that live as long as the graph: the cyclic
        # collector's passes over them cost a third to a half of a build, and find nothing to free.
        collecting = gc.isenabled()
        gc.disable()
        try:
            cur = conn.cursor()
            while self.size < end:
                upto = min(end, self.size + CHUNK)
                cur.execute(sql, (self.size, upto, *types))
                for seq, type_, submitter, leaf in cur.fetchall():
                    if type_ in _BY_ENTRY:  # a withdrawal names the declaration by its entry's id
                        _BY_ENTRY[type_](self, seq, submitter, loads(leaf)["payload"], txid(bytes(leaf)))
                    else:
                        folds[type_](self, seq, submitter, loads(leaf)["payload"])
                self.size = upto
        finally:
            conn.close()
            if collecting:
                gc.enable()
        return self.size - start

    def fold(self, seq: int, type: str, submitter: str, payload: Mapping[str, Any], entry: str | None = None) -> None:
        """Fold one entry of the log (already validated by the replica) at position `seq`; `entry`, its id
        (what a supply relation's withdrawal names it by)."""
        if seq < self.size:
            raise InvalidInput(f"entry {seq} folded out of order: the graph holds {self.size} entries",
                               "fold the log from where the graph stands")  # fmt: skip
        if type in _BY_ENTRY:
            _BY_ENTRY[type](self, seq, submitter, payload, entry or f"entry {seq}")
        elif (fold := _FOLDS.get(type)) is not None:
            fold(self, seq, submitter, payload)
        self.size = seq + 1

    def add_shared(self, doc: Mapping[str, Any], sharer: str, digest: str) -> shared.Reading:
        """Fold an EPCIS document `sharer` (a registered enterprise) shared; each document once, by digest."""
        if self.orgs.get(sharer) is None or self.orgs[sharer].role != "enterprise":
            raise NotFound(f"{sharer} is not a registered enterprise of this log",
                           "give the DID of the member that shared the document")  # fmt: skip
        reading = shared.read(doc, sharer)
        if digest in self.documents:
            return reading
        self.documents.add(digest)
        for s in reading.shipments:
            unknown = [d for d in (s.supplier, s.customer) if d not in self.orgs or self.orgs[d].role != "enterprise"]
            if unknown:
                reading.skipped.append((s.event, f"{unknown[0]} is not an enterprise member of this log"))
                continue
            self._relation(s.supplier, s.customer, sharer, "epcis", None)
            rel = self.relations[(s.supplier, s.customer)]
            rel.shared[0].add(sharer)
            for b in s.batches:
                product = shared.product_of(b)
                rel.shared[1].add(product)
                self._relation_product(s.supplier, s.customer, product)
                self._edge(("org", s.supplier), ("product", f"{s.supplier} {product}"), "makes")
                self._edge(("product", f"{s.supplier} {product}"), ("batch", b), "batch")
                self._edge(("batch", b), ("org", s.customer), "shipped to")
        for t in reading.transformations:
            for o in t.outputs:
                product = shared.product_of(o)
                self._edge(("org", t.maker), ("product", f"{t.maker} {product}"), "makes")
                self._edge(("product", f"{t.maker} {product}"), ("batch", o), "batch")
                for i in t.inputs:
                    self._edge(("batch", i), ("batch", o), "made into")
        return reading

    def _relation(self, supplier: str, customer: str, by: str, source: str, product: str | None,
                  entry: str | None = None) -> None:  # fmt: skip
        rel = self.relations.get((supplier, customer))
        if rel is None:
            rel = self.relations[(supplier, customer)] = Relation(by, source)
            self._edge(("org", supplier), ("org", customer), "supplies")
        else:
            rel.declared_by.add(by)
            rel.sources.add(source)
        if entry is not None:
            rel.entries[entry] = (by, product)
            self._declared[entry] = (supplier, customer)
        if product is not None:
            self._relation_product(supplier, customer, product)

    def _withdraw(self, entry: str) -> None:
        """A declared relation withdrawn: without it (and nothing else saying so) supply no longer flows."""
        pair = self._declared.pop(entry, None)
        rel = self.relations.get(pair) if pair is not None else None
        if rel is None or rel.withdraw(entry):
            return
        del self.relations[pair]
        x, y = self._nodes[("org", pair[0])], self._nodes[("org", pair[1])]
        if self._edges.pop((x, y), None) is not None:
            before = len(self._pending)
            self._pending = [e for e in self._pending if e[:2] != (x, y)]
            if len(self._pending) == before:  # already handed to rustworkx
                self._graph.remove_edge(x, y)

    def _relation_product(self, supplier: str, customer: str, product: str) -> None:
        self.relations[(supplier, customer)].products.add(product)
        self._edge(("org", supplier), ("product", f"{supplier} {product}"), "makes")

    # -- queries -------------------------------------------------------------------------------

    def org(self, did: str) -> Org:
        """A participant by DID; NotFound says what to give otherwise."""
        if not is_did(did):
            raise InvalidInput(f"{did!r} is not a DID", "give a member's DID (did:key:z6Mk… or did:web:…)")
        found = self.orgs.get(did)
        if found is None:
            raise NotFound(f"{did} is not a participant of this log", "`qdsn member list` shows the members")
        return found

    def recall(self, source: str) -> Impact:
        """Everything downstream of a supplier (a member's DID) or of a batch (an EPC or EPC class a shared
        EPCIS document named). Cycles in supply are fine: reachability visits each node once."""
        if source.startswith("did:"):
            kind, start = "supplier", self._nodes.get(("org", self.org(source).did))
        else:
            kind, start = "batch", self._nodes.get(("batch", source))
            if start is None:
                raise NotFound(f"batch {source!r} is in no EPCIS event shared with this node",
                               "give an EPC or EPC class as the shared events name it, or a supplier's DID"
                               )  # fmt: skip
        reached = rx.descendants(self.graph, start) if start is not None else set()
        return self._impact(source, kind, reached)

    def _impact(self, source: str, kind: str, reached: Iterable[int]) -> Impact:
        by: dict[str, list[str]] = defaultdict(list)
        keys = self._keys
        for i in reached:
            k, key = keys[i]
            by[k].append(key)
        enterprises = [self._org_row(d) for d in sorted(by["org"]) if d != source]
        products = [dict(zip(("maker", "product"), p.split(" ", 1), strict=True)) for p in sorted(by["product"])]
        certs = [self.certificates[c].to_json() for c in sorted(by["certificate"])]
        return Impact(source, kind, enterprises, products, sorted(by["batch"]), certs, sorted(by["dataset"]))

    def _org_row(self, did: str) -> dict[str, Any]:
        o = self.orgs[did]
        return {"did": o.did, "name": o.name, "role": o.role, "region": o.region, "industry": o.industry,
                "suspended": o.suspended}  # fmt: skip

    def enterprises(self, region: str | None = None, industry: str | None = None) -> list[Org]:
        """The registered enterprises, within a GB/T 2260 division and an industry code prefix when given."""
        if region is not None:
            divisions.known(region)
        rows = []
        for o in self.orgs.values():
            if o.role != "enterprise":
                continue
            if region is not None and not _within(o.region, region):
                continue
            if industry is not None and not (o.industry or "").startswith(industry):
                continue
            rows.append(o)
        return rows

    def coverage(self, by: str = "region", level: str = "province", region: str | None = None) -> list[dict[str, Any]]:
        """Certification coverage per region (at `level`) or per industry (GB/T 4754 section and division):
        enterprises, how many hold a valid certificate, the share, and certificates by status."""
        if by not in ("region", "industry"):
            raise InvalidInput(f"coverage by {by!r}", "give region or industry")
        if level not in divisions.LEVELS:
            raise InvalidInput(f"level {level!r} is not one of {', '.join(divisions.LEVELS)}")
        held: dict[str, Counter[str]] = defaultdict(Counter)
        for c in self.certificates.values():
            held[c.subject][c.status] += 1
        groups: dict[str, dict[str, Any]] = {}
        for o in self.enterprises(region):
            if by == "region":
                key = divisions.rollup(o.region, level) if o.region else "unknown"
            else:
                key = o.industry[:3] if o.industry else "unknown"
            g = groups.setdefault(key, {"key": key, "enterprises": 0, "certified": 0, "valid": 0, "suspended": 0,
                                        "invalid": 0})  # fmt: skip
            g["enterprises"] += 1
            g["certified"] += held[o.did]["valid"] > 0
            for status in ("valid", "suspended", "invalid"):
                g[status] += held[o.did][status]
        for g in groups.values():
            g["share"] = round(g["certified"] / g["enterprises"], 4)
            if by == "region":
                g["name"] = divisions.name(g["key"]) if g["key"] != "unknown" else "未知"
        return sorted(groups.values(), key=lambda g: g["key"])

    def open_notifications(self, region: str | None = None) -> list[dict[str, Any]]:
        """Enterprises party to a notification sent and not yet CLOSED or CANCELED (nor, for its recipient,
        DECLINED): how many, of which classification, the highest severity, and the ids."""
        wanted = {o.did for o in self.enterprises(region)}
        rows: dict[str, dict[str, Any]] = {}
        for n in self.notifications.values():
            if not n.open:
                continue
            for did, side in ((n.sender, "sender"), (n.recipient, "recipient")):
                if did not in wanted or (side == "recipient" and n.state == "DECLINED"):
                    continue  # a recipient that declined has answered; only its sender still owes a close
                r = rows.get(did)
                if r is None:
                    r = rows[did] = self._org_row(did) | {
                        "open": 0,
                        "alert": 0,
                        "investigation": 0,
                        "severity": SEVERITIES[0],
                        "notifications": [],
                    }
                r["open"] += 1
                if n.classification in ("alert", "investigation"):
                    r[n.classification] += 1
                if _rank(n.severity) > _rank(r["severity"]):
                    r["severity"] = n.severity
                r["notifications"].append({"id": n.id, "state": n.state, "severity": n.severity, "as": side})
        return sorted(rows.values(), key=lambda r: (-_rank(r["severity"]), -r["open"], r["did"]))

    def suppliers(self, product: str | None = None, region: str | None = None, confirmed: bool = False,
                  top: int = 10) -> dict[str, Any]:  # fmt: skip
        """Concentration of suppliers: customers per supplier, the Herfindahl-Hirschman index of the
        suppliers' shares of supply relations (0-10,000), its equivalent number of suppliers, the top
        suppliers, and the customers with a single supplier. `product` keeps relations naming it, `region`
        those whose customer lies there, `confirmed` those both parties declared."""
        if region is not None:
            divisions.known(region)
        customers: dict[str, set[str]] = defaultdict(set)
        sources: dict[str, set[str]] = defaultdict(set)
        for (s, c), rel in self.relations.items():
            if product is not None and product not in rel.products:
                continue
            if confirmed and not rel.confirmed(s, c):
                continue
            if region is not None and not _within(self.orgs[c].region, region):
                continue
            customers[s].add(c)
            sources[c].add(s)
        total = sum(len(v) for v in customers.values())
        hhi = sum((len(v) / total * 100) ** 2 for v in customers.values()) if total else 0.0
        ranked = sorted(customers.items(), key=lambda kv: (-len(kv[1]), kv[0]))[: max(top, 0)]
        return {
            "relations": total,
            "suppliers": len(customers),
            "customers": len(sources),
            "hhi": round(hhi, 1),
            "equivalent_suppliers": round(10_000 / hhi, 2) if hhi else 0.0,
            "single_sourced": sorted(c for c, s in sources.items() if len(s) == 1),
            "top": [self._org_row(s) | {"customers": len(cs), "share": round(len(cs) / total, 4)}
                    for s, cs in ranked],
        }  # fmt: skip

    def indicator(self, name: str, level: str, within: str | None = None) -> dict[str, float]:
        """One indicator per region at `level` (inside the division `within`, when given): `enterprises`,
        `coverage` (share holding a valid certificate), `suspended` (certificates), `open` (enterprises with
        open notifications), `failed` (share of inspections failed)."""
        if name not in INDICATORS:
            raise InvalidInput(f"indicator {name!r} is not one of {', '.join(INDICATORS)}")
        if name in ("enterprises", "coverage", "suspended"):
            field_ = {"enterprises": "enterprises", "coverage": "share", "suspended": "suspended"}[name]
            return {g["key"]: g[field_] for g in self.coverage("region", level, within) if g["key"] != "unknown"}
        values: Counter[str] = Counter()
        totals: Counter[str] = Counter()
        if name == "open":
            for r in self.open_notifications(within):
                if r["region"]:
                    values[divisions.rollup(r["region"], level)] += 1
            return dict(values)
        for i in self.inspections:
            o = self.orgs.get(i.enterprise)
            if o is None or not o.region or (within and not _within(o.region, within)):
                continue
            key = divisions.rollup(o.region, level)
            totals[key] += 1
            values[key] += not i.passed
        return {k: round(values[k] / totals[k], 4) for k in totals}

    def summary(self) -> dict[str, int]:
        """How much the graph holds."""
        kinds = Counter(k for k, _ in self._keys)
        return {"entries": self.size, "nodes": len(self._keys), "edges": len(self._edges),
                "enterprises": sum(o.role == "enterprise" for o in self.orgs.values()),
                "products": kinds["product"], "datasets": kinds["dataset"], "certificates": kinds["certificate"],
                "models": kinds["model"], "batches": kinds["batch"], "relations": len(self.relations),
                "notifications": len(self.notifications), "inspections": len(self.inspections),
                "shared_documents": len(self.documents)}  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """Everything the graph holds, in a canonical order: two graphs of the same log compare equal."""
        edges = sorted((self._keys[a], self._keys[b], w) for (a, b), w in self._edges.items())
        return {
            "size": self.size,
            "orgs": sorted(asdict(o).items() for o in self.orgs.values()),
            "certificates": sorted(asdict(c).items() for c in self.certificates.values()),
            "notifications": sorted(asdict(n).items() for n in self.notifications.values()),
            "inspections": sorted(asdict(i).items() for i in self.inspections),
            "models": sorted(self.models.items()),
            "datasets": sorted(self.datasets.items()),
            "relations": sorted((k, sorted(r.products), sorted(r.declared_by), sorted(r.sources))
                                for k, r in self.relations.items()),
            "nodes": sorted(self._nodes),
            "edges": edges,
        }  # fmt: skip


INDICATORS = ("enterprises", "coverage", "suspended", "open", "failed")
INDICATOR_NAMES = {"enterprises": "企业数", "coverage": "认证覆盖率", "suspended": "暂停证书数",
                   "open": "未结通报企业数", "failed": "抽检不合格率"}  # fmt: skip


def _within(code: str | None, division: str) -> bool:
    """Whether the division `code` lies in (or is) `division`."""
    if not code:
        return False
    level = divisions.level_of(division)
    return code.startswith(division[:2] if level == "province" else division[:4] if level == "prefecture" else division)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


# -- the fold, one function per transaction type ---------------------------------------------------


def _register(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    g.orgs[p["did"]] = Org(p["did"], p["name"], p["role"], p.get("region"), p.get("industry"), seq)
    g._node("org", p["did"])


def _declare(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    g.datasets[p["dataset"]] = submitter
    g._edge(("org", submitter), ("dataset", p["dataset"]), "owns")


def _model(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    key = f"{p['model']}@{p['version']}"
    g.models[key] = submitter
    g._edge(("org", submitter), ("model", key), "publishes")


def _issue(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    g.certificates[p["credential"]] = Certificate(p["credential"], submitter, p["subject"], p["vct"], "valid", seq)
    g._edge(("org", p["subject"]), ("certificate", p["credential"]), "holds")


def _status(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    c = g.certificates.get(p["credential"])
    if c is not None:
        c.status, c.seq = p["status"], seq


def _supply(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any], entry: str) -> None:
    g._relation(p["supplier"], p["customer"], submitter, "ledger", p.get("product"), entry)


def _supply_withdrawn(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any], entry: str) -> None:
    g._withdraw(p["relation"])


def _notification(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    # Read as the contract of `notification.transition` says; the branch that defines it validates it.
    nid, state = p.get("notification"), p.get("state")
    if not isinstance(nid, str) or not isinstance(state, str):
        return
    n = g.notifications.get(nid)
    if n is None:
        g.notifications[nid] = Notification(nid, str(p.get("sender", "")), str(p.get("recipient", "")),
                                            str(p.get("classification", "")), str(p.get("severity", "")), state,
                                            seq)  # fmt: skip
    else:
        n.state, n.seq = state, seq
        if isinstance(p.get("severity"), str):
            n.severity = p["severity"]


def _inspection(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    who, product = p.get("enterprise"), p.get("product")
    if not isinstance(who, str) or not isinstance(product, str) or not isinstance(p.get("passed"), bool):
        return
    g.inspections.append(Inspection(who, product, str(p.get("standard", "")), p["passed"], str(p.get("date", "")),
                                    seq))  # fmt: skip
    if who in g.orgs:
        g._edge(("org", who), ("product", f"{who} {product}"), "makes")


def _action(g: RegionGraph, seq: int, submitter: str, p: Mapping[str, Any]) -> None:
    o = g.orgs.get(str(p.get("subject")))
    if p.get("scope") == "member" and o is not None and p.get("action") in ("suspend", "reinstate"):
        o.suspended = p["action"] == "suspend"


_FOLDS = {
    "identity.register": _register,
    "dataset.declare": _declare,
    "model.publish": _model,
    "credential.issue": _issue,
    "credential.status": _status,
    "notification.transition": _notification,
    "inspection.result": _inspection,
    "regulator.action": _action,
}


_BY_ENTRY = {"supply.relation": _supply, "supply.withdraw": _supply_withdrawn}


def draw_map(g: RegionGraph, indicator: str = "coverage", province: str | None = None,
             boundaries: svgmap.Boundaries | None = None) -> tuple[str, str, dict[str, float]]:  # fmt: skip
    """The map SVG of one indicator, its level and its values by code. Provinces, unless `province` is given or
    every enterprise lies in one province: then the divisions below it (prefectures, or a municipality's
    districts). With `boundaries`, the operator's boundaries at the level of their codes instead of tiles."""
    if indicator not in INDICATORS:
        raise InvalidInput(f"indicator {indicator!r} is not one of {', '.join(INDICATORS)}")
    share = indicator in ("coverage", "failed")
    title_of = f"{INDICATOR_NAMES[indicator]} ({indicator})"
    if boundaries is not None:
        level = divisions.level_of(next(iter(boundaries.regions)))
        values = {c: v for c, v in g.indicator(indicator, level).items() if c in boundaries.regions}
        return svgmap.boundary_map(boundaries, values, f"区域质量图谱 · {title_of}", share), level, values
    if province is None:
        provinces = {o.region[:2] for o in g.enterprises() if o.region}
        province = next(iter(provinces)) + "0000" if len(provinces) == 1 else None
    if province is None:
        values = g.indicator(indicator, "province")
        tiles = svgmap.province_tiles()
        return svgmap.tile_map(tiles, values, f"区域质量图谱 · 全国 · {title_of}", share), "province", values
    divisions.known(province)
    if divisions.level_of(province) != "province":
        raise InvalidInput(f"{province} is not a province", "give a province's code, e.g. 330000")
    level = divisions.below(province)
    values = g.indicator(indicator, level, province)
    codes = [divisions.rollup(o.region, level) for o in g.enterprises(province) if o.region]
    codes = [c for c in codes if c != province]  # an enterprise registered at the province itself has no tile
    name = divisions.name(province)
    svg = svgmap.tile_map(svgmap.inner_tiles(codes), values, f"区域质量图谱 · {name} · {title_of}", share)
    return svg, level, values


def of_replica(store: Any, home: Path | None = None, graph: RegionGraph | None = None) -> RegionGraph:
    """`graph` (or a new one) brought up to the replica `store`, with the documents shared with the node at
    `home` folded in (each once)."""
    g = graph or RegionGraph()
    g.update(store)
    if home is not None:
        for name, sharer, doc in documents.shared(home, g.documents):
            g.add_shared(doc, sharer, name)
    return g
