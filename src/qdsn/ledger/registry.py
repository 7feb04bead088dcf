"""The member registry: the organisations the regulator admitted, searched by region, industry, role and
name, a page at a time, from the `members` table each `identity.register` fills as it is appended.

A region filter names a division and finds everything inside it (a province's code finds its prefectures'
and counties' members): GB/T 2260 codes nest by prefix. An industry filter likewise takes a GB/T 4754
section letter, division, group or class. Pages are keyset-paginated on the registration's position.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import func, or_, select

from qdsn.errors import InvalidInput, NotFound
from qdsn.identity import organization
from qdsn.ledger import tx
from qdsn.ledger.explorer import Page, _keyset, _paged, limit_of
from qdsn.ledger.store import Store, members

ROLES = ("regulator", "certifier", "enterprise")


def region_prefix(code: str) -> str:
    """The prefix every division inside `code` shares: 33 for a province (330000), 3301 for a prefecture
    (330100), the whole code for a county."""
    organization.region_form(code)
    return code[:2] if code.endswith("0000") else code[:4] if code.endswith("00") else code


def _industry_of(value: str) -> str:
    return organization.industry_form(value.strip().upper())


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(q, region: str | None, industry: str | None, role: str | None, search: str | None):  # type: ignore[no-untyped-def]
    if region:
        q = q.where(members.c.region.like(_like(region_prefix(region.strip())), escape="\\"))
    if industry:
        q = q.where(members.c.industry.like(_like(_industry_of(industry)), escape="\\"))
    if role:
        if role not in ROLES:
            raise InvalidInput(f"{role!r} is not a role", f"choose one of {', '.join(ROLES)}")
        q = q.where(members.c.role == role)
    if search and search.strip():
        s = search.strip()
        q = q.where(or_(members.c.name.like("%" + _like(s)[:-1] + "%", escape="\\"), members.c.did == s,
                        members.c.credit_code == s.upper()))  # fmt: skip
    return q


def _row(r) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    out = {"did": r.did, "seq": r.seq, "role": r.role, "name": r.name}
    for k in ("credit_code", "region", "industry", "address"):
        if getattr(r, k) is not None:
            out[k] = getattr(r, k)
    if r.region is not None:
        out["region_name"] = region_name(r.region)
    return out


@cache  # a few thousand divisions at most; a page of members names the same ones again and again
def region_name(code: str) -> str | None:
    """A division's names from the province down, or None for a code retired since it was recorded."""
    try:
        return organization.region(code).name
    except InvalidInput:
        return None


def members_page(
    store: Store,
    *,
    region: str | None = None,
    industry: str | None = None,
    role: str | None = None,
    search: str | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> Page:
    """Members newest first (by registration), filtered; with how many match in all."""
    n = limit_of(limit)
    q, ascending = _keyset(_filtered(select(members), region, industry, role, search), members.c.seq, before, after, n)
    counted = _filtered(select(func.count()).select_from(members), region, industry, role, search)
    with store.engine.connect() as c:
        rows = c.execute(q).all()
        total = c.execute(counted).scalar_one()
    rows, newer, older = _paged(rows, lambda r: r.seq, n, ascending, before, after)
    filters = {k: v for k, v in (("region", region), ("industry", industry), ("role", role), ("q", search)) if v}
    return Page([_row(r) for r in rows], newer, older, filters | {"total": total})


def member(store: Store, did: str) -> dict[str, Any]:
    """One member's registry record."""
    with store.engine.connect() as c:
        r = c.execute(select(members).where(members.c.did == did)).first()
    if r is None:
        raise NotFound(f"{did[:200]} is not a member of this consortium", "search the registry by name")
    return _row(r)


def by_region(store: Store, level: str = "province") -> list[dict[str, Any]]:
    """How many members each division holds, at the province, prefecture or county level."""
    width = {"province": 2, "prefecture": 4, "county": 6}.get(level)
    if width is None:
        raise InvalidInput(f"{level!r} is not a level", "choose province, prefecture or county")
    prefix = func.substr(members.c.region, 1, width)
    q = (select(prefix.label("p"), func.count()).where(members.c.region.is_not(None))
         .group_by(prefix).order_by(prefix))  # fmt: skip
    with store.engine.connect() as c:
        rows = c.execute(q).all()
    out = []
    for p, k in rows:
        code = p.ljust(6, "0")
        out.append({"region": code, "name": region_name(code), "members": k})
    return out


def registration(did: str, role: str, name: str, key: str | None, credit_code: str | None, region: str | None,
                 industry: str | None, address: str | None) -> dict[str, Any]:  # fmt: skip
    """The `identity.register` payload, every field checked: a wrong check character, a region no longer in
    use or a malformed DID is refused here with what to do, not by the ledger."""
    did, role = did.strip(), tx.role_named(role)
    if did.startswith("did:key:"):
        derived = did.removeprefix("did:key:")
        if key and key != derived:
            raise InvalidInput(f"the key {key} is not the key of {did}", "leave the key out for a did:key")
        key = derived
    elif not key:
        raise InvalidInput(f"{did[:200]} does not name its key", "give the member's key (Multikey z6Mk…)")
    if not name.strip():
        raise InvalidInput("the display name is empty", "give the organisation's name, e.g. 杭州某某电缆有限公司")
    if credit_code:
        credit_code = organization.credit_code_form(credit_code.strip().upper())
    if region:
        region = region.strip()
        organization.region(region)  # in use today, not only well-formed
    if industry:
        industry = _industry_of(industry)
    if address is not None and not address.strip():
        address = None
    fields = {"credit_code": credit_code, "region": region, "industry": industry, "address": address}
    payload = {"did": did, "role": role, "name": name.strip(), "key": key} | {k: v for k, v in fields.items() if v}
    tx.check_payload("identity.register", payload)  # the DID and key forms, as every node checks them
    return payload
