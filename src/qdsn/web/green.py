"""The manufacturer's green and AI pages: its PACT v3 product footprints with the anchored activity data,
the emission factor table and the low-carbon certificate behind each, a footprint computed from the
activity data as `qdsn footprint compute` does, and the Hotelling T² chart of a dataset's characteristics
(phase I and II, or the robust MCD variant) with the variables that carry each signal. Every figure comes
from the same functions the CLI and the certification models call (`footprint.calc`, `node.pact`,
`quality.multivariate`)."""

from __future__ import annotations

import bisect
import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from qdsn.errors import InvalidInput, NotFound, QDSNError
from qdsn.ledger import tx
from qdsn.node.node import Node
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

log = logging.getLogger(__name__)
PREFIX = "/console/enterprise"  # where web/manufacturer.py includes `router`: what its links and redirects name
router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/footprints", N_("Product footprints")),
    NavItem(f"{PREFIX}/multivariate", N_("Multivariate chart")),
]
Viewer = Annotated[Staff, Depends(require("viewer"))]
Engineer = Annotated[Staff, Depends(require("engineer"))]
PAGE = 50  # footprints listed per page
MAX_ACTIVITY = 100_000  # the newest activity records searched for a footprint's data
SHOWN = 500  # activity records listed on a footprint's page at most (all of them are recomputed)
ORDER = ("energy", "material", "transport", "output")  # how a footprint's activity data is listed
WORDS = [N_("energy"), N_("material"), N_("transport"), N_("output"), N_("Active"), N_("Deprecated")]
# vault -> dataset -> (footprints read, the ids they name as preceding): kept by the vault object itself
_named: WeakKeyDictionary[Any, dict[str, tuple[int, set[str]]]] = WeakKeyDictionary()


def _node(request: Request) -> Node:
    return console_of(request).node


# -- footprints -------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def anchors(node: Node, dataset: str) -> list[dict[str, Any]]:
    """This node's `dataset.anchor` entries of `dataset`, in record order: where each is, its records, its root."""
    out = []
    for row in node.ledger.store.rows_of_type("dataset.anchor"):
        if row.submitter == node.did and (p := tx.from_leaf(row.leaf).payload)["dataset"] == dataset:
            out.append({"seq": row.seq, "first": p["first"], "count": p["count"], "root": p["root"]})
    return sorted(out, key=lambda a: a["first"])


def anchor_of(index: int, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry among `anchors(...)` that anchored record `index`, if one did."""
    at = bisect.bisect_right([a["first"] for a in entries], index) - 1
    return entries[at] if at >= 0 and index < entries[at]["first"] + entries[at]["count"] else None


def footprints(node: Node) -> list[dict[str, Any]]:
    """This node's footprints as `qdsn footprint list` reads them (`node.pact.stored`), newest first, each
    with its dataset and place in it."""
    from qdsn.node import pact

    out = [{"dataset": d, "index": i, "pf": pf} for d in pact.footprint_datasets(node)
           for i, pf in enumerate(pact.stored(node, d))]  # fmt: skip
    return out[::-1]


def geography(pcf: dict[str, Any]) -> str:
    """Where a footprint applies, as PACT names it (global when it names nowhere narrower)."""
    names = [pcf.get(k) for k in ("geographyCountrySubdivision", "geographyCountry", "geographyRegionOrSubregion")]
    return ", ".join(str(n) for n in names if n) or "global"


def low_carbon(node: Node) -> list[dict[str, Any]]:
    """The low-carbon product certificates (scheme product-footprint) this node keeps and holds — each
    checked as the certificates page checks it — with their footprint claim and status on the ledger."""
    from qdsn.web.manufacturer import held_claims, kept

    out = []
    for key, text in kept(node).items():
        try:
            claims = held_claims(node, text)
        except QDSNError:
            continue  # not one this node holds: the certificates page says why
        if claims.get("scheme") != "product-footprint":
            continue
        ind = claims.get("indicators") or {}
        number = str(claims.get("certificate_number"))
        cred = node.ledger.state.credentials.get(number)
        issuer = node.ledger.state.identities.get(str(claims.get("iss")))
        out.append({"key": key, "number": number, "status": cred.status if cred else "?",
                    "issuer": issuer.name if issuer else "?", "product": str(ind.get("product", "")),
                    "pcf": ind.get("pcf"), "declared_unit": ind.get("declared_unit"),
                    "threshold": ind.get("threshold"), "table": ind.get("table") or {},
                    "valid_until": str(claims.get("valid_until", ""))[:10]})  # fmt: skip
    return out


def backing(pf: dict[str, Any], certificates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The low-carbon certificates whose product is one of the footprint's product ids."""
    ids = {str(p).lower() for p in pf.get("productIds", ())}
    return [c for c in certificates if c["product"].lower() in ids]


def activity_of(node: Node, pf: dict[str, Any]) -> list[dict[str, Any]]:
    """The anchored activity records behind a footprint: this node's activity data of one of its product
    ids within its reference period, each with its dataset, place and anchoring entry."""
    pcf = pf["pcf"]
    ids = {str(p).lower() for p in pf.get("productIds", ())}
    start, end = _time(pcf.get("referencePeriodStart")), _time(pcf.get("referencePeriodEnd"))
    out = []
    for d, ds in node.ledger.state.datasets.items():
        if ds.owner != node.did or ds.kind != "activity" or ds.shredded or not ds.anchored:
            continue
        first, entries = max(0, ds.anchored - MAX_ACTIVITY), anchors(node, d)
        for i, r in enumerate(node.vault.records(d, first, ds.anchored), start=first):
            a, b = _time(r.get("start")), _time(r.get("end"))
            if str(r.get("product", "")).lower() in ids and a and b and start and end and start <= a and b <= end:
                out.append({"dataset": d, "index": i, "record": r, "anchor": anchor_of(i, entries)})
    out.sort(key=lambda x: (ORDER.index(x["record"]["category"]) if x["record"].get("category") in ORDER else 9,
                            str(x["record"].get("start"))))  # fmt: skip
    return out


def factor_table(pf: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the emission factor table the footprint names, if QDSN ships that id and version; every source
    named in its secondaryEmissionFactorSources)."""
    from qdsn.footprint import calc

    named = [s for s in pf["pcf"].get("secondaryEmissionFactorSources") or () if isinstance(s, dict)]
    for s in named:
        if s.get("name") in calc.builtin_tables():
            table = calc.load_table(str(s["name"]))
            if table["version"] == s.get("version"):
                return table, named
    return None, named


def named_before(node: Node, dataset: str) -> set[str]:
    """The footprint ids the footprints of `dataset` name among their precedingPfIds (those `pact.stored` marks
    Deprecated), kept per vault and dataset and brought up to date with the footprints anchored since."""
    anchored = node.ledger.state.datasets[dataset].anchored
    kept = _named.setdefault(node.vault, {})
    upto, named = kept.get(dataset, (0, set()))
    if anchored > upto:
        named = named | {i for pf in node.vault.records(dataset, upto, anchored) for i in pf.get("precedingPfIds", ())}
        kept[dataset] = (anchored, named)
    return named


def footprints_window(node: Node, start: int, count: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many footprints this node has, those at [start, start + count) newest first), each with its dataset
    and place in it and the status `pact.stored` gives it: only those records are read from the vault."""
    from qdsn.node import pact

    sets = [(d, node.ledger.state.datasets[d].anchored) for d in pact.footprint_datasets(node)]
    out: list[dict[str, Any]] = []
    at = 0  # how many newer footprints the datasets walked so far hold
    for d, n in reversed(sets):
        hi, lo = n - max(0, start - at), n - max(0, start + count - at)  # this dataset's indices on the page
        hi, lo = max(0, min(n, hi)), max(0, min(n, lo))
        if lo < hi:
            named = named_before(node, d)
            records = node.vault.records(d, lo, hi)
            for i in range(hi - 1, lo - 1, -1):
                pf = records[i - lo]
                out.append({"dataset": d, "index": i, "pf": pf | {"status": "Deprecated"} if pf["id"] in named else pf})
        at += n
    return at, out


@router.get("/footprints")
def footprints_page(request: Request, staff: Viewer, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    """The maker's product footprints, newest first, a page at a time (only that page read from the vault), each
    with whether a low-carbon certificate backs it; and (engineer) the form that computes one from the activity
    data."""
    from qdsn.footprint import calc

    node = _node(request)
    node.catch_up()
    total, rows = footprints_window(node, (page - 1) * PAGE, PAGE)
    pages = max(1, -(-total // PAGE))
    if page > pages:
        raise NotFound(f"there is no page {page}: {total} footprints fill {pages}", "go back to page 1")
    certificates = low_carbon(node)
    shown = [f | {"certificates": backing(f["pf"], certificates), "geography": geography(f["pf"]["pcf"])}
             for f in rows]  # fmt: skip
    activity = [d for d, ds in node.ledger.state.datasets.items()
                if ds.owner == node.did and ds.kind == "activity" and not ds.shredded]  # fmt: skip
    return render(request, "enterprise/footprints.html", rows=shown, page=page, pages=pages, total=total,
                  activity=activity, tables=calc.builtin_tables())  # fmt: skip


@router.get("/footprints/{pf_id}")
def footprint_page(request: Request, pf_id: str, staff: Viewer) -> Response:
    """One footprint: the PACT fields people read, the activity data behind it and where it is anchored,
    the emission factor table, the footprint recomputed from that data and table, and its certificate."""
    from qdsn.footprint import calc

    node = _node(request)
    node.catch_up()
    found = next((f for f in footprints(node) if f["pf"]["id"].lower() == pf_id.lower()), None)
    if found is None:
        raise NotFound(f"this node has no footprint {pf_id[:80]!r}", "the footprints page lists them")
    pf = found["pf"]
    rows = activity_of(node, pf)
    table, named = factor_table(pf)
    again: dict[str, Any] = {}
    if table is not None and rows:
        product = next((str(r["record"]["product"]) for r in rows), "")
        try:
            fp = calc.compute([r["record"] for r in rows], table, product)
            again = {"pcf": fp.pcf, "same": fp.pcf == pf["pcf"]["pcfExcludingBiogenicUptake"], "fp": fp}
        except InvalidInput as e:
            again = {"error": e.what}
    return render(request, "enterprise/footprint.html", f=found, pf=pf, pcf=pf["pcf"], geography=geography(pf["pcf"]),
                  anchor=anchor_of(found["index"], anchors(node, found["dataset"])), rows=rows[:SHOWN],
                  count=len(rows), table=table, named=named,
                  table_id=calc.table_id(table) if table else None, again=again,
                  certificates=backing(pf, low_carbon(node)))  # fmt: skip


@router.post("/footprints/compute")
async def footprint_compute(request: Request, staff: Engineer) -> Response:
    """A product's footprint from this node's anchored activity data and a shipped emission factor table,
    as `qdsn footprint compute` gives it (the owner's own view; a certificate needs the attested run)."""
    from qdsn.footprint import calc

    console = console_of(request)
    node = console.node
    form = await request.form()
    dataset, product = str(form.get("dataset") or ""), str(form.get("product") or "").strip()
    name = str(form.get("table") or "")
    if not product or len(product) > 128:
        raise InvalidInput("name the product as its activity records do (up to 128 characters)",
                           "e.g. urn:gtin:6901234567892")  # fmt: skip
    if name not in calc.builtin_tables():  # a shipped table by name: never a path on the node's disk
        raise InvalidInput(f"{name[:80]!r} is not an emission factor table this node ships",
                           f"choose one of: {', '.join(calc.builtin_tables())}")  # fmt: skip
    node.catch_up()
    ds = node.ledger.state.datasets.get(dataset)
    if ds is None or ds.owner != node.did or ds.kind != "activity" or ds.shredded:
        raise NotFound(f"{dataset[:80]!r} is not an activity dataset of this node",
                       "anchor activity data in a dataset of kind activity first")  # fmt: skip
    table = calc.load_table(name)
    records = node.vault.records(dataset, 0, ds.anchored) if ds.anchored else []
    fp = calc.compute(records, table, product)
    console.staff.record(staff, "footprint.compute", product, dataset=dataset, table=fp.table, pcf=fp.pcf)
    return render(request, "enterprise/footprint_computed.html", fp=fp, dataset=dataset, table=table)


# -- the multivariate (Hotelling T²) chart ----------------------------------------------------------

METHODS = {"t2": N_("Hotelling T² (phase I, then phase II)"), "mcd": N_("robust: minimum covariance determinant")}
LISTED = 1000  # a window's points listed in a table beneath the chart at most
SIGNALS = 200  # signals listed with their contributing variables at most
TOP = 3  # contributing variables named per signal
FITS = 8  # fits kept, the least recently viewed dropped first
READINGS = 2  # datasets' aligned readings kept, the same way
# Fits by node, dataset, variables, method, phase I window asked and records anchored (a new anchored batch
# makes a new key), and the aligned readings of every characteristic by node, dataset and records anchored:
# reading and aligning the newest 200,000 records takes most of a first view, and neither moving the chart's
# window nor choosing other variables, another method or phase I window reads them again. A few of each at
# most, so a long-running node's memory stays bounded.
_FITS: OrderedDict[tuple[str, str, tuple[str, ...], str, str, int], tuple[list[str], int, dict[str, Any]]] = \
    OrderedDict()  # fmt: skip
_READINGS: OrderedDict[tuple[str, str, tuple[str, ...], int], tuple[list[str], Any, Any]] = OrderedDict()
_KEPT_LOCK = threading.Lock()  # pages are served from a thread pool


def _kept(cache: OrderedDict[Any, Any], size: int, key: Any, make: Any) -> Any:
    """`cache[key]`, made by `make()` when missing; the least recently used dropped beyond `size`."""
    with _KEPT_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()  # outside the lock: other pages are served meanwhile
    with _KEPT_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)
    return value


def warm() -> None:
    """Load the libraries a chart's first view would otherwise wait for — scipy.special, matplotlib and its
    fonts, scikit-learn's MCD: a second or two once per process — when the console starts, not when the
    first page needs them."""
    try:
        from sklearn.covariance import MinCovDet  # noqa: F401

        from qdsn.quality import multivariate, render  # noqa: F401

        render._pyplot()
    except Exception:  # the page that needs one says what is wrong, with the request's own error
        log.warning("the chart libraries could not be loaded in advance", exc_info=True)


def multivariate_datasets(node: Node) -> list[dict[str, Any]]:
    """This maker's measurement datasets, each with its declared characteristics."""
    out = []
    for d, ds in node.ledger.state.datasets.items():
        if ds.owner == node.did and ds.kind == "measurements" and not ds.shredded:
            chars = [c["name"] for c in node.ledger.declaration(d).get("characteristics", ())]
            out.append({"id": d, "title": ds.title, "chars": chars, "anchored": ds.anchored})
    return out


def t2_view(values: Any, names: list[str], method: str, phase1: int, seed: int = 0) -> dict[str, Any]:
    """Fit on the first `phase1` rows (phase I) and judge every row: T² of each, both limits, the rows out
    of their limit, each variable's part of every row's T²."""
    import numpy as np

    from qdsn.quality import multivariate as mv

    x = np.asarray(values, dtype=float)
    m, p = x.shape
    if m < p + 2:
        raise InvalidInput(f"only {m} rows have a reading of every chosen characteristic at one time; "
                           f"{p} variables need at least {p + 2}",
                           "choose fewer characteristics, or anchor more readings")  # fmt: skip
    if not p + 2 <= phase1 <= m:
        raise InvalidInput(f"a phase I window of {phase1} rows does not fit: with {p} variables it needs at least "
                           f"{p + 2} rows, and the dataset has {m}",
                           "a phase I window of a few hundred in-control rows gives steady limits")  # fmt: skip
    try:
        model = mv.phase1(x[:phase1], names=tuple(names)) if method == "t2" else \
            mv.fit_mcd(x[:phase1], names=tuple(names), seed=seed)  # fmt: skip
    except (ValueError, np.linalg.LinAlgError) as e:  # scikit-learn's own refusals of a degenerate window
        raise InvalidInput(f"the phase I window cannot be fitted: {str(e)[:200]}",
                           "choose a longer window or other characteristics") from None  # fmt: skip
    scores = model.score(x)
    limits = np.where(np.arange(m) < phase1, model.ucl_phase1, model.ucl)
    above = np.flatnonzero(scores > limits)
    return {"model": model, "scores": scores, "limits": limits, "above": above,
            "parts": mv.contributions(model, x[above])}  # fmt: skip


def readings(node: Node, dataset: str, names: list[str]) -> tuple[list[str], Any, Any]:
    """`multivariate.readings_at_times` of the dataset's newest records (`MAX_POINTS`) for `names`, kept."""
    from qdsn.quality import multivariate as mv
    from qdsn.web.manufacturer import MAX_POINTS

    anchored = node.ledger.state.datasets[dataset].anchored
    first = max(0, anchored - MAX_POINTS)
    return _kept(_READINGS, READINGS, (node.did, dataset, tuple(names), anchored),  # type: ignore[no-any-return]
                 lambda: mv.readings_at_times(node.vault.records(dataset, first, anchored) if anchored else [],
                                              names))  # fmt: skip


def fitted(node: Node, dataset: str, chosen: list[str], method: str, phase1: str,
           chars: list[str] | None = None) -> tuple[list[str], int, dict[str, Any]]:  # fmt: skip
    """(times, phase I rows, `t2_view`) of the rows of the dataset's newest records at which every `chosen`
    characteristic was read, kept; the records aligned once for all of `chars` (default: `chosen`)."""
    from qdsn.quality import multivariate as mv

    names = chars or chosen
    anchored = node.ledger.state.datasets[dataset].anchored

    def fit() -> tuple[list[str], int, dict[str, Any]]:
        times, x = mv.complete(*readings(node, dataset, names), [names.index(c) for c in chosen])
        size = int(phase1) if phase1 else max(len(chosen) + 2, len(times) // 2)
        return times, size, t2_view(x, chosen, method, size)

    key = (node.did, dataset, tuple(chosen), method, phase1, anchored)  # the same rows: the same fit
    return _kept(_FITS, FITS, key, fit)  # type: ignore[no-any-return]


@router.get("/multivariate")
def multivariate_page(
    request: Request,
    staff: Viewer,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    variables: Annotated[list[str] | None, Query()] = None,
    method: Annotated[str, Query(max_length=8)] = "t2",
    phase1: Annotated[str, Query(max_length=12)] = "",
    window: int = 200,
    start: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    """The Hotelling T² chart of a measurement dataset's characteristics read at the same times: phase I
    limit (beta) over the phase I window and phase II UCL (F) after it — or the MCD's χ² limit — the
    rows out of their limit marked and listed with the variables that carry them; a window of a long
    series shown, the model from all of its phase I rows."""
    import numpy as np

    from qdsn.quality import render as pictures
    from qdsn.web.manufacturer import WINDOWS, _declared

    node = _node(request)
    node.catch_up()
    listing = multivariate_datasets(node)
    if not dataset:
        return render(request, "enterprise/multivariate.html", datasets=listing, dataset=None, view=None)
    spec = _declared(node, dataset)
    ds = node.ledger.state.datasets[dataset]
    if ds.kind != "measurements" or ds.shredded:
        raise InvalidInput(f"dataset {dataset!r} holds {ds.kind}{' (shredded)' if ds.shredded else ''}, not "
                           "measurements", "the multivariate chart reads a measurement dataset")  # fmt: skip
    chars = [c["name"] for c in spec.get("characteristics", ())]
    if len(chars) < 2:
        raise InvalidInput(f"dataset {dataset!r} declares {len(chars)} characteristic(s): a multivariate chart needs "
                           "two or more", "its own I-MR chart is on the dataset page")  # fmt: skip
    chosen = list(dict.fromkeys(variables or chars))
    unknown = [v for v in chosen if v not in chars]
    if unknown:
        raise InvalidInput(f"{unknown[0][:80]!r} is not a characteristic of {dataset!r}",
                           f"choose among: {', '.join(chars)}")  # fmt: skip
    if len(chosen) < 2:
        raise InvalidInput("choose two or more characteristics: T² of one variable is its own chart",
                           "its I-MR chart is on the dataset page")  # fmt: skip
    if method not in METHODS:
        raise InvalidInput(f"method is t2 or mcd, not {method[:20]!r}")
    phase1, start = phase1.strip(), start.strip()
    if phase1 and not (phase1.isascii() and phase1.isdigit()):  # str.isdigit alone takes "²", which int refuses
        raise InvalidInput(f"phase I window: {phase1[:12]!r} is not a number of rows")
    if start and not (start.isascii() and start.isdigit()):
        raise InvalidInput(f"from point: {start[:12]!r} is not a row number", "leave it empty for the newest rows")
    times, size, fit = fitted(node, dataset, chosen, method, str(int(phase1)) if phase1 else "", chars)
    rows = len(times)
    window = window if window in WINDOWS else 200
    n = rows if window == 0 else min(window, rows)
    at = int(start) if start else None  # the row to start at, from 1; none: the newest
    begin = rows - n if at is None else min(max(0, at - 1), rows - n)
    model = fit["model"]
    title = f"{'T²' if method == 't2' else 'T² (MCD)'} · {', '.join(chosen)} · {begin + 1}–{begin + n} / {rows}"
    svg = pictures.svg(pictures.draw_t2(fit["scores"][begin : begin + n], model.ucl, title=title,
                                        excluded=model.excluded, first=begin + 1, ucl_phase1=model.ucl_phase1,
                                        phase1=size))  # fmt: skip
    lo, hi = np.searchsorted(fit["above"], [begin, begin + n]).tolist()  # the signals in the window
    signals = []
    for i, parts in zip(fit["above"][lo:hi][:SIGNALS].tolist(), fit["parts"][lo:hi][:SIGNALS], strict=True):
        t2 = float(fit["scores"][i])
        top = np.argsort(-parts, kind="stable")[:TOP].tolist()
        signals.append({"row": i + 1, "time": times[i], "t2": t2, "limit": float(fit["limits"][i]),
                        "phase": "I" if i < size else "II",
                        "top": [(chosen[j], float(parts[j]), float(parts[j]) / t2) for j in top]})  # fmt: skip
    scores, limits = fit["scores"][begin : begin + n].tolist(), fit["limits"][begin : begin + n].tolist()
    points = [{"row": begin + k + 1, "time": times[begin + k], "t2": t2, "exact": repr(t2), "out": t2 > limit}
              for k, (t2, limit) in enumerate(zip(scores, limits, strict=True))] if n <= LISTED else []  # fmt: skip
    view = {"svg": svg, "rows": rows, "begin": begin, "count": n, "window": window, "phase1": size,
            "ucl": model.ucl, "ucl_phase1": model.ucl_phase1, "alpha": model.alpha, "excluded": len(model.excluded),
            "signals": signals, "above": hi - lo,
            "points": points, "method": method, "p": len(chosen)}  # fmt: skip
    return render(request, "enterprise/multivariate.html", datasets=listing, dataset=ds, chars=chars, chosen=chosen,
                  view=view, windows=WINDOWS, methods=METHODS, listed=LISTED)  # fmt: skip
