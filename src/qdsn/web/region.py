"""The regulator's regional pages: the regional quality graph (区域质量图谱) with its map and queries, the
evaluation indicators with each enterprise's capability level, and the private statistics' tasks created
and collected from the console. Each calls the service its command calls (`qdsn graph`, `qdsn indicators`,
`qdsn stats task create` and `collect`): the same checks, the same figures.

The graph is kept per process and brought up to date with the entries appended since it was last shown
(`graph.region.of_replica`), so a page costs the entries new since the last one, not the whole log."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from qdsn.clock import format_time, system_clock
from qdsn.errors import InvalidInput, NotFound, Unavailable
from qdsn.graph import divisions, svgmap
from qdsn.graph.region import INDICATOR_NAMES, INDICATORS, RegionGraph, draw_map, of_replica
from qdsn.ledger.tx import is_did
from qdsn.node.node import Node
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/regulator"  # where web/regulator.py includes `router`: what its links and redirects name
router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/graph", N_("Quality graph")),
    NavItem(f"{PREFIX}/indicators", N_("Indicators")),
]
BOUNDARIES = Path("graph") / "boundaries.geojson"  # the operator's boundary file, with its 审图号, if it has one
PAGE = 50  # rows of a list shown at a time
COLLECT_SECONDS = 120.0  # how long a collection waits for the leader's answer
ASSESSED_SECONDS = 60  # a region's summary is made again at most this often while the ledger grows
ASSESSED_KEPT = 16  # regions whose assessments are kept at once
GROUPS = {"data": N_("data"), "process": N_("process"), "certification": N_("certification"),
          "supervision": N_("supervision")}  # fmt: skip
MEASURES = {"count": N_("count (how many reporters say yes)"), "sum": N_("sum of whole numbers"),
            "sumvec": N_("vector of sums"), "histogram": N_("histogram"), "multihot": N_("multi-choice counts"),
            "footprints": N_("product footprints per category (mean g CO2e per declared unit)")}  # fmt: skip
LEVEL_WORDS = [N_("inspection"), N_("assurance"), N_("prevention"), N_("excellence")]  # LEVEL_NAMES, for the catalog
Viewer = Annotated[Staff, Depends(require("viewer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
Word = Annotated[str | None, Query(max_length=200)]
Offset = Annotated[int, Query(ge=0, lt=2**31)]
_graphs: dict[int, RegionGraph] = {}  # id(store) -> the graph of that replica, kept between requests
_graphs_lock = threading.Lock()
# (store, region) -> (log size, when, its summary): kept by the store object itself, which no other replica shares
_assessed: dict[tuple[Any, str], tuple[int, float, dict[str, Any]]] = {}
_assessed_lock = threading.Lock()
_boundaries: dict[Path, tuple[float, svgmap.Boundaries]] = {}  # path -> (mtime, checked boundaries)


def _node(request: Request) -> Node:
    return console_of(request).node


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@contextmanager
def region_graph(node: Node) -> Iterator[RegionGraph]:
    """This node's regional graph, brought up to its replica and the documents shared with it, held for
    one page's queries: another request brings it up to date only once they are done."""
    store = node.ledger.store
    with _graphs_lock:
        _graphs[id(store)] = of_replica(store, node.home.path, _graphs.get(id(store)))
        yield _graphs[id(store)]


def boundaries(node: Node) -> svgmap.Boundaries | None:
    """The operator's boundary GeoJSON in the node's home (`graph/boundaries.geojson`), checked once per
    change of the file; None when there is none and the map is the tile grid."""
    path = node.home.path / BOUNDARIES
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    kept = _boundaries.get(path)
    if kept is None or kept[0] != mtime:
        kept = _boundaries[path] = (mtime, svgmap.read_boundaries(path))
    return kept[1]


def _region(code: str | None) -> str | None:
    """A GB/T 2260 division in use, or None; InvalidInput says what to give."""
    code = _blank(code)
    if code is None:
        return None
    if not code.isdigit() or len(code) != 6:
        raise InvalidInput(f"region {code[:40]!r} is not a six-digit GB/T 2260 code", "give e.g. 330000 or 330100")
    return divisions.known(code)


def _slice(rows: list[Any], offset: int) -> dict[str, Any]:
    """One page of a list: its rows, where it starts, and the offsets of the pages before and after."""
    return {"items": rows[offset : offset + PAGE], "offset": offset, "total": len(rows),
            "previous": max(offset - PAGE, 0) if offset else None,
            "next": offset + PAGE if offset + PAGE < len(rows) else None}  # fmt: skip


def _window(items: list[Any], offset: int, total: int) -> dict[str, Any]:
    """A page read at `offset` of a list of `total` rows, in the form `_slice` gives."""
    return {"items": items, "offset": offset, "total": total, "previous": max(offset - PAGE, 0) if offset else None,
            "next": offset + PAGE if offset + PAGE < total else None}  # fmt: skip


def _place(code: str | None) -> str:
    return f"{code} {divisions.name(code)}" if code else ""


# -- the regional quality graph -------------------------------------------------------------------------


@router.get("/graph")
def graph_page(request: Request, staff: Viewer, indicator: Word = "coverage", province: Word = None) -> Response:
    """The map of an indicator (the node's own SVG, inline) and the forms of the graph's queries."""
    node = _node(request)
    indicator = _blank(indicator) or "coverage"
    province = _region(province)
    b = boundaries(node)
    with region_graph(node) as g:
        svg, level, values = draw_map(g, indicator, province, b)
        summary = g.summary()
    from qdsn.privacy import figures

    latest = figures.kept(node.home.path)[-5:]  # the regional figures released to this node, beside the map
    titles = {t: s.spec["title"] for t, s in node.ledger.state.tasks.items()}
    return render(request, "regulator/graph.html", svg=svg, level=level, values=values, indicator=indicator,
                  indicators=INDICATORS, indicator_names=INDICATOR_NAMES, province=province or "",
                  approval=b.approval if b else None, summary=summary, place=_place, latest=latest,
                  titles=titles)  # fmt: skip


@router.get("/graph/recall")
def recall_page(request: Request, staff: Viewer, source: Word = None, offset: Offset = 0) -> Response:
    """Everything downstream of a supplier (a DID) or a batch (an EPC): the same `RegionGraph.recall` as
    `qdsn graph recall`."""
    source = _blank(source)
    if source is None:
        raise InvalidInput(
            "give a supplier's DID or a batch (EPC) to recall", "e.g. did:key:z6Mk… or urn:epc:id:sgtin:…"
        )
    with region_graph(_node(request)) as g:
        impact = g.recall(source)
    return render(request, "regulator/graph_recall.html", impact=impact, page=_slice(impact.enterprises, offset),
                  place=_place)  # fmt: skip


@router.get("/graph/coverage")
def coverage_page(request: Request, staff: Viewer, by: Word = "region", level: Word = "province",
                  region: Word = None) -> Response:  # fmt: skip
    """Certification coverage per region or industry (`qdsn graph coverage`)."""
    by, level, region = _blank(by) or "region", _blank(level) or "province", _region(region)
    with region_graph(_node(request)) as g:
        rows = g.coverage(by, level, region)
    return render(request, "regulator/graph_coverage.html", rows=rows, by=by, level=level, region=region or "")


@router.get("/graph/open")
def open_page(request: Request, staff: Viewer, region: Word = None, offset: Offset = 0) -> Response:
    """Enterprises with open quality notifications (`qdsn graph open`)."""
    region = _region(region)
    with region_graph(_node(request)) as g:
        rows = g.open_notifications(region)
    return render(request, "regulator/graph_open.html", page=_slice(rows, offset), region=region or "",
                  place=_place)  # fmt: skip


@router.get("/graph/suppliers")
def suppliers_page(request: Request, staff: Viewer, product: Word = None, region: Word = None,
                   confirmed: bool = False, top: Annotated[int, Query(ge=0, le=1000)] = 10) -> Response:  # fmt: skip
    """Supplier concentration: HHI, top suppliers, single-sourced customers (`qdsn graph suppliers`)."""
    product, region = _blank(product), _region(region)
    with region_graph(_node(request)) as g:
        doc = g.suppliers(product, region, confirmed, top)
        single = [g.orgs[c] for c in doc["single_sourced"][:PAGE] if c in g.orgs]
    return render(request, "regulator/graph_suppliers.html", doc=doc, single=single, product=product or "",
                  region=region or "", confirmed=confirmed, top=top, place=_place)  # fmt: skip


# -- indicators ---------------------------------------------------------------------------------------------


def summarised(node: Node, code: str) -> tuple[int, dict[str, Any]]:
    """(log size, `supervision.indicators.region`'s summary of a region) — its levels counted and its medians,
    which need every enterprise of the region assessed — kept for a minute whether or not the log grows, so
    that it is made at most once a minute per region, never on every view. The enterprises listed beneath it
    are assessed afresh, a page at a time (`indicators_page`)."""
    from qdsn.supervision import indicators

    key = (node.ledger.store, code)
    now = time.monotonic()
    with _assessed_lock:
        kept = _assessed.get(key)
        if kept is None or (kept[0] != node.ledger.size and now - kept[1] > ASSESSED_SECONDS):
            kept = (node.ledger.size, now, indicators.region(node.ledger, code, system_clock())[1])
            _assessed.pop(key, None)
            while len(_assessed) >= ASSESSED_KEPT:  # the oldest region asked for makes room
                del _assessed[next(iter(_assessed))]
            _assessed[key] = kept
    return kept[0], kept[2]


def _home_region(node: Node) -> str | None:
    """The region this regulator is registered for, if its registration names one."""
    try:
        return node.ledger.registration(node.did).get("region")  # type: ignore[no-any-return]
    except NotFound:  # not registered on this log (yet): the page asks for a region instead
        return None


@router.get("/indicators")
def indicators_page(request: Request, staff: Viewer, region: Word = None, offset: Offset = 0) -> Response:
    """A region's indicators and its enterprises with their capability level and each criterion, a page at a time."""
    from qdsn.supervision import indicators

    node = _node(request)
    code = _blank(region) or _home_region(node)
    if code is None:
        from qdsn.ledger import registry

        return render(request, "regulator/indicators.html", code=None, summary=None, page=None, names={},
                      provinces=registry.by_region(node.ledger.store, "province")[:50], levels=indicators.LEVELS,
                      level_names=indicators.LEVEL_NAMES)  # fmt: skip
    code = indicators.region_code(code)
    total, dids = indicators.region_members(node.ledger, code, offset, PAGE)  # this page's, by name
    if offset and offset >= total:
        raise NotFound(f"there is no enterprise at offset {offset}: region {code} has {total}", "go to the first page")
    facts = indicators.read_facts(node.ledger, dids)
    now = system_clock()
    shown = [indicators.assess(facts[d], now) for d in dids if d in facts]
    as_of, summary = summarised(node, code)
    named = {i.key: i for a in shown[:1] for i in a.indicators}  # each indicator's group and names
    medians = [(named[k].group if k in named else "", k, named.get(k), v) for k, v in summary["medians"].items()]
    return render(request, "regulator/indicators.html", code=code, name=divisions.name(code.ljust(6, "0")),
                  summary=summary, medians=sorted(medians, key=lambda m: list(GROUPS).index(m[0]) if m[0] in GROUPS
                                                  else len(GROUPS)),
                  page=_window(shown, offset, total), summary_size=as_of, size=node.ledger.size, provinces=[],
                  levels=indicators.LEVELS, groups=GROUPS,
                  level_names=indicators.LEVEL_NAMES, figure=_figure)  # fmt: skip


@router.get("/indicators/enterprise")
def enterprise_page(request: Request, staff: Viewer, did: Word = None) -> Response:
    """One enterprise's indicators and level, each criterion with its evidence (`qdsn indicators enterprise`)."""
    from qdsn.supervision import indicators

    did = _blank(did)
    if did is None or not is_did(did):
        raise InvalidInput(
            f"{(did or '')[:80]!r} is not a DID", "give an enterprise's DID (did:key:z6Mk… or did:web:…)"
        )
    a = indicators.enterprise(_node(request).ledger, did, system_clock())
    return render(request, "regulator/indicators_enterprise.html", a=a, groups=GROUPS,
                  level_names=indicators.LEVEL_NAMES, figure=_figure)  # fmt: skip


def _figure(value: Any, key: str) -> str:
    """An indicator's value as a person reads it (as `qdsn indicators` prints it)."""
    from qdsn.cli.indicators import _figure as shown

    return shown(value, key)


# -- private statistics: tasks and collections --------------------------------------------------------------


def bar_chart(labels: list[str], values: list[float], title: str) -> str:
    """A horizontal bar chart as SVG text. Written by hand rather than with matplotlib: a few rectangles,
    drawn in microseconds, and every label escaped (a category is another party's text)."""
    width, left, bar, gap = 640, 220, 22, 8
    height = 40 + len(values) * (bar + gap) + 10
    top = max((abs(v) for v in values), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img"><title>{html.escape(title)}</title>',
             f'<text x="4" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>']  # fmt: skip
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 34 + i * (bar + gap)
        w = max(0.0, v) / top * (width - left - 90)
        parts.append(f'<text x="{left - 6}" y="{y + bar - 6}" font-size="12" text-anchor="end">'
                     f"{html.escape(label[:36])}</text>"
                     f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#3182bd"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + bar - 6}" font-size="12">{v:,g}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def figures_context(node: Node) -> dict[str, Any]:
    """What the statistics page shows of the figures this node collected: each with its table rows and,
    for a vector, a bar chart; a footprints task's figure as each category's mean."""
    from qdsn.privacy import figures
    from qdsn.privacy.indicators import PPM_EDGES

    named = figures.categories(node.home.path)
    shown = []
    for f in figures.kept(node.home.path):
        row: dict[str, Any] = {"f": f, "rows": [], "chart": None}
        values = f.result if isinstance(f.result, list) else [f.result]
        cats = named.get(f.task)
        if cats and len(values) == 2 * len(cats):
            means = figures.per_category(values, cats)
            row["rows"] = [(r["category"], f"{r['mean']:,g} g CO2e" if r["mean"] is not None else "—",
                            f"{r['count']} · {r['total']:,} g") for r in means]  # fmt: skip
            means = [r["mean"] or 0 for r in means]
            row["chart"] = bar_chart(cats, means, f"{f.task} · g CO2e")
        elif len(values) > 1:
            if f.vdaf == "Prio3Histogram" and len(values) == len(PPM_EDGES) + 1:
                edges = ["0", *map(str, PPM_EDGES)]
                labels = [f"{edges[i]}–{PPM_EDGES[i]}" if i < len(PPM_EDGES) else f"≥ {PPM_EDGES[-1]}"
                          for i in range(len(values))]  # fmt: skip
            else:
                labels = [f"[{i}]" for i in range(len(values))]
            row["rows"] = [(label, f"{v:,}", "") for label, v in zip(labels, values, strict=True)]
            row["chart"] = bar_chart(labels, values, f"{f.task} · {f.period}")
        shown.append(row)
    return {"figures": shown, "categories": named, "measures": MEASURES,
            "start": format_time(datetime.now(UTC).replace(microsecond=0))}  # fmt: skip


def _number(value: str, what: str, kind: type = int) -> Any:
    value = value.strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{what} {value[:40]!r} is not a number") from None


@router.post("/statistics/tasks")
def create_task(request: Request, staff: Approver, task: Annotated[str, Form(max_length=128)],
                title: Annotated[str, Form(max_length=200)], measure: Annotated[str, Form(max_length=16)],
                leader_url: Annotated[str, Form(max_length=300)], helper_url: Annotated[str, Form(max_length=300)],
                leader: Annotated[str, Form(max_length=512)] = "", maximum: Annotated[str, Form(max_length=20)] = "",
                length: Annotated[str, Form(max_length=20)] = "", max_weight: Annotated[str, Form(max_length=20)] = "",
                categories: Annotated[str, Form(max_length=4000)] = "",
                reporters: Annotated[str, Form(max_length=200_000)] = "",
                region: Annotated[str, Form(max_length=12)] = "", industry: Annotated[str, Form(max_length=12)] = "",
                start: Annotated[str, Form(max_length=40)] = "", period: Annotated[str, Form(max_length=20)] = "",
                min_batch: Annotated[str, Form(max_length=20)] = "", epsilon: Annotated[str, Form(max_length=20)] = "",
                budget: Annotated[str, Form(max_length=20)] = "") -> Response:  # fmt: skip
    """Create an aggregation task: the same checked `aggregate.task` as `qdsn stats task create`, signed by
    this node (the helper and collector) and recorded in the staff audit log."""
    from qdsn.privacy import figures
    from qdsn.privacy.task import FOOTPRINT_MAX, default_leader, new_spec

    console = console_of(request)
    node = console.node
    names: list[str] = []
    vdaf, top, size = measure.strip(), _number(maximum, "max"), _number(length, "length")
    if vdaf == "footprints":  # [grams summed, how many] per category, as `qdsn stats report --indicator footprints`
        names = [c.strip() for c in categories.replace(",", "\n").splitlines() if c.strip()]
        if not names:
            raise InvalidInput("a footprints task needs its product categories", "one URN a line, in order")
        vdaf, top, size = "sumvec", top or FOOTPRINT_MAX, 2 * len(names)
    listed = [d for d in reporters.replace(",", "\n").split() if d]
    for d in listed:
        if not is_did(d):
            raise InvalidInput(f"reporter {d[:80]!r} is not a DID", "one member's DID a line")
    spec = new_spec(task.strip(), title.strip(), vdaf, leader=_blank(leader) or default_leader(node.ledger.state),
                    leader_url=leader_url.strip(), helper=node.did, helper_url=helper_url.strip(), collector=node.did,
                    start=_blank(start) or format_time(datetime.now(UTC).replace(microsecond=0)),
                    max_measurement=top, length=size, max_weight=_number(max_weight, "max weight"),
                    reporters=listed, region=_blank(region), industry=_blank(industry),
                    period=_number(period, "period") or 30 * 86400, min_batch=_number(min_batch, "minimum batch") or 5,
                    epsilon=_number(epsilon, "epsilon", float) or 1.0,
                    budget=_number(budget, "budget", float) or 4.0)  # fmt: skip
    if spec["task"] in node.ledger.state.tasks:
        raise InvalidInput(f"a task {spec['task']!r} is already on the ledger", "choose another id")
    (receipt,) = node.submit([node.home.sign("aggregate.task", spec)])
    if names:
        figures.name_categories(node.home.path, spec["task"], names)
    console.staff.record(staff, "stats.task", spec["task"], entry=receipt.seq, txid=receipt.txid, vdaf=spec["vdaf"])
    return RedirectResponse(f"{PREFIX}/statistics?created={receipt.seq}", status_code=303)


@router.post("/statistics/collect")
def collect_figure(request: Request, staff: Approver, task: Annotated[str, Form(max_length=128)],
                   period: Annotated[int, Form(ge=0, lt=2**31)]) -> Response:  # fmt: skip
    """Collect a period's figure from the task's leader, in a task of the node whose progress the page shows:
    the same `privacy.collect.collect` as `qdsn stats collect`, kept for the page and in the audit log."""
    from qdsn.api.client import NodeClient
    from qdsn.privacy import aggregator, collect, figures

    console = console_of(request)
    node = console.node
    t = aggregator.task_of(node, task)  # NotFound before anything starts
    if t.collector != node.did:
        raise InvalidInput(f"this node is not the collector of task {t.id}", f"{t.collector} collects it")

    def work(job: Any) -> dict[str, Any]:
        import ssl

        import httpx

        job.total, job.done = 2, 0
        ca = node.home.service().get("operator_ca")
        # The leader records the batch on the log and asks the helper before it answers: on a loaded
        # machine that outlasts a page's request, which is why this runs as a task, with room to finish.
        leader = NodeClient(t.leader_url, node.home.key(), node.did, timeout=COLLECT_SECONDS,
                            verify=ssl.create_default_context(cafile=str(ca)) if ca else True)  # fmt: skip
        try:
            job.done = 1
            fig = collect.collect(node, t.id, period, leader)
        except httpx.TransportError as e:
            raise Unavailable(
                f"the task's leader at {t.leader_url} did not answer ({type(e).__name__})",
                "collect again once it is reachable: nothing was released",
            ) from None
        finally:
            leader.close()
        figures.keep(node.home.path, fig)
        job.done = 2
        console.staff.record(staff, "stats.collect", t.id, period=period, count=fig.count, root=fig.root)
        return fig.to_json()

    job = console.tasks.start(f"collect period {period} of {t.id}", staff.name, work)
    return RedirectResponse(f"{PREFIX}/statistics/collect/{job.id}", status_code=303)


@router.get("/statistics/collect/{job_id}")
def collection(request: Request, staff: Approver, job_id: str) -> Response:
    job = console_of(request).tasks.get(job_id[:64], staff.name)
    if job is None:
        raise NotFound("no such collection of yours", "collections are kept for an hour after they end")
    return render(request, "regulator/statistics_collect.html", job=job)
