"""A job's result as a certification body holds it: read from whatever document a person hands over,
and shown as the figures it attests, not only their hash.

Accepted: a compact attestation (JWS) alone; a result file as `qdsn jobs result` writes it
(`{"output", "attestation", …}`); or a job as `GET /jobs/ID` gives it (its `result` inside). Anything
else is refused with what it is and what to give instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from qdsn.errors import InvalidInput

GIVE = "give the file `qdsn jobs result URL JOB --out result.json` wrote, or an attestation (compact JWS)"
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class JobResult:
    """An attestation, the output it attests (None when only the attestation was given), and — from a
    result file — the job, the node it ran on and the nonce it was asked with."""

    attestation: str
    output: dict[str, Any] | None = None
    job: str | None = None
    node: str | None = None
    nonce: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result file: what `qdsn attest verify` and `qdsn cert issue` read."""
        doc = {"job": self.job, "node": self.node, "nonce": self.nonce, "output": self.output,
               "attestation": self.attestation}  # fmt: skip
        return {k: v for k, v in doc.items() if v is not None}


def read(text: str, source: str = "the document") -> JobResult:
    """The job result in `text` (see the module's note); InvalidInput saying what is wrong otherwise."""
    text = text.strip()
    if not text:
        raise InvalidInput(f"{source} is empty", GIVE)
    if not text.startswith(("{", "[")):
        if _JWS.fullmatch(text):
            return JobResult(text)
        raise InvalidInput(f"{source} is neither JSON nor an attestation (compact JWS)", GIVE)
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"{source} is not whole JSON (truncated or damaged?): {e}", GIVE) from None
    return from_json(doc, source)


def from_json(doc: Any, source: str = "the document") -> JobResult:
    """The job result in a parsed JSON document: a result file or a job (`GET /jobs/ID`)."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source} is JSON but not an object holding a job's result", GIVE)
    if "attestation" not in doc and "state" in doc and "id" in doc:  # a job as GET /jobs/ID gives it
        state, job = doc.get("state"), doc.get("id")
        if state != "done" or not isinstance(doc.get("result"), dict):
            why = f": {doc['reason']}" if isinstance(doc.get("reason"), str) else ""
            raise InvalidInput(
                f"{source} is job {str(job)[:80]}, which is {str(state)[:20]}{why[:300]}: it has no attested result",
                "wait until the owner approved it and it ran (qdsn jobs status)",
            )
        inner = doc["result"]
        return _result(inner, source, job=job if isinstance(job, str) else None, nonce=_str(doc.get("nonce")))
    return _result(doc, source, job=_str(doc.get("job")), nonce=_str(doc.get("nonce")), node=_str(doc.get("node")))


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def _result(doc: dict[str, Any], source: str, **about: str | None) -> JobResult:
    att, output = doc.get("attestation"), doc.get("output")
    if not isinstance(att, str) or not _JWS.fullmatch(att.strip()):
        raise InvalidInput(f'{source} holds no attestation (a compact JWS under "attestation")', GIVE)
    if output is not None and not isinstance(output, dict):
        raise InvalidInput(f"{source}: the output is not a JSON object", GIVE)
    return JobResult(att.strip(), output, **about)


def rows(output: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The figures of an attested output as (result, value, verdict) rows: its overall verdict first, each
    characteristic's figures under its name, and every other field as it is; verdict is pass, fail or ''."""
    out: list[tuple[str, str, str]] = []
    if isinstance(output.get("pass"), bool):
        out.append(("overall", "", _verdict(output["pass"])))
    for key, value in output.items():
        if key == "pass":
            continue
        if key == "characteristics" and isinstance(value, list):
            for i, c in enumerate(value, 1):
                if not isinstance(c, dict):
                    out.append((f"characteristic {i}", _text(c), ""))
                    continue
                name = str(c.get("name", f"characteristic {i}"))
                verdict = _verdict(c["pass"]) if isinstance(c.get("pass"), bool) else ""
                figures = [(k, v) for k, v in c.items() if k not in ("name", "pass")]
                for n, (k, v) in enumerate(figures or [("", "")]):
                    out.append((f"{name} {k}".strip(), _text(v), verdict if n == 0 else ""))
            continue
        out.append((key, _text(value), ""))
    return out


def _verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"
