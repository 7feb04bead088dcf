"""Certification schemes: which published model a certificate's scheme is judged by, and what the
attested output of that model must show for the run to back a certificate. A verifier applies the
same rules as the issuer, so a certificate cannot claim more than its runs showed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The least a run may be judged against: a certifier may ask for more (Cpk 1.33 or 1.67, a lower
# ppm limit) but a run judged more leniently does not back a certificate of the scheme.
MIN_CPK = 1.0  # below it the process's ±3σ spread does not fit its tolerance: capable under no reading
MIN_COMPLETENESS = 0.98  # the data-integrity model's own default


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _capability(out: dict[str, Any]) -> list[str]:
    chars = out.get("characteristics")
    if not isinstance(chars, list) or not chars:
        return ["it judged no characteristic"]
    bad = [] if _num(out.get("threshold")) and out["threshold"] >= MIN_CPK else [
        f"it was judged against Cpk {out.get('threshold')}, below the scheme's {MIN_CPK}"]  # fmt: skip
    for c in chars:
        low = c.get("cpk_lower") if isinstance(c, dict) else None
        if not _num(low) or low < MIN_CPK or c.get("pass") is not True:
            name = c.get("name") if isinstance(c, dict) else c
            bad.append(f"{name}: Cpk lower bound {low} is below the scheme's {MIN_CPK}")
    return bad


def _stability(out: dict[str, Any]) -> list[str]:
    chars = out.get("characteristics")
    if not isinstance(chars, list) or not chars:
        return ["it judged no characteristic"]
    return [f"{c.get('name')}: out of statistical control" for c in chars
            if not isinstance(c, dict) or c.get("pass") is not True or any(
                not _num(v) or v for v in (c.get("violations") or {}).values())]  # fmt: skip


def _defects(out: dict[str, Any]) -> list[str]:
    up, limit = out.get("ppm_upper"), out.get("limit_ppm")
    if not _num(up) or not _num(limit) or up > limit:
        return [f"the defect rate's upper bound {up} ppm exceeds the limit {limit} ppm"]
    return []


def _sampling(out: dict[str, Any]) -> list[str]:
    bad = [f"{k} = {out.get(k)}" for k in ("rejected", "wrong_decisions") if out.get(k)]
    return bad + (["sampling inspection was discontinued"] if out.get("state") == "discontinued" else [])


def _integrity(out: dict[str, Any]) -> list[str]:
    c = out.get("completeness")
    if not _num(c) or c < MIN_COMPLETENESS:
        return [f"completeness {c} is below the scheme's {MIN_COMPLETENESS}"]
    return []


def _low_carbon(out: dict[str, Any]) -> list[str]:
    """A low-carbon product: its attested footprint at or below the threshold it was judged against,
    from a named and hashed emission factor table."""
    from decimal import Decimal, InvalidOperation

    try:
        pcf, limit = Decimal(str(out.get("pcf"))), Decimal(str(out.get("threshold")))
    except InvalidOperation:
        return [f"footprint {str(out.get('pcf'))[:40]} or threshold {str(out.get('threshold'))[:40]} is not a decimal"]
    table = out.get("table")
    bad = [] if isinstance(table, dict) and table.get("sha256") else ["the run names no emission factor table"]
    return bad + ([f"footprint {pcf} exceeds the threshold {limit}"] if not pcf.is_finite() or pcf > limit else [])


# scheme → (the model it is judged by, what its output must show besides "pass": true)
SCHEMES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "process-capability": ("process-capability", _capability),
    "spc-stability": ("spc-stability", _stability),
    "defect-rate": ("defect-rate", _defects),
    "sampling-compliance": ("sampling-compliance", _sampling),
    "data-integrity": ("data-integrity", _integrity),
    "product-footprint": ("product-footprint", _low_carbon),  # a low-carbon product certificate
}


def model_of(scheme: str) -> str | None:
    """The published model (its id, any version) whose runs back a certificate of `scheme`."""
    return SCHEMES[scheme][0] if scheme in SCHEMES else None


def shortfalls(scheme: str, output: Any) -> list[str]:
    """Why an attested `output` does not meet `scheme`'s criteria; empty when it does."""
    if scheme not in SCHEMES:
        return [f"scheme {scheme!r} is not judged by any model run"]
    if not isinstance(output, dict):
        return ["the attested output is not a JSON object"]
    bad = [] if output.get("pass") is True else ["the run did not pass"]
    return bad + SCHEMES[scheme][1](output)
