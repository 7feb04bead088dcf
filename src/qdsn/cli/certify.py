"""`qdsn catalog`, `qdsn negotiate`, `qdsn transfer`, `qdsn fetch`: a certification body (or any
consumer) at another member's node — its catalog, a contract for one of its offers, and sealed
deliveries of its records. Whatever the other node answers is the other organisation's word: it is
checked before it is used and escaped before it is shown."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    err,
    linked_node,
    open_node,
    peer_client,
    print_json,
    shown,
)
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError, Unavailable

Url = Annotated[str, typer.Argument(help="The other member's node API, e.g. https://acme:8421.")]
CA = Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for URL.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextlib.contextmanager
def reaching(url: str) -> Iterator[None]:
    """Turn a node that cannot be reached, or answers what is not HTTP, into one clear error."""
    import httpx

    try:
        yield
    except httpx.HTTPError as e:
        raise Unavailable(f"cannot reach {url}: {e or type(e).__name__}",
                          "check the URL and that the node runs there (qdsn node start)") from None  # fmt: skip


def expect_object(x: Any, what: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise IntegrityError(f"the node answered something other than {what}")
    return x


def fetch_catalog(url: str, home: Path, ca: Path | None, anonymous: bool) -> tuple[dict[str, Any], str | None]:
    """The DCAT catalog at `url` and the DID it was asked as: signed as this node when its passphrase is
    at hand (QDSN_PASSPHRASE), so that offers addressed to it show; otherwise anonymously, asking nothing."""
    from qdsn.api.client import NodeClient

    signed = not anonymous and bool(os.environ.get("QDSN_PASSPHRASE")) and (home / "node.toml").exists()
    with reaching(url):
        if signed:
            node_home = open_node(home)
            doc = peer_client(node_home, url, ca).call("POST", "/catalog/request", {})
            who: str | None = node_home.did
        else:
            import ssl

            verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
            doc = NodeClient(url, None, "", verify=verify).call("GET", "/catalog", signed=False)  # type: ignore[arg-type]
            who = None
    doc = expect_object(doc, "a DCAT catalog")
    if not isinstance(doc.get("dcat:dataset", []), list):
        raise IntegrityError("the catalog's dcat:dataset is not a list")
    return doc, who


def datasets(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in catalog.get("dcat:dataset", []) if isinstance(d, dict)]


def dataset_id(d: dict[str, Any]) -> str:
    return str(d.get("@id", "")).removeprefix("urn:qdsn:dataset:")


def offers(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset's offers that are offers of it: one listed under a dataset but targeting another is
    the catalog's word against itself, and is not shown or negotiated."""
    found = d.get("odrl:hasPolicy", [])
    return [o for o in (found if isinstance(found, list) else []) if isinstance(o, dict)
            and o.get("target") == d.get("@id")]  # fmt: skip


def terms(offer: dict[str, Any], models: dict[str, str] | None = None) -> str:
    """An offer's permissions in one line: action, for whom, under which constraints; a code hash is named by
    the model published under it (`models`: hash → id@version), as this node's replica knows them."""
    parts = []
    rules = offer.get("permission")
    for p in rules if isinstance(rules, list) else []:
        if not isinstance(p, dict):
            continue
        cs = p.get("constraint")
        said = [f"{c.get('leftOperand')} {c.get('operator')} {_operand(c.get('rightOperand'), models or {})}"
                for c in (cs if isinstance(cs, list) else []) if isinstance(c, dict)]  # fmt: skip
        who = f" to {p['assignee']}" if p.get("assignee") else " to anyone"
        parts.append(f"{p.get('action')}{who}" + (f" if {' and '.join(said)}" if said else ""))
    return "; ".join(parts) or "(no permission)"


def _operand(x: Any, models: dict[str, str] | None = None) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_operand(v, models) for v in x) + "]"
    text = str(x.get("@value", x)) if isinstance(x, dict) else str(x)
    if text in (models or {}):
        return f"{(models or {})[text]} ({text[:12]}…)"
    return text[:16] + "…" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def published_models(home: Path) -> dict[str, str]:
    """Code hash → id@version of the models published on this node's replica (no passphrase needed); empty
    when there is no node at `home`."""
    from sqlalchemy.exc import SQLAlchemyError

    from qdsn.node import NodeHome

    if not (home / "node.toml").exists():
        return {}
    try:
        ledger = NodeHome.open(home, "").ledger()  # the keystore stays sealed: only the replica is read
    except (QDSNError, OSError, SQLAlchemyError):
        return {}  # names are a convenience; the hashes are shown either way
    try:
        return {m.hash: m.key for m in ledger.state.models.values()}
    finally:
        ledger.close()


def catalog_cmd(
    url: Url,
    home: Home,
    ca: CA = None,
    anonymous: Annotated[bool, typer.Option("--anonymous", help="Ask without signing, as anyone would.")] = False,
    as_json: AsJson = False,
) -> None:
    """A member's DCAT catalog: its datasets, how many records each has anchored, and the ODRL offers
    you may see, with their terms — models pre-approved by code hash named as published. Read-only: it never asks for a
    passphrase; with QDSN_PASSPHRASE set it asks as this node, to see offers addressed to it."""
    doc, who = fetch_catalog(url, home, ca, anonymous)
    if as_json:
        print_json(doc)
        return
    found = datasets(doc)
    models = published_models(home)
    table = Table("dataset", "title", "kind", "anchored", "offer", "terms", title=shown(
        f"catalog of {doc.get('dspace:participantId', url)}"))  # fmt: skip
    for d in found:
        row = (dataset_id(d), str(d.get("dct:title", "")), str(d.get("qdsn:kind", "")),
               str(d.get("qdsn:anchoredRecords", "")))  # fmt: skip
        for i, o in enumerate(offers(d) or [{}]):
            table.add_row(*map(shown, (*(row if i == 0 else ("",) * 4), str(o.get("uid", "-")), terms(o, models))))
    console.print(table if found else shown(f"{url} offers no dataset{' to anyone' if who is None else ''}."))
    if who is None:
        err.print("asked anonymously: offers addressed to a particular member are not shown (set QDSN_PASSPHRASE "
                  "to ask as this node)", highlight=False)  # fmt: skip
    else:
        err.print(f"asked as {who}", highlight=False)


def choose(catalog: dict[str, Any], dataset: str, purpose: str | None, offer: str | None) -> dict[str, Any]:
    """The offer to negotiate: `offer` by uid, else the one offer of `dataset` whose purpose constraint
    allows `purpose` (or that has none); InvalidInput listing the candidates when that is not one."""
    d = next((x for x in datasets(catalog) if dataset_id(x) == dataset.removeprefix("urn:qdsn:dataset:")), None)
    if d is None:
        names = ", ".join(dataset_id(x) for x in datasets(catalog)) or "none"
        raise NotFound(f"the catalog has no dataset {dataset!r} you may see (it has: {names[:500]})",
                       "see it with qdsn catalog URL")  # fmt: skip
    candidates = offers(d)
    if offer is not None:
        found = [o for o in candidates if o.get("uid") == offer]
    else:
        found = [o for o in candidates if purpose is None or _allows_purpose(o, purpose)]
    if len(found) == 1:
        return found[0]
    uids = ", ".join(str(o.get("uid")) for o in (found or candidates)) or "none"
    what = f"offer {offer}" if offer else f"offer for purpose {purpose!r}" if purpose else "offer"
    if not found:
        raise NotFound(f"dataset {dataset} has no {what} (its offers: {uids[:500]})", "name one with --offer UID")
    raise InvalidInput(f"dataset {dataset} has {len(found)} offers that fit: {uids[:500]}", "choose with --offer UID")


def _allows_purpose(offer: dict[str, Any], purpose: str) -> bool:
    rules = offer.get("permission")
    for p in rules if isinstance(rules, list) else []:
        cs = p.get("constraint") if isinstance(p, dict) else None
        bounds = [c for c in (cs if isinstance(cs, list) else []) if isinstance(c, dict)
                  and c.get("leftOperand") == "purpose"]  # fmt: skip
        if all(purpose in _values(c.get("rightOperand")) for c in bounds):
            return True
    return False


def _values(x: Any) -> list[str]:
    return [_operand(v) for v in x] if isinstance(x, list) else [_operand(x)]


Purpose = Annotated[
    str | None,
    typer.Option(help="What the data is for, e.g. certification: picks the offer whose purpose constraint allows it."),
]


def negotiate_cmd(
    url: Url,
    dataset: Annotated[str, typer.Argument(help="The dataset, as the catalog names it.")],
    home: Home,
    purpose: Purpose = None,
    offer: Annotated[str | None, typer.Option(help="The offer's uid, when the dataset has several.")] = None,
    ca: CA = None,
    out: Annotated[Path | None, typer.Option(help="Also write the agreement (JSON) here.")] = None,
    as_json: AsJson = False,
) -> None:
    """Negotiate a contract for an offer of another member's catalog (Dataspace Protocol): the offer as
    published, an agreement that names it by uid and hash, verified and finalized. Prints the agreement's
    id for `qdsn jobs request` and `qdsn transfer`."""
    from qdsn.node import requested
    from qdsn.node.consumer import negotiate

    node_home = open_node(home)
    with reaching(url):
        client = peer_client(node_home, url, ca)
        doc = expect_object(client.call("POST", "/catalog/request", {}), "a DCAT catalog")
        chosen = choose(doc, dataset, purpose, offer)
        owner = dataset_owner(node_home, dataset)
        if chosen.get("assigner") != owner:  # the ledger, not the catalog, says whose data it is
            raise IntegrityError(f"offer {str(chosen.get('uid'))[:100]} is made by {str(chosen.get('assigner'))[:100]}"
                                 f", but {dataset} is declared on the ledger by {owner}")  # fmt: skip
        contract = negotiate(client, chosen, node_home.did)
    kept = {"dataset": dataset_id({"@id": contract["target"]})}
    requested.keep(home, requested.AGREEMENTS, url, contract["uid"], kept)
    if out:
        write_whole(out, json.dumps(contract, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print_json(contract)
        return
    console.print(shown(f"✓ agreement {contract['uid']}"), style="green")
    console.print(shown(f"  offer   {chosen.get('uid')} of {dataset}"))
    console.print(shown(f"  terms   {terms(contract, published_models(home))}"))
    console.print(shown(f"  use it: qdsn jobs request {url} --agreement {contract['uid']} --dataset {dataset} "
                        "--model MODEL"))  # fmt: skip


def dataset_owner(node_home: Any, dataset: str) -> str:
    """Who declared `dataset` on this node's replica of the ledger; NotFound when it holds no such dataset."""
    ledger = node_home.ledger()
    try:
        declared = ledger.state.datasets.get(dataset.removeprefix("urn:qdsn:dataset:"))
    finally:
        ledger.close()
    if declared is None:
        raise NotFound(f"this node's replica of the ledger holds no dataset {dataset}",
                       "let this node follow the log (qdsn node start), then negotiate again")  # fmt: skip
    return str(declared.owner)


def write_whole(path: Path, text: str) -> None:
    """Write a file whole: a temporary file renamed into place, never half of one."""
    tmp = path.with_name(f".{path.name}.new")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {e.strerror or e}") from None


def records_range(text: str) -> tuple[int, int]:
    """FIRST:COUNT as two whole numbers, FIRST ≥ 0 and COUNT ≥ 1."""
    try:
        first, count = (int(x) for x in text.split(":"))
    except ValueError:
        raise InvalidInput(f"--records is FIRST:COUNT, e.g. 0:200, not {text!r}") from None
    if first < 0 or count < 1:
        raise InvalidInput(f"--records {text}: FIRST is 0 or more and COUNT 1 or more")
    return first, count


def transfer_cmd(
    url: Url,
    agreement: Annotated[str, typer.Option(help="The agreement (from qdsn negotiate).")],
    records: Annotated[str, typer.Option(help="Which anchored records, FIRST:COUNT (e.g. 0:200).")],
    home: Home,
    purpose: Annotated[str | None, typer.Option(help="What the records are for, e.g. certification.")] = None,
    ca: CA = None,
) -> None:
    """Start a sealed-delivery transfer under an agreement: decided by the owner's policy and recorded on
    the ledger. Prints the transfer's id for `qdsn fetch`."""
    from qdsn.node import requested
    from qdsn.node.consumer import transfer

    first, count = records_range(records)
    node_home = open_node(home)
    with reaching(url):
        t = expect_object(transfer(peer_client(node_home, url, ca), agreement, "sealed-delivery", purpose=purpose,
                             records={"first": first, "count": count}), "a transfer process")  # fmt: skip
    pid = t.get("dspace:providerPid")
    if not isinstance(pid, str) or t.get("dspace:state") != "dspace:STARTED":
        raise IntegrityError(f"the node did not start the transfer (state {str(t.get('dspace:state'))[:40]})")
    agreed = requested.kept(home, requested.AGREEMENTS, url, agreement) or {}
    requested.keep(home, requested.TRANSFERS, url, pid, {"agreement": agreement, "dataset": agreed.get("dataset"),
                                                         "first": first, "count": count})  # fmt: skip
    console.print(shown(f"✓ transfer {pid} started: records {first}–{first + count - 1}"), style="green")
    console.print(shown(f"  fetch them: qdsn fetch {url} {pid} --out records.jsonl"))


def delivered_otherwise(asked: dict[str, Any], delivery: dict[str, Any], got: list[dict[str, Any]]) -> list[str]:
    """How an opened delivery differs from the transfer as this node started it: another transfer or
    agreement, other records than those asked for (`receive` holds it to the agreement's dataset)."""
    wrong = []
    if (delivery["dspace:providerPid"], delivery["dspace:agreementId"]) != (asked["key"], asked["agreement"]):
        wrong.append(f"it is of transfer {str(delivery['dspace:providerPid'])[:80]} under agreement "
                     f"{str(delivery['dspace:agreementId'])[:80]}, "
                     f"not {asked['key']} under {asked['agreement']}")  # fmt: skip
    if [r["seq"] for r in got] != list(range(asked["first"], asked["first"] + asked["count"])):
        span = f"{got[0]['seq']}–{got[-1]['seq']}" if got else "none"
        wrong.append(f"it holds records {span}, not {asked['first']}–{asked['first'] + asked['count'] - 1}")
    return wrong


def fetch_cmd(
    url: Url,
    transfer: Annotated[str, typer.Argument(help="The transfer's id (from qdsn transfer).")],
    out: Annotated[Path, typer.Option(help="Write the records here, one JSON object a line.")],
    home: Home,
    ca: CA = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Take one sealed delivery of a started transfer (one use, metered on the ledger), open it with this
    node's key and prove every record against the batch root its owner anchored on this node's replica;
    only then are the records written."""
    from urllib.parse import quote

    from qdsn.node import requested
    from qdsn.node.consumer import receive

    asked = requested.kept(home, requested.TRANSFERS, url, transfer)
    if asked is None:
        raise NotFound(f"this node started no transfer {transfer!r} at {url}",
                       "start one: qdsn transfer URL --agreement ID --records FIRST:COUNT")  # fmt: skip
    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        with reaching(url):
            client = peer_client(node.home, url, ca)
            delivery = expect_object(client.call("POST", f"/transfers/{quote(transfer, safe=':')}/data"), "a delivery")
        node.catch_up()
        got = receive(node.ledger, node.home.key(), node.did, delivery, asked.get("dataset"))
    finally:
        node.close()
    wrong = delivered_otherwise(asked, delivery, got)
    if wrong:
        raise IntegrityError(f"the delivery is not the transfer this node asked for: {'; '.join(wrong)}",
                             "nothing was written; fetch again, or ask the data owner")  # fmt: skip
    write_whole(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in got))
    seqs = [r["seq"] for r in got]
    span = f"records {seqs[0]}–{seqs[-1]}" if seqs else "no records"
    console.print(f"[green]✓[/] {len(got)} records ({span}) opened and each proved against its anchored batch "
                  f"root; written to {out}", highlight=False)  # fmt: skip
