"""The ledger explorer: pages of entries, checkpoints, cosignatures, witnesses and alerts, read from a
replica's store.

Every page is one index range (keyset pagination on `seq` or `size`), so a page costs what it shows,
not what the log holds: `entries` filtered by type or submitter reads `ix_entries_type_seq` or
`ix_entries_submitter_seq` from the cursor on, never an OFFSET. The console's pages and the JSON API
both read these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select, text

from qdsn.errors import InvalidInput
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import Checkpoint, parse_note
from qdsn.ledger.store import Store, checkpoints, cosignatures, entries

MAX_LIMIT = 200


@dataclass(frozen=True)
class Page:
    """Items of one page, and the cursors of the pages either side (None at an end of the log)."""

    items: list[dict[str, Any]]
    newer: int | None = None
    older: int | None = None
    filters: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "newer": self.newer, "older": self.older, **self.filters}


def limit_of(limit: int | None) -> int:
    """A page size between 1 and MAX_LIMIT (default 50)."""
    if limit is None:
        return 50
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"a page holds 1 to {MAX_LIMIT} items, not {limit}", "ask with limit=50")
    return limit


def _type_of(type: str | None) -> str | None:
    if type in (None, ""):
        return None
    if type not in tx.REGISTRY:
        raise InvalidInput(f"{type!r} is not a transaction type", f"choose one of {', '.join(sorted(tx.REGISTRY))}")
    return type


def _keyset(q, column, before: int | None, after: int | None, limit: int):  # type: ignore[no-untyped-def]
    """Newest first below `before` (the default), or oldest first above `after`; one extra row tells
    whether the page has a neighbour."""
    if before is not None and after is not None:
        raise InvalidInput("a page is asked with `before` or with `after`, not both")
    if after is not None:
        return q.where(column > after).order_by(column).limit(limit + 1), True
    if before is not None:
        q = q.where(column < before)
    return q.order_by(column.desc()).limit(limit + 1), False


def _paged(rows: list, key, limit: int, ascending: bool, before: int | None, after: int | None):  # type: ignore[no-untyped-def]
    """(rows of the page newest first, newer cursor, older cursor)."""
    more = len(rows) > limit
    rows = rows[:limit]
    if ascending:
        rows.reverse()
    if not rows:
        return rows, None, None
    newest, oldest = key(rows[0]), key(rows[-1])
    newer = newest if (after is None and before is not None) or (ascending and more) else None
    older = oldest if (not ascending and more) or after is not None else None
    return rows, newer, older


def entries_page(
    store: Store,
    *,
    type: str | None = None,
    submitter: str | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> Page:
    """Entries newest first, of one type and/or one submitter; `before`/`after` are positions (`seq`)
    from the neighbouring pages' cursors."""
    n = limit_of(limit)
    kind = _type_of(type)
    q = select(entries.c.seq, entries.c.txid, entries.c.type, entries.c.submitter, entries.c.leaf)
    if kind is not None:
        q = q.where(entries.c.type == kind)
    if submitter:
        q = q.where(entries.c.submitter == submitter)
    q, ascending = _keyset(q, entries.c.seq, before, after, n)
    with store.engine.connect() as c:
        rows = c.execute(q).all()
    rows, newer, older = _paged(rows, lambda r: r.seq, n, ascending, before, after)
    items = [_summary(r.seq, r.txid.hex(), r.type, r.submitter, r.leaf) for r in rows]
    filters = {k: v for k, v in (("type", kind), ("submitter", submitter or None)) if v}
    return Page(items, newer, older, filters)


def _summary(seq: int, txid: str, type: str, submitter: str, leaf: bytes) -> dict[str, Any]:
    doc = orjson.loads(leaf)
    return {"seq": seq, "txid": txid, "type": type, "submitter": submitter, "created": doc.get("created"),
            "payload": doc.get("payload")}  # fmt: skip


def entry(store: Store, ref: str) -> dict[str, Any]:
    """One entry by position or transaction id: its envelope as recorded, with its id and position."""
    ref = ref.strip()
    if ref.isdigit():
        row = store.entry(seq=int(ref))
    elif len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
        row = store.entry(txid=ref)
    else:
        raise InvalidInput(f"{ref[:80]!r} is neither an entry's position nor a transaction id (64 hex digits)")
    env = tx.from_leaf(row.leaf)
    return {"seq": row.seq, "txid": row.txid, "size": store.size, **env.to_json()}


def type_counts(store: Store, since: dict[str, Any] | None = None) -> dict[str, Any]:
    """How many entries of each type the log holds: `since` (an earlier answer) is brought up to date by
    counting only the entries appended after it, so a caller that keeps its last answer pays for the new
    entries only."""
    start = since["size"] if since else 0
    counts = dict(since["types"]) if since else {}
    size = store.size
    if size > start:
        q = (select(entries.c.type, func.count()).where(entries.c.seq >= start, entries.c.seq < size)
             .group_by(entries.c.type))  # fmt: skip
        with store.engine.connect() as c:
            for t, k in c.execute(q):
                counts[t] = counts.get(t, 0) + k
    return {"size": size, "types": counts}


def checkpoints_page(store: Store, *, before: int | None = None, limit: int | None = None) -> Page:
    """The checkpoints this replica holds (the log operator signs and keeps each), newest first, each
    with its root, the cosignatures it carries in its note and those recorded on the ledger."""
    n = limit_of(limit)
    q, _ = _keyset(select(checkpoints.c.size, checkpoints.c.note), checkpoints.c.size, before, None, n)
    with store.engine.connect() as c:
        rows = c.execute(q).all()
        rows, _, older = _paged(rows, lambda r: r.size, n, False, before, None)
        sizes = [r.size for r in rows]
        counted = select(cosignatures.c.size, func.count()).where(cosignatures.c.size.in_(sizes))
        recorded = dict(c.execute(counted.group_by(cosignatures.c.size)).all()) if sizes else {}
    items = []
    for r in rows:
        body, sigs = parse_note(r.note)
        cp = Checkpoint.parse(body)
        items.append({"size": cp.size, "root": cp.root.hex(), "origin": cp.origin, "signatures": len(sigs),
                      "signers": sorted({s.name for s in sigs}), "recorded_cosignatures": recorded.get(r.size, 0),
                      "note": r.note})  # fmt: skip
    return Page(items, None, older)


def cosignatures_page(
    store: Store, *, size: int | None = None, cosigner: str | None = None, before: int | None = None,
    limit: int | None = None,
) -> Page:  # fmt: skip
    """`checkpoint.cosign` records, newest first, for one checkpoint size and/or one cosigner."""
    n = limit_of(limit)
    q = select(cosignatures)
    if size is not None:
        q = q.where(cosignatures.c.size == size)
    if cosigner:
        q = q.where(cosignatures.c.cosigner == cosigner)
    q, _ = _keyset(q, cosignatures.c.seq, before, None, n)
    with store.engine.connect() as c:
        rows = c.execute(q).all()
    rows, _, older = _paged(rows, lambda r: r.seq, n, False, before, None)
    items = [{"seq": r.seq, "size": r.size, "root": r.root.hex(), "cosigner": r.cosigner, "timestamp": r.timestamp}
             for r in rows]  # fmt: skip
    return Page(items, None, older, {k: v for k, v in (("size", size), ("cosigner", cosigner or None)) if v})


# The distinct cosigners, each found by one index probe after the last (a loose index scan: neither SQLite
# nor PostgreSQL skips through an index for DISTINCT by itself), with its newest cosignature: the cost is
# one probe per witness, not one row per cosignature ever recorded.
_WITNESSES = text("""
WITH RECURSIVE w(cosigner) AS (
  SELECT MIN(cosigner) FROM cosignatures WHERE cosigner > :after
  UNION ALL
  SELECT (SELECT MIN(c.cosigner) FROM cosignatures c WHERE c.cosigner > w.cosigner) FROM w
  WHERE w.cosigner IS NOT NULL
)
SELECT w.cosigner, (SELECT MAX(c.size) FROM cosignatures c WHERE c.cosigner = w.cosigner) AS size
FROM w WHERE w.cosigner IS NOT NULL LIMIT :limit
""")


def witnesses(store: Store, *, after: str = "", limit: int | None = None) -> Page:
    """Every member that cosigned this log, with the newest size it cosigned, when, and how far behind the
    log and its newest checkpoint that is: a witness that stopped cosigning is one that fell behind."""
    n = limit_of(limit)
    latest = store.last_checkpoint()
    checkpoint_size = latest[0] if latest else None
    with store.engine.connect() as c:
        rows = c.execute(_WITNESSES, {"after": after, "limit": n + 1}).all()
        items = []
        for cosigner, size in rows[:n]:
            stamp = c.execute(select(func.max(cosignatures.c.timestamp)).where(
                cosignatures.c.cosigner == cosigner, cosignatures.c.size == size)).scalar()  # fmt: skip
            behind = None if checkpoint_size is None else max(checkpoint_size - size, 0)
            items.append({"cosigner": cosigner, "size": size, "timestamp": stamp, "behind_log": store.size - size,
                          "behind_checkpoint": behind, "current": behind == 0})  # fmt: skip
    following = items[-1]["cosigner"] if len(rows) > n else None  # the next page starts after it
    return Page(items, None, None, {"checkpoint": checkpoint_size, "log_size": store.size, "next": following})


def alerts_page(store: Store, *, before: int | None = None, limit: int | None = None) -> Page:
    """`alert.raise` entries, newest first: split views the members exposed, with both signed claims."""
    return entries_page(store, type="alert.raise", before=before, limit=limit)
