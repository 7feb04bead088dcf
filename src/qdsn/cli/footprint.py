"""`qdsn footprint`: PACT v3 product carbon footprints — the owner's (add, list, show, compute,
client) and a buyer's (credentials, fetch)."""

from __future__ import annotations

import json
import os
import ssl
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from qdsn.cli.certify import reaching
from qdsn.cli.common import Home, Operator, OperatorCA, console, id_column, linked_node, open_node, peer_client, shown
from qdsn.crypto import sha256
from qdsn.errors import InvalidInput, NotFound
from qdsn.net.outbound import Policy

footprint_app = typer.Typer(
    help="PACT v3 product carbon footprints: kept, computed, served to agreed recipients, fetched.",
    no_args_is_help=True,
)
Dataset = Annotated[str, typer.Option(help="The footprints dataset (kind footprints) of this node.")]
CA = Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for the host's HTTPS.")]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{path} is not JSON: {e.msg} (line {e.lineno})",
                           "give a PACT v3 ProductFootprint") from None  # fmt: skip


def _footprints_in(doc: Any, path: Path) -> list[Any]:
    """A ProductFootprint, a list of them, or a ListFootprints answer ({"data": [...]})."""
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return doc["data"]
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        return [doc["data"]]
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and "pcf" in doc:
        return [doc]
    raise InvalidInput(f"{path} holds no ProductFootprint",
                       'give one ({"id": …, "pcf": {…}}), a list, or {"data": […]}')  # fmt: skip


@footprint_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="A PACT v3 ProductFootprint (JSON), a list of them or {data: [...]}.")],
    home: Home,
    dataset: Dataset = "footprints",
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Check footprints against the PACT v3 schema, then seal them in the vault and anchor them."""
    from qdsn.node import pact

    pfs = _footprints_in(_read_json(file), file)
    node = linked_node(home, operator, operator_ca)
    try:
        added = pact.add_footprints(node, dataset, pfs)
    finally:
        node.close()
    console.print(f"[green]✓[/] {len(added)} footprint(s) added to {dataset} and anchored: {', '.join(added)}")


def _owned(home: Path, dataset: str | None) -> list[tuple[str, dict[str, Any]]]:
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        sets = pact.footprint_datasets(node)
        if dataset is not None and dataset not in sets:
            raise NotFound(f"{dataset} is not a footprints dataset of this node",
                           f"use one of: {', '.join(sets) or 'none yet (qdsn footprint add)'}")  # fmt: skip
        return [(d, pf) for d in sets if dataset in (None, d) for pf in pact.stored(node, d)]
    finally:
        node.close()


@footprint_app.command("list")
def list_(
    home: Home,
    dataset: Annotated[str | None, typer.Option(help="Only this footprints dataset.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="PACT JSON ({data: [...]}).")] = False,
) -> None:
    """This node's footprints: id, product, footprint per declared unit, status."""
    rows = _owned(home, dataset)
    if as_json:
        console.print_json(orjson.dumps({"data": [pf for _, pf in rows]}).decode())
        return
    table = Table("dataset", "id", "product", "kg CO2e", "per", "status", "reference period")
    id_column(table, "id")
    for d, pf in rows:
        pcf = pf["pcf"]
        table.add_row(d, pf["id"], shown(", ".join(pf["productIds"])), pcf["pcfExcludingBiogenicUptake"],
                      f"{pcf['declaredUnitAmount']} {pcf['declaredUnitOfMeasurement']}", pf["status"],
                      f"{pcf['referencePeriodStart'][:10]} – {pcf['referencePeriodEnd'][:10]}")  # fmt: skip
    console.print(table)


@footprint_app.command("show")
def show(pf_id: Annotated[str, typer.Argument(help="The footprint's id (a UUID).")], home: Home) -> None:
    """One of this node's footprints, as PACT JSON."""
    for _, pf in _owned(home, None):
        if pf["id"].lower() == pf_id.lower():
            console.print_json(orjson.dumps(pf).decode())
            return
    raise NotFound(f"this node has no footprint {pf_id!r}", "list them with qdsn footprint list")


@footprint_app.command("tables")
def tables() -> None:
    """The emission factor tables QDSN ships, with who published their figures."""
    from qdsn.footprint import calc

    for name in calc.builtin_tables():
        t = calc.load_table(name)
        console.print(f"[bold]{name}[/] {t['version']} — {t['title']}", highlight=False)
        for s in t["sources"]:
            console.print(f"  source: {s['name']} ({s.get('published', '')})", highlight=False)


@footprint_app.command("compute")
def compute(
    dataset: Annotated[str, typer.Argument(help="The activity dataset (kind activity) of this node.")],
    product: Annotated[str, typer.Option(help="The product, as its activity records name it.")],
    home: Home,
    table: Annotated[str, typer.Option(help="An emission factor table: a shipped name or a JSON file.")] = (
        "cn-mee-nbs-2022"
    ),
    pact_out: Annotated[Path | None, typer.Option("--pact", help="Write a PACT v3 ProductFootprint here.")] = None,
    company_name: Annotated[str | None, typer.Option(help="For --pact: the company's name.")] = None,
    company_id: Annotated[str | None, typer.Option(help="For --pact: the company's URN, e.g. urn:uscc:91…")] = None,
    description: Annotated[str | None, typer.Option(help="For --pact: the product's description.")] = None,
    mass: Annotated[str | None, typer.Option(help="For --pact: kg of product per declared unit.")] = None,
) -> None:
    """The product's footprint from this node's anchored activity data (for the owner's own view; a
    certifier asks for the attested run of the product-footprint model instead)."""
    from qdsn.footprint import calc, pactdoc
    from qdsn.node import Node

    factors = calc.load_table(table)
    node = Node(open_node(home), operator=False)
    try:
        ds = node.ledger.state.datasets.get(dataset)
        if ds is None or ds.owner != node.did or ds.kind != "activity":
            raise NotFound(f"{dataset} is not an activity dataset of this node", "create one with --kind activity")
        records = node.vault.records(dataset, 0, ds.anchored)
    finally:
        node.close()
    fp = calc.compute(records, factors, product)
    console.print(f"[bold]{escape(product)}[/]: {fp.pcf} kg CO2e per {fp.declared_unit} "
                  f"({fp.emissions} kg CO2e over {fp.output} {fp.declared_unit}, {fp.records} records; "
                  f"table {fp.table['id']} {fp.table['version']})", highlight=False)  # fmt: skip
    for cat, kg in fp.by_category.items():
        console.print(f"  {cat}: {kg} kg CO2e", highlight=False)
    if pact_out is not None:
        if not (company_name and company_id and description):
            raise InvalidInput("--pact needs --company-name, --company-id and --description")
        period = [r for r in records if r.get("product") == product]
        doc = pactdoc.product_footprint(fp, factors, company_name=company_name, company_id=company_id,
                                        description=description, start=min(r["start"] for r in period),
                                        end=max(r["end"] for r in period), mass=mass)  # fmt: skip
        pact_out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        console.print(f"[green]✓[/] PACT v3 ProductFootprint {doc['id']} written to {pact_out}")


@footprint_app.command("client")
def client(
    agreement: Annotated[str, typer.Option(help="A finalized agreement for one of this node's footprints datasets.")],
    home: Home,
    purpose: Annotated[str | None, typer.Option(help="The purpose its uses are decided for.")] = None,
    events: Annotated[str | None, typer.Option(help="The recipient's https events URL, for answers.")] = None,
) -> None:
    """PACT client credentials for the consumer of an agreement (the secret is shown once)."""
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        creds = pact.add_client(node, agreement=agreement, purpose=purpose, events_url=events)
    finally:
        node.close()
    console.print_json(orjson.dumps(creds).decode())


def _kept(home: Path, host: str) -> Path:
    from urllib.parse import urlsplit

    return home / "pact-credentials" / f"{urlsplit(host).netloc.replace(':', '_') or 'host'}.json"


@footprint_app.command("credentials")
def credentials(
    maker: Annotated[str, typer.Argument(help="The footprint owner's node, e.g. https://maker:8420.")],
    agreement: Annotated[str, typer.Option(help="This node's agreement for the owner's footprints.")],
    home: Home,
    purpose: Annotated[str | None, typer.Option(help="The purpose, as the agreement's policy asks.")] = None,
    ca: CA = None,
) -> None:
    """Ask the owner's node (a signed request) for PACT client credentials under an agreement; they are
    kept in this home (mode 0600) for `qdsn footprint fetch`."""
    node_home = open_node(home)
    c = peer_client(node_home, maker, ca)
    try:
        with reaching(maker):
            body = {"agreement": agreement} | ({"purpose": purpose} if purpose else {})
            creds = c.call("POST", "/pact/clients", body)
    finally:
        c.close()
    if not isinstance(creds, dict) or not all(isinstance(creds.get(k), str) for k in ("client_id", "client_secret")):
        raise InvalidInput("the owner's node answered with no client credentials")
    path = _kept(node_home.path, maker)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            orjson.dumps(
                {
                    "host": maker,
                    "client_id": creds["client_id"],
                    "client_secret": creds["client_secret"],
                    "owner": creds.get("owner"),
                }
            )
        )
    console.print(f"[green]✓[/] credentials {creds['client_id']} kept in {path}")


@footprint_app.command("fetch")
def fetch(
    maker: Annotated[str, typer.Argument(help="The PACT host, e.g. https://maker:8420.")],
    home: Home,
    product_id: Annotated[list[str] | None, typer.Option(help="Only footprints of these product ids (URNs).")] = None,
    geography: Annotated[list[str] | None, typer.Option(help="Only these geographies.")] = None,
    status: Annotated[str | None, typer.Option(help="Active or Deprecated.")] = None,
    pf_id: Annotated[str | None, typer.Option("--id", help="One footprint by its id.")] = None,
    source: Annotated[Path | None, typer.Option(help="Client credentials (JSON), if not those kept in the home.")] = (
        None
    ),
    ca: CA = None,
    out: Annotated[Path | None, typer.Option(help="Write the footprints here ({data: [...]}).")] = None,
) -> None:
    """A buyer fetches footprints from a PACT host with its client credentials (OAuth 2.0)."""
    from qdsn.api.pact import fetch as pact_fetch

    creds = _credentials(home, maker, source)
    criteria = [("productId", p) for p in product_id or []] + [("geography", g) for g in geography or []]
    criteria += [("status", status)] if status else []
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
    with reaching(maker):
        pfs = pact_fetch(maker, creds["client_id"], creds["client_secret"], criteria, verify=verify, pf_id=pf_id)
    if out is not None:
        out.write_bytes(orjson.dumps({"data": pfs}, option=orjson.OPT_INDENT_2))
    for pf in pfs:  # the host's words: shown escaped
        line = Text(f"{pf['id']}  ") + shown(", ".join(pf["productIds"]))
        line += Text(f"  {pf['pcf']['pcfExcludingBiogenicUptake']} kg CO2e / {pf['pcf']['declaredUnitAmount']} "
                     f"{pf['pcf']['declaredUnitOfMeasurement']}  {pf['status']}")  # fmt: skip
        console.print(line, highlight=False)
    console.print(f"[green]✓[/] {len(pfs)} footprint(s), each checked against the PACT v3 schema")


def _credentials(home: Path, maker: str, source: Path | None) -> dict[str, Any]:
    path = source or _kept(open_node(home).path, maker)
    if not path.is_file():
        raise NotFound(f"no client credentials at {path}", "ask for them: qdsn footprint credentials URL --agreement")
    creds = _read_json(path)
    if not isinstance(creds, dict) or not all(isinstance(creds.get(k), str) for k in ("client_id", "client_secret")):
        raise InvalidInput(f"{path} holds no client_id and client_secret")
    return creds


@footprint_app.command("request")
def request(
    maker: Annotated[str, typer.Argument(help="The owner's PACT host, e.g. https://maker:8420.")],
    events: Annotated[str, typer.Option(help="This node's https events URL, where the answer is to come.")],
    home: Home,
    product_id: Annotated[list[str] | None, typer.Option(help="Footprints of these product ids (URNs).")] = None,
    geography: Annotated[list[str] | None, typer.Option(help="Footprints of these geographies.")] = None,
    comment: Annotated[str | None, typer.Option(help="A note to the owner.")] = None,
    source: Annotated[Path | None, typer.Option(help="Client credentials (JSON), if not those kept in the home.")] = (
        None
    ),
    ca: CA = None,
) -> None:
    """Ask the owner asynchronously (a PACT RequestCreatedEvent); its answer comes to this node's events URL
    and is taken only from that owner (see `qdsn footprint received`)."""
    from qdsn.api.pact import send_event
    from qdsn.node import Node, pact

    creds = _credentials(home, maker, source)
    owner = creds.get("owner")
    if not isinstance(owner, str):
        raise InvalidInput("the credentials do not name the owner's DID",
                           "ask for them again: qdsn footprint credentials")  # fmt: skip
    criteria: dict[str, Any] = {k: v for k, v in (("productId", product_id), ("geography", geography)) if v}
    event = pact.request_event(criteria, events, comment)
    node = Node(open_node(home), operator=False)
    try:
        pact.note_sent(node, owner, event)
    finally:
        node.close()
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
    policy = Policy.of(node.home.service())
    with reaching(maker):
        send_event(maker.rstrip("/") + "/3/events", event, creds["client_id"], creds["client_secret"], verify=verify,
                   policy=policy)  # fmt: skip
    console.print(f"[green]✓[/] request {event['id']} accepted by {escape(maker)}; "
                  f"the answer comes to {escape(events)}")  # fmt: skip


@footprint_app.command("requests")
def requests(home: Home) -> None:
    """Request events this node received and has not answered."""
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        pending = pact.pending_requests(node)
    finally:
        node.close()
    table = Table("key", "event", "criteria")
    id_column(table, "key")
    for p in pending:
        table.add_row(p["key"], shown(str(p["event"]["id"])), shown(orjson.dumps(p["event"]["data"]).decode()))
    console.print(table)


def _send(home: Path, out: Any, ca: Path | None) -> None:
    """Send `out` (a `pact.Outbound`) with credentials for its recipient's node, kept in this home and reused;
    new ones are asked for (a signed request to the node the ledger records) only when there are none or
    they no longer work."""
    from qdsn.api.pact import send_event
    from qdsn.errors import PermissionDenied

    node_home = open_node(home)
    path = node_home.path / "pact-inbound" / (sha256(out.node.encode()).hex()[:32] + ".json")
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
    kept = _read_json(path) if path.is_file() else None
    send = partial(send_event, out.events, out.event, verify=verify, policy=Policy.of(node_home.service()))
    with reaching(out.node):
        if isinstance(kept, dict) and kept.get("node") == out.node:
            try:
                send(kept["client_id"], kept["client_secret"])
                return
            except PermissionDenied:  # revoked or replaced there: ask again
                pass
        c = peer_client(node_home, out.node, ca)
        try:
            inbound = c.call("POST", "/pact/clients", {})
        finally:
            c.close()
        if not isinstance(inbound, dict) or not all(isinstance(inbound.get(k), str)
                                                    for k in ("client_id", "client_secret")):  # fmt: skip
            raise InvalidInput(f"{out.node} answered with no client credentials")
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"node": out.node, "client_id": inbound["client_id"],
                                  "client_secret": inbound["client_secret"]}))  # fmt: skip
        send(inbound["client_id"], inbound["client_secret"])


@footprint_app.command("answer")
def answer(
    key: Annotated[str, typer.Argument(help="The request's key (qdsn footprint requests).")],
    public_url: Annotated[str, typer.Option(help="This node's https URL, named as the answer's source.")],
    home: Home,
    ca: CA = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Answer a request (its use decided and recorded now): the footprints its criteria select (as a listing
    would give them), or a rejection, sent to the events URL registered with the recipient's credentials,
    which must lie at the node the ledger records for the recipient."""
    from qdsn.node import pact

    node = linked_node(home, operator, operator_ca)  # the answer is a use of the agreement: recorded
    try:
        out = pact.answering(node, key, public_url)
    finally:
        node.close()
    _send(home, out, ca)
    data = out.event["data"]
    what = f"{len(data['pfs'])} footprint(s)" if "pfs" in data else f"a rejection ({data['error']['code']})"
    console.print(f"[green]✓[/] answered with {what} at {escape(out.events)}")


@footprint_app.command("received")
def received(home: Home, as_json: Annotated[bool, typer.Option("--json", help="The events, as JSON.")] = False) -> None:
    """Events this node received: answers to its requests (with their footprints) and publications."""
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        got = pact.received(node)
    finally:
        node.close()
    if as_json:
        console.print_json(orjson.dumps(got).decode())
        return
    for e in got:
        pfs = e["data"].get("pfs")
        line = Text(f"{e['type'].rsplit('.', 2)[-2]}  ") + shown(str(e["id"]))
        line += Text(f"  {len(pfs)} footprint(s)" if isinstance(pfs, list) else "")
        console.print(line, highlight=False)


@footprint_app.command("notify")
def notify(
    pf_id: Annotated[list[str], typer.Argument(help="The footprints added or changed (ids).")],
    public_url: Annotated[str, typer.Option(help="This node's https URL, named as the events' source.")],
    home: Home,
    ca: CA = None,
) -> None:
    """Tell every recipient whose agreement covers these footprints that they were published (a PACT
    PublishedEvent to the events URL registered with its credentials, at the node the ledger records)."""
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        sends = pact.announcing(node, pf_id, public_url)
    finally:
        node.close()
    for out in sends:
        _send(home, out, ca)
        console.print(f"[green]✓[/] {len(out.event['data']['pfIds'])} footprint(s) announced at {escape(out.events)}")
    if not sends:
        console.print("no recipient with an events URL holds an agreement covering these footprints")


clients_app = typer.Typer(help="The PACT client credentials this node issued: list, revoke.", no_args_is_help=True)
footprint_app.add_typer(clients_app, name="clients")


@clients_app.command("list")
def clients_list(home: Home, as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False) -> None:
    """Every PACT client this node issued: to whom, under which agreement, and when and why one was revoked."""
    from qdsn.cli.common import print_json
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        rows = pact.list_clients(node)
    finally:
        node.close()
    if as_json:
        print_json(rows)
        return
    table = Table("client", "counterpart", "agreement", "events", "revoked")
    id_column(table, "client")
    for r in rows:
        table.add_row(r["client_id"], r["counterpart"], r["agreement"] or "(events only)", shown(r["events"] or ""),
                      shown(r["revoked_reason"] or "") if r["revoked"] else "")  # fmt: skip
    console.print(table)


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client id (qdsn footprint clients list).")],
    reason: Annotated[str, typer.Option(help="Why: kept with the client.")],
    home: Home,
) -> None:
    """Revoke PACT client credentials: their tokens stop working at once, and no new one is issued."""
    from qdsn.node import Node, pact

    node = Node(open_node(home), operator=False)
    try:
        pact.revoke_client(node, client_id, reason)
    finally:
        node.close()
    console.print(f"[green]✓[/] client {escape(client_id)} revoked: ", shown(reason.strip()), sep="")
