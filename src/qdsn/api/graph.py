"""The regional quality graph's routes on the regulator's node: the regulator's own signed requests only (the
graph holds what members shared with it). The graph is kept in memory and brought up to the replica before
each answer by folding only the entries appended since (`RegionGraph.update`)."""

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response

from qdsn.errors import PermissionDenied
from qdsn.graph.region import RegionGraph, draw_map, of_replica
from qdsn.node.node import Node

Code = Query(pattern=r"^\d{6}$", description="a GB/T 2260 division, e.g. 330000")


def add_routes(app: FastAPI, node: Node, signer: Any) -> None:
    """Add `/graph/*` to `app`; `signer` is the app's `Annotated` dependency giving the requester's DID (this
    module keeps its annotations evaluated, so FastAPI sees it as a dependency, not a query field)."""
    kept = RegionGraph()
    lock = threading.Lock()

    def answer(who: str, question: Callable[[RegionGraph], Any]) -> Any:
        """`question` asked of the graph brought up to the replica; one at a time, as a fold changes it."""
        if node.home.role != "regulator" or who != node.did:
            raise PermissionDenied("the regional graph answers its regulator's own requests only",
                                   "sign the request with the regulator node's key")  # fmt: skip
        node.catch_up()
        with lock:
            return question(of_replica(node.ledger.store, node.home.path, kept))

    @app.get("/graph/summary", tags=["graph"])
    def graph_summary(who: signer) -> dict[str, Any]:  # type: ignore[valid-type]
        """How much the regional graph holds (regulator only)."""
        return answer(who, RegionGraph.summary)

    @app.get("/graph/recall", tags=["graph"])
    def graph_recall(who: signer, source: Annotated[str, Query(min_length=1, max_length=600)]) -> dict[str, Any]:  # type: ignore[valid-type]
        """Everything downstream of a supplier (DID) or a batch (EPC): enterprises, products, batches,
        certificates (regulator only)."""
        return answer(who, lambda g: g.recall(source).to_json())

    @app.get("/graph/coverage", tags=["graph"])
    def graph_coverage(who: signer, by: Annotated[str, Query(pattern="^(region|industry)$")] = "region",  # type: ignore[valid-type]
                       level: Annotated[str, Query(pattern="^(province|prefecture|county)$")] = "province",
                       region: Annotated[str | None, Code] = None) -> list[dict[str, Any]]:  # fmt: skip
        """Certification coverage and status per region or industry (regulator only)."""
        return answer(who, lambda g: g.coverage(by, level, region))

    @app.get("/graph/open", tags=["graph"])
    def graph_open(who: signer, region: Annotated[str | None, Code] = None) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        """Enterprises with open quality notifications (regulator only)."""
        return answer(who, lambda g: g.open_notifications(region))

    @app.get("/graph/suppliers", tags=["graph"])
    def graph_suppliers(who: signer, product: Annotated[str | None, Query(max_length=200)] = None,  # type: ignore[valid-type]
                        region: Annotated[str | None, Code] = None, confirmed: bool = False,
                        top: Annotated[int, Query(ge=0, le=1000)] = 10) -> dict[str, Any]:  # fmt: skip
        """Concentration of suppliers (regulator only)."""
        return answer(who, lambda g: g.suppliers(product, region, confirmed, top))

    @app.get("/graph/map.svg", tags=["graph"], response_class=Response)
    def graph_map(who: signer, indicator: Annotated[str, Query(max_length=20)] = "coverage",  # type: ignore[valid-type]
                  province: Annotated[str | None, Code] = None) -> Response:  # fmt: skip
        """The tile-grid map of an indicator by region, as SVG (regulator only)."""
        svg, _, _ = answer(who, lambda g: draw_map(g, indicator, province))
        return Response(svg, media_type="image/svg+xml")
