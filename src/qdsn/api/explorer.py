"""The ledger explorer and the member registry as JSON, for participants (signed requests): the same pages
the regulator's console shows, from the same functions (`ledger.explorer`, `ledger.registry`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from qdsn.ledger import explorer, registry
from qdsn.ledger.store import Store
from qdsn.node.node import Node

Position = Annotated[int | None, Query(ge=0, lt=2**53, description="a cursor: an entry's position")]
Limit = Annotated[int | None, Query(ge=1, le=explorer.MAX_LIMIT, description="items per page (default 50)")]
Word = Annotated[str | None, Query(max_length=512)]


def router(node: Node, signer: Any) -> APIRouter:
    """The routes, each for a signed participant (`signer` is the app's dependency that checks it)."""
    api = APIRouter(tags=["explorer"])

    def store() -> Store:
        return node.ledger.store

    @api.get("/explorer/entries")
    def entries(who: signer, type: Word = None, submitter: Word = None, before: Position = None,
                after: Position = None, limit: Limit = None) -> dict[str, Any]:  # fmt: skip
        """Log entries newest first with their payloads, of one type and/or submitter; page with the
        `older` cursor as `before` (or `newer` as `after`)."""
        page = explorer.entries_page(store(), type=type, submitter=submitter, before=before, after=after, limit=limit)
        return page.to_json() | {"size": store().size}

    @api.get("/explorer/entries/{ref}")
    def entry(ref: Annotated[str, Path(max_length=64)], who: signer) -> dict[str, Any]:
        """One entry (by position or transaction id) as its signed envelope."""
        return explorer.entry(store(), ref)

    @api.get("/explorer/checkpoints")
    def checkpoints(who: signer, before: Position = None, limit: Limit = None) -> dict[str, Any]:
        """The log's signed checkpoints newest first, with their cosignatures."""
        return explorer.checkpoints_page(store(), before=before, limit=limit).to_json()

    @api.get("/explorer/cosignatures")
    def cosignatures(who: signer, size: Position = None, cosigner: Word = None, before: Position = None,
                     limit: Limit = None) -> dict[str, Any]:  # fmt: skip
        """Recorded `checkpoint.cosign` entries newest first, for one size and/or cosigner."""
        return explorer.cosignatures_page(store(), size=size, cosigner=cosigner, before=before, limit=limit).to_json()

    @api.get("/explorer/witnesses")
    def witnesses(who: signer, after: Word = None, limit: Limit = None) -> dict[str, Any]:
        """Each witness's newest cosignature and how far behind the log and its checkpoint it is."""
        return explorer.witnesses(store(), after=after or "", limit=limit).to_json()

    @api.get("/explorer/alerts")
    def alerts(who: signer, before: Position = None, limit: Limit = None) -> dict[str, Any]:
        """Split views raised on the ledger (`alert.raise`), newest first."""
        return explorer.alerts_page(store(), before=before, limit=limit).to_json()

    @api.get("/members")
    def members(who: signer, region: Word = None, industry: Word = None, role: Word = None,
                q: Word = None, before: Position = None, after: Position = None,
                limit: Limit = None) -> dict[str, Any]:  # fmt: skip
        """The member registry newest first: region (a GB/T 2260 division and all inside it), industry (a GB/T
        4754 code and all under it), role, and a search of names, DIDs and credit codes."""
        return registry.members_page(store(), region=region, industry=industry, role=role, search=q, before=before,
                                     after=after, limit=limit).to_json()  # fmt: skip

    @api.get("/members/regions")
    def regions(who: signer, level: Annotated[str, Query(max_length=16)] = "province") -> dict[str, Any]:
        """How many members each province, prefecture or county holds."""
        return {"level": level, "regions": registry.by_region(store(), level)}

    @api.get("/members/{did}")
    def member(did: Annotated[str, Path(max_length=512)], who: signer) -> dict[str, Any]:
        """One member's registry record."""
        return registry.member(store(), did)

    return api
