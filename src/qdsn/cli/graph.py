"""`qdsn graph`: the regional quality graph (区域质量大数据图谱) of this node's replica — recall impact,
certification coverage, open notifications, supplier concentration — and its map."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    linked_node,
    logged,
    party,
    print_json,
    replica,
    shown,
)
from qdsn.errors import InvalidInput
from qdsn.graph import divisions, documents, svgmap
from qdsn.graph.region import INDICATORS, RegionGraph, draw_map, of_replica
from qdsn.ledger import tx
from qdsn.node import NodeHome

graph_app = typer.Typer(help="The regional quality graph (区域质量图谱): recall, coverage, notifications, suppliers, "
                             "map.", no_args_is_help=True)  # fmt: skip
MAX_SHARED = 64 * 2**20  # a member's file, read whole before it is checked
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, with every field whole.")]
Region = Annotated[str | None, typer.Option(help="Only this GB/T 2260 division, e.g. 330000 or 330100.")]


def _graph(home: Path) -> RegionGraph:
    """The graph of this home's replica and the documents shared with it (needs no passphrase)."""
    node = NodeHome.open(home, "")
    ledger = replica(node)
    try:
        return of_replica(ledger.store, node.path)
    finally:
        ledger.close()


def _print_json(doc: Any) -> None:
    print_json(doc, indent=1)


def _place(code: str | None) -> str:
    return f"{code} {divisions.name(code)}" if code else ""


@graph_app.command("build")
def build(
    home: Home,
    epcis: Annotated[Path | None, typer.Option(help="An EPCIS 2.0 JSON document a member shared, to add.")] = None,
    shared_by: Annotated[str | None, typer.Option(help="The DID of the member that shared it.")] = None,
    as_json: AsJson = False,
) -> None:
    """Build the graph from the replica (and add a member's shared EPCIS document): what it holds. 构建图谱。"""
    if (epcis is None) != (shared_by is None):
        raise InvalidInput("--epcis and --shared-by go together", "give the document and the member who shared it")
    g = _graph(home)
    added: dict[str, Any] | None = None
    if epcis is not None and shared_by is not None:
        g.org(shared_by)  # a DID of this log before anything is kept
        if epcis.stat().st_size > MAX_SHARED:
            raise InvalidInput(f"{epcis} is over {MAX_SHARED // 2**20} MiB", "ask the member for its events in parts")
        try:
            doc = orjson.loads(epcis.read_bytes())
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"{epcis} is not JSON: {e}", "give an EPCIS 2.0 JSON or JSON-LD document") from None
        reading = g.add_shared(doc, shared_by, documents.digest(doc))  # checked whole before it is kept
        name = documents.save(Path(home), doc, shared_by)
        added = {"document": name, "shipments": len(reading.shipments),
                 "transformations": len(reading.transformations),
                 "skipped": [{"event": i, "reason": why} for i, why in reading.skipped]}  # fmt: skip
    summary = g.summary()
    if as_json:
        _print_json(summary | ({"added": added} if added else {}))
        return
    table = Table(title=f"区域质量图谱 regional quality graph · {summary['entries']} entries")
    table.add_column("what 内容")
    table.add_column("count 数量", justify="right")
    for k, v in summary.items():
        if k != "entries":
            table.add_row(k.replace("_", " "), f"{v:,}")
    console.print(table)
    if added:
        console.print(f"[green]✓[/] shared document {added['document']}: {added['shipments']} shipments, "
                      f"{added['transformations']} transformations")  # fmt: skip
        for s in added["skipped"]:
            console.print(f"  skipped event {s['event']}: ", shown(s["reason"]), sep="")


@graph_app.command("recall")
def recall(
    source: Annotated[str, typer.Argument(help="A supplier's DID, or a batch (EPC) from shared EPCIS events.")],
    home: Home,
    as_json: AsJson = False,
) -> None:
    """Recall impact: every enterprise, product, batch and certificate downstream of a supplier or a batch.
    召回影响范围。"""
    impact = _graph(home).recall(source)
    if as_json:
        _print_json(impact.to_json())
        return
    console.print(f"召回影响 recall impact of {impact.kind} ", shown(source), sep="")
    table = Table(title=f"{len(impact.enterprises)} downstream enterprises 下游企业")
    for col in ("name 名称", "region 地区", "industry 行业", "DID"):
        table.add_column(col, overflow="fold")
    for e in impact.enterprises:
        name = shown(e["name"])
        if e["suspended"]:
            name.append(" (suspended 已暂停)", style="red")
        table.add_row(name, _place(e["region"]), e["industry"] or "", e["did"])
    console.print(table)
    certs = Table(title=f"{len(impact.certificates)} certificates 证书")
    for col in ("certificate 证书", "status 状态", "holder 持证企业"):
        certs.add_column(col, overflow="fold")
    for c in impact.certificates:
        certs.add_row(shown(c["id"]), c["status"], c["subject"])
    console.print(certs)
    console.print(f"{len(impact.products)} products 产品 · {len(impact.batches)} batches 批次 · "
                  f"{len(impact.datasets)} datasets 数据集")  # fmt: skip


@graph_app.command("coverage")
def coverage(
    home: Home,
    by: Annotated[str, typer.Option(help="region or industry.")] = "region",
    level: Annotated[str, typer.Option(help="province, prefecture or county (by region).")] = "province",
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Certification coverage and status per region or industry. 认证覆盖率。"""
    rows = _graph(home).coverage(by, level, region)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"认证覆盖 certification coverage by {by}")
    table.add_column("region 地区" if by == "region" else "industry 行业")
    for col in ("enterprises 企业", "certified 有效持证", "share 覆盖率", "valid 有效", "suspended 暂停",
                "revoked 撤销"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        key = f"{r['key']} {r.get('name', '')}".strip()
        table.add_row(key, str(r["enterprises"]), str(r["certified"]), f"{r['share']:.1%}", str(r["valid"]),
                      str(r["suspended"]), str(r["invalid"]))  # fmt: skip
    console.print(table)


@graph_app.command("open")
def open_notifications(home: Home, region: Region = None, as_json: AsJson = False) -> None:
    """Enterprises with open quality notifications. 存在未结质量通报的企业。"""
    rows = _graph(home).open_notifications(region)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} enterprises with open notifications 未结通报企业")
    for col in ("name 名称", "region 地区", "open 未结", "alert 预警", "investigation 调查", "severity 最高严重度",
                "DID"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(shown(r["name"]), _place(r["region"]), str(r["open"]), str(r["alert"]),
                      str(r["investigation"]), r["severity"], r["did"])  # fmt: skip
    console.print(table)


@graph_app.command("suppliers")
def suppliers(
    home: Home,
    product: Annotated[str | None, typer.Option(help="Only relations naming this product.")] = None,
    region: Region = None,
    confirmed: Annotated[bool, typer.Option(help="Only relations both parties declared.")] = False,
    top: Annotated[int, typer.Option(min=0, max=1000, help="How many suppliers to list.")] = 10,
    as_json: AsJson = False,
) -> None:
    """Concentration of suppliers: HHI, customers per supplier, single-sourced customers. 供应商集中度。"""
    doc = _graph(home).suppliers(product, region, confirmed, top)
    if as_json:
        _print_json(doc)
        return
    console.print(f"供应商集中度 supplier concentration: {doc['relations']} relations, {doc['suppliers']} suppliers, "
                  f"{doc['customers']} customers · HHI {doc['hhi']:g} (equivalent to {doc['equivalent_suppliers']:g} "
                  f"equal suppliers) · {len(doc['single_sourced'])} single-sourced customers 单一来源客户")  # fmt: skip
    table = Table(title="top suppliers 主要供应商")
    for col in ("name 名称", "region 地区", "customers 客户数", "share 份额", "DID"):
        table.add_column(col, overflow="fold")
    for r in doc["top"]:
        table.add_row(shown(r["name"]), _place(r["region"]), str(r["customers"]), f"{r['share']:.1%}", r["did"])
    console.print(table)


@graph_app.command("map")
def map_cmd(
    out: Annotated[Path, typer.Option(help="Where to write the SVG, e.g. map.svg.")],
    home: Home,
    indicator: Annotated[str, typer.Option(help=f"One of {', '.join(INDICATORS)}.")] = "coverage",
    province: Annotated[str | None, typer.Option(help="Draw this province's prefectures (e.g. 330000).")] = None,
    geojson: Annotated[Path | None, typer.Option(help="Boundary GeoJSON with its 审图号, instead of tiles.")] = None,
    as_json: AsJson = False,
) -> None:
    """The map of an indicator by GB/T 2260 region, as SVG: a tile grid, or the operator's boundaries with
    their approval number. 区域地图。"""
    boundaries = svgmap.read_boundaries(geojson) if geojson is not None else None
    svg, level, values = draw_map(_graph(home), indicator, province, boundaries)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(svg, encoding="utf-8")
    tmp.replace(out)
    if as_json:
        _print_json({"path": str(out), "level": level, "indicator": indicator,
                     "values": dict(sorted(values.items()))})  # fmt: skip
        return
    console.print(f"[green]✓[/] map 地图 ({indicator}, {level}, {len(values)} regions) written to {out}",
                  highlight=False)  # fmt: skip


def _member(state: Any, who: str) -> str:
    """A member named by its DID or its registered name (one only)."""
    from qdsn.cli.notify import _recipient

    return _recipient(state, who)


@graph_app.command("declare")
def declare(
    supplier: Annotated[str, typer.Option(help="The supplier: a member's DID or registered name.")],
    customer: Annotated[str, typer.Option(help="The customer: a member's DID or registered name.")],
    home: Home,
    product: Annotated[str | None, typer.Option(help="What is supplied.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Declare on the ledger that `supplier` supplies `customer` (this node is one of the two). 声明供应关系。"""
    node = linked_node(home, operator, operator_ca)
    try:
        node.catch_up()
        state = node.ledger.state
        p = {"supplier": _member(state, supplier), "customer": _member(state, customer)}
        p |= {"product": product} if product else {}
        env = node.home.sign("supply.relation", p)
        node.submit([env])
        console.print(f"[green]✓[/] supply relation {tx.txid(env.leaf())} declared ({logged(node.receipts)})",
                      highlight=False)  # fmt: skip
        console.print(f"  withdraw it with: qdsn graph withdraw {tx.txid(env.leaf())}", highlight=False)
    finally:
        node.close()


@graph_app.command("relations")
def relations(
    home: Home,
    withdrawn: Annotated[bool, typer.Option(help="List withdrawn relations too.")] = False,
    as_json: AsJson = False,
) -> None:
    """The supply relations declared on the ledger, by the id a withdrawal names. 供应关系。"""
    ledger = replica(NodeHome.open(home, ""))
    try:
        state = ledger.state
        rows = [r for _, r in sorted(state.supplies.items()) if withdrawn or r.withdrawn is None]
    finally:
        ledger.close()
    if as_json:
        _print_json([{"id": r.id} | r.to_json() for r in rows])
        return
    table = Table(title=f"{len(rows)} supply relations 供应关系")
    for col in (
        "relation 关系",
        "supplier 供应方",
        "customer 客户",
        "product 产品",
        "declared by 声明方",
        "withdrawn 撤回",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.id, party(state, r.supplier), party(state, r.customer), shown(r.product or ""),
                      party(state, r.declarer),
                      f"entry {r.withdrawn}" if r.withdrawn is not None else "")  # fmt: skip
    console.print(table)


@graph_app.command("withdraw")
def withdraw(
    relation: Annotated[
        str, typer.Argument(help="The relation's id (its supply.relation entry; qdsn graph relations).")
    ],
    home: Home,
    reason: Annotated[str | None, typer.Option(help="Why; on the ledger, which every member reads.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Withdraw a supply relation this node declared (or, for the regulator, any): the graph no longer
    follows it. 撤回供应关系。"""
    node = linked_node(home, operator, operator_ca)
    try:
        node.catch_up()
        p = {"relation": relation} | ({"reason": reason} if reason else {})
        tx.check_payload("supply.withdraw", p)
        node.submit([node.home.sign("supply.withdraw", p)])
        console.print(f"[green]✓[/] supply relation {relation} withdrawn ({logged(node.receipts)})", highlight=False)
    finally:
        node.close()
