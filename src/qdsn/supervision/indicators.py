"""Evaluation indicators (成效评估指标体系): per enterprise and per region, from the ledger, and the
enterprise's digital quality management capability level (检验级, 保证级, 预防级, 卓越级) with the criteria
met and missed.

The factors are pure functions over plain records (`Facts`, lists of dicts); `read_facts` is the only reader,
one pass over the log's entries of the types it needs. Notifications (`notification.transition`) and
inspection results (`inspection.result`) are read by their published payloads only: on a log that holds none
(or where the type is not known) they are simply empty.

What the ledger does not hold is said, never guessed: an attested run's output is on the ledger only as its
hash, so Cpk, ppm and the device-signed share are known where the output is (the maker's own node, which
verifies each against its attestation: `verified_outputs`); elsewhere they are "not shown". A region's process
figures go through the private statistics (Prio3 with differential privacy: `privacy/indicators.py`, `qdsn stats
report --indicator cpk|ppm`), whose released figures `region` shows beside the ledger-derived ones.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select

from qdsn.clock import parse_time
from qdsn.errors import InvalidInput, NotFound
from qdsn.ledger import Ledger, tx
from qdsn.ledger.store import entries, members

FRESH_DAYS = 30  # an anchor older than this is stale: the data is no longer kept current
YEAR = timedelta(days=365)
RESPONDED = ("ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED")  # a recipient's answer to a notification
LEVELS = ("检验级", "保证级", "预防级", "卓越级")
LEVEL_NAMES = {"检验级": "inspection", "保证级": "assurance", "预防级": "prevention", "卓越级": "excellence"}


# -- plain records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """An attested model run: its model (id@version), when it was recorded, the datasets it read, and its
    output when this reader holds it (verified against the attestation), else None."""

    txid: str
    seq: int
    model: str
    at: datetime
    datasets: tuple[str, ...]
    output: dict[str, Any] | None = None

    @property
    def model_id(self) -> str:
        return self.model.split("@")[0]


@dataclass(frozen=True)
class Certificate:
    """A certificate held by the enterprise: status, when issued (entry and time), the models of the runs
    it rests on, and when its status was last set to suspended (if ever)."""

    id: str
    status: str
    seq: int
    at: datetime
    models: tuple[str, ...]
    suspended_at: tuple[datetime, ...] = ()


@dataclass
class Facts:
    """Everything the indicators of one enterprise are computed from, as plain records."""

    did: str
    name: str
    region: str | None = None
    industry: str | None = None
    declared: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dataset → characteristics declared
    shredded: set[str] = field(default_factory=set)
    anchors: dict[str, list[datetime]] = field(default_factory=dict)  # dataset → its anchors' times
    runs: list[Run] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # received: {id, severity, history}
    inspections: list[dict[str, Any]] = field(default_factory=list)  # inspection.result payloads
    suspended: str | None = None  # the regulator's reason, while its membership is suspended


@dataclass(frozen=True)
class Indicator:
    """One figure: its group, key, names in English and Chinese, value (None: not known here) and how it came."""

    group: str
    key: str
    name: str
    zh: str
    value: float | int | str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Criterion:
    """One criterion of a capability level: met, missed, or — `met` None — not known from this evidence."""

    level: str
    key: str
    text: str
    met: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"level_en": LEVEL_NAMES[self.level]}


@dataclass(frozen=True)
class Assessment:
    """An enterprise's level (None: not yet 检验级), its indicators and every criterion with its outcome."""

    did: str
    name: str
    level: str | None
    indicators: list[Indicator]
    criteria: list[Criterion]

    def to_json(self) -> dict[str, Any]:
        return {"did": self.did, "name": self.name, "level": self.level,
                "level_en": LEVEL_NAMES.get(self.level or ""),
                "indicators": [i.to_json() for i in self.indicators],
                "criteria": [c.to_json() for c in self.criteria]}  # fmt: skip


# -- pure factors ----------------------------------------------------------------------------------------


def _latest(runs: Iterable[Run], model_id: str) -> list[Run]:
    """The runs of one model whose output is known, newest first."""
    return sorted((r for r in runs if r.model_id == model_id and r.output is not None), key=lambda r: r.seq,
                  reverse=True)  # fmt: skip


def coverage(declared: dict[str, tuple[str, ...]], runs: Iterable[Run]) -> tuple[float | None, int, int]:
    """(share, covered, declared) of the declared characteristics that lie in a dataset some attested run read."""
    read = {d for r in runs for d in r.datasets}
    total = sum(len(c) for c in declared.values())
    covered = sum(len(c) for d, c in declared.items() if d in read)
    return (covered / total if total else None), covered, total


def freshness(anchors: dict[str, list[datetime]], live: Iterable[str],
              now: datetime) -> tuple[float | None, float | None]:  # fmt: skip
    """(days since the newest anchor of any dataset, share of live datasets anchored within FRESH_DAYS)."""
    live = list(live)
    last = {d: max(anchors[d]) for d in live if anchors.get(d)}
    if not live:
        return None, None
    newest = (now - max(last.values())).total_seconds() / 86400 if last else None
    fresh = sum(1 for t in last.values() if now - t <= timedelta(days=FRESH_DAYS))
    return newest, fresh / len(live)


def share_anchored(declared: Iterable[str], anchors: dict[str, list[datetime]]) -> float | None:
    """The share of declared datasets with at least one anchored batch."""
    names = list(declared)
    return sum(1 for d in names if anchors.get(d)) / len(names) if names else None


def share_signed(runs: Iterable[Run]) -> float | None:
    """The device-signed share of readings in the newest attested data-integrity run, if its output is known."""
    got = _latest(runs, "data-integrity")
    value = got[0].output.get("signed") if got and got[0].output else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def cpks(runs: Iterable[Run]) -> dict[str, float]:
    """Each characteristic's Cpk in its newest attested process-capability run whose output is known."""
    out: dict[str, float] = {}
    for r in reversed(_latest(runs, "process-capability")):  # oldest first: newer runs overwrite
        for c in r.output.get("characteristics", []) if r.output else []:
            if isinstance(c, dict) and isinstance(c.get("cpk"), int | float) and not isinstance(c.get("cpk"), bool):
                out[str(c.get("name"))] = float(c["cpk"])
    return out


def ppm(runs: Iterable[Run]) -> float | None:
    """Nonconforming ppm of the newest attested defect-rate run whose output is known."""
    got = _latest(runs, "defect-rate")
    value = got[0].output.get("ppm") if got and got[0].output else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def certification(certs: Sequence[Certificate], runs: Sequence[Run], now: datetime) -> dict[str, Any]:
    """Counts by status; continuous-certification coverage (the share of valid certificates with an attested
    run of their model after issue); certificates suspended within the last year."""
    counts = {s: sum(1 for c in certs if c.status == s) for s in ("valid", "suspended", "invalid")}
    valid = [c for c in certs if c.status == "valid"]
    rechecked = [c for c in valid if any(r.seq > c.seq and r.model_id in c.models for r in runs)]
    recent = [c for c in certs if any(now - t <= YEAR for t in c.suspended_at)]
    return counts | {"continuous": len(rechecked) / len(valid) if valid else None, "suspended_in_year": len(recent)}


def response_hours(notifications: Iterable[dict[str, Any]], now: datetime) -> tuple[float | None, int, int]:
    """(median hours from SENT to the recipient's first answer, answered, open and unanswered) over the
    notifications received; each history is [(state, at)] in order."""
    hours, waiting = [], 0
    for n in notifications:
        sent = next((at for state, at in n["history"] if state == "SENT"), None)
        if sent is None:
            continue
        answer = next((at for state, at in n["history"] if state in RESPONDED and at >= sent), None)
        if answer is None:
            waiting += 1
        else:
            hours.append((answer - sent).total_seconds() / 3600)
    return (statistics.median(hours) if hours else None), len(hours), waiting


def hit_rate(inspections: Iterable[dict[str, Any]], since: datetime | None = None) -> tuple[float | None, int, int]:
    """(share failed, failed, total) of sampling-inspection results, from `since` (a date) on when given."""
    rows = [i for i in inspections if since is None or _day(i.get("date")) >= since.date()]
    failed = sum(1 for i in rows if i.get("passed") is False)
    return (failed / len(rows) if rows else None), failed, len(rows)


def _day(value: Any) -> Any:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date()
    except ValueError:
        return datetime.min.date()  # an unreadable date counts as old, never as recent


def indicators(f: Facts, now: datetime) -> list[Indicator]:
    """The indicator set of one enterprise."""
    live = [d for d in f.declared if d not in f.shredded]
    share, covered, total = coverage(f.declared, f.runs)
    newest, fresh = freshness(f.anchors, live, now)
    anchored = share_anchored(f.declared, f.anchors)
    signed = share_signed(f.runs)
    cp = cpks(f.runs)
    defects = ppm(f.runs)
    cert = certification(f.certificates, f.runs, now)
    median, answered, waiting = response_hours(f.notifications, now)
    hits, failed, inspected = hit_rate(f.inspections)
    unknown = "not shown: the attested output is the maker's (the ledger holds its hash)"
    return [
        Indicator(
            "data",
            "coverage",
            "characteristics covered by attested runs",
            "特性覆盖率",
            share,
            f"{covered} of {total} declared characteristics",
        ),
        Indicator(
            "data",
            "freshness_days",
            "days since the last anchor",
            "数据时效（天）",
            None if newest is None else round(newest, 1),
            "newest dataset.anchor, by its recorded time",
        ),
        Indicator(
            "data",
            "fresh",
            f"datasets anchored within {FRESH_DAYS} days",
            "数据及时率",
            fresh,
            f"of {len(live)} live datasets",
        ),
        Indicator("data", "anchored", "datasets anchored", "上链存证率", anchored, f"of {len(f.declared)} declared"),
        Indicator(
            "data",
            "signed",
            "readings signed by a registered device",
            "设备签名率",
            signed,
            "newest attested data-integrity run" if signed is not None else unknown,
        ),
        Indicator(
            "process",
            "cpk_min",
            "lowest attested Cpk",
            "最低过程能力指数",
            min(cp.values()) if cp else None,
            ", ".join(f"{k} {v:.2f}" for k, v in sorted(cp.items())) or unknown,
        ),
        Indicator(
            "process",
            "cpk_median",
            "median attested Cpk",
            "过程能力指数中位数",
            statistics.median(cp.values()) if cp else None,
            f"over {len(cp)} characteristics",
        ),
        Indicator(
            "process",
            "ppm",
            "nonconforming ppm (attested)",
            "不合格品率（ppm）",
            defects,
            "newest attested defect-rate run" if defects is not None else unknown,
        ),
        Indicator("certification", "valid", "valid certificates", "有效证书", cert["valid"], "on the ledger"),
        Indicator(
            "certification",
            "suspended",
            "suspended certificates",
            "暂停证书",
            cert["suspended"],
            f"{cert['invalid']} revoked; {cert['suspended_in_year']} suspended within a year",
        ),
        Indicator(
            "certification",
            "continuous",
            "valid certificates re-checked since issue",
            "连续认证覆盖率",
            cert["continuous"],
            "an attested run of the certificate's model after its credential.issue",
        ),
        Indicator(
            "supervision",
            "response_hours",
            "median notification response (hours)",
            "通报响应时间（小时）",
            None if median is None else round(median, 1),
            f"{answered} answered, {waiting} awaiting an answer",
        ),
        Indicator(
            "supervision",
            "hit_rate",
            "sampling inspections failed",
            "抽查不合格率",
            hits,
            f"{failed} of {inspected} results",
        ),
    ]


def _value(ind: Sequence[Indicator], key: str) -> Any:
    return next(i.value for i in ind if i.key == key)


def assess(f: Facts, now: datetime) -> Assessment:
    """The enterprise's indicators and capability level: the highest level whose criteria, and those of
    every level below it, are all met (see docs/architecture.md, "Capability levels")."""
    ind = indicators(f, now)
    v = {i.key: i.value for i in ind}
    cert = certification(f.certificates, f.runs, now)
    cp = cpks(f.runs)
    capable_cert = [
        c.id for c in f.certificates if c.status == "valid" and {"process-capability", "spc-stability"} & set(c.models)
    ]
    _, failed_year, _ = hit_rate(f.inspections, now - YEAR)
    median, _, waiting = response_hours(f.notifications, now)

    def at_least(key: str, low: float) -> bool | None:
        return None if v[key] is None else v[key] >= low

    def at_most(key: str, high: float) -> bool | None:
        return None if v[key] is None else v[key] <= high

    with_specs = sum(1 for c in f.declared.values() if c)
    cpk_ok: bool | None = (min(cp.values()) >= 1.33) if cp else (True if capable_cert else None)
    cpk_how = (f"lowest attested Cpk {min(cp.values()):.2f}" if cp else
               f"valid certificate {capable_cert[0]} judged the process capable" if capable_cert else
               "no attested Cpk shown and no valid process-capability or stability certificate")  # fmt: skip
    c = [
        Criterion(
            "检验级",
            "declared",
            "quality characteristics declared with their limits 已声明质量特性",
            with_specs > 0,
            f"{with_specs} declared dataset{'' if with_specs == 1 else 's'} with characteristics",
        ),
        Criterion(
            "检验级",
            "recorded",
            "quality records anchored on the ledger 检验数据上链",
            bool(v["anchored"]),
            f"share anchored {percent(v['anchored'])}",
        ),
        Criterion(
            "保证级",
            "all_anchored",
            "every declared dataset anchored 全部数据集存证",
            at_least("anchored", 1.0),
            f"share anchored {percent(v['anchored'])}",
        ),
        Criterion(
            "保证级",
            "certified",
            "a valid certificate 持有有效认证",
            cert["valid"] > 0,
            f"{cert['valid']} valid, {cert['suspended']} suspended",
        ),
        Criterion(
            "保证级",
            "inspections",
            "no failed sampling inspection within a year 一年内无抽查不合格",
            failed_year == 0,
            f"{failed_year} failed within a year",
        ),
        Criterion(
            "保证级",
            "standing",
            "not suspended by the regulator 未被监管暂停",
            f.suspended is None,
            f"suspended: {f.suspended}" if f.suspended else "no suspension in force",
        ),
        Criterion(
            "预防级",
            "coverage",
            "≥ 80 % of characteristics under attested runs 特性覆盖率≥80%",
            at_least("coverage", 0.8),
            f"coverage {percent(v['coverage'])}",
        ),
        Criterion(
            "预防级",
            "fresh",
            f"every live dataset anchored within {FRESH_DAYS} days 数据及时",
            at_least("fresh", 1.0),
            f"fresh {percent(v['fresh'])}",
        ),
        Criterion(
            "预防级",
            "continuous",
            "every valid certificate re-checked by continuous certification 连续认证",
            at_least("continuous", 1.0),
            f"coverage {percent(v['continuous'])}",
        ),
        Criterion(
            "预防级", "capable", "process capable: Cpk ≥ 1.33 on every characteristic 过程能力充足", cpk_ok, cpk_how
        ),
        Criterion(
            "卓越级",
            "cpk",
            "Cpk ≥ 1.67 on every characteristic 过程能力卓越",
            at_least("cpk_min", 1.67),
            "from attested outputs only" if v["cpk_min"] is None else f"lowest {v['cpk_min']:.2f}",
        ),
        Criterion(
            "卓越级",
            "ppm",
            "nonconforming ≤ 100 ppm 不合格品率≤100ppm",
            at_most("ppm", 100),
            "from attested outputs only" if v["ppm"] is None else f"{v['ppm']:g} ppm",
        ),
        Criterion(
            "卓越级",
            "signed",
            "≥ 90 % of readings device-signed 设备签名≥90%",
            at_least("signed", 0.9),
            f"signed {percent(v['signed'])}",
        ),
        Criterion(
            "卓越级",
            "responsive",
            "notifications answered within 48 h (median), none waiting 通报及时响应",
            waiting == 0 and (median is None or median <= 48),
            f"median {'—' if median is None else f'{median:.1f} h'}, {waiting} waiting",
        ),
        Criterion(
            "卓越级",
            "no_suspension",
            "no certificate suspended within a year 一年内无证书暂停",
            cert["suspended_in_year"] == 0 and cert["suspended"] == 0,
            f"{cert['suspended_in_year']} suspended within a year",
        ),
    ]
    level = None
    for name in LEVELS:
        if all(x.met is True for x in c if x.level == name):
            level = name
        else:
            break
    return Assessment(f.did, f.name, level, ind, c)


def percent(x: Any) -> str:
    """A share as a person reads it: 97 %, or — when not known."""
    return "—" if x is None else f"{100 * x:.0f} %"


def region_summary(assessments: Sequence[Assessment]) -> dict[str, Any]:
    """A region's indicators from its enterprises' (all of them on the consortium's ledger, which every member
    sees, so no privacy mechanism is needed for these): levels counted, and each indicator's median."""
    levels = {name: sum(1 for a in assessments if a.level == name) for name in LEVELS}
    levels["—"] = sum(1 for a in assessments if a.level is None)
    medians: dict[str, Any] = {}
    for key in ("coverage", "freshness_days", "fresh", "anchored", "continuous", "response_hours", "hit_rate"):
        values = [_value(a.indicators, key) for a in assessments]
        known = [x for x in values if x is not None]
        medians[key] = {"median": statistics.median(known) if known else None, "known": len(known)}
    totals = {k: sum(_value(a.indicators, k) or 0 for a in assessments) for k in ("valid", "suspended")}
    return {"enterprises": len(assessments), "levels": levels, "medians": medians, "certificates": totals}


# -- readers ---------------------------------------------------------------------------------------------


def in_region(code: str, region: str | None) -> bool:
    """Whether a GB/T 2260 `region` lies in `code` (a province 33 or 330000, a prefecture 3301 or 330100, a
    county 330106)."""
    prefix = code
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return region is not None and region.startswith(prefix)


def region_code(code: str) -> str:
    """A region code as given: 2, 4 or 6 digits."""
    code = code.strip()
    if not code.isdigit() or len(code) not in (2, 4, 6):
        raise InvalidInput(f"{code!r} is not a GB/T 2260 region code", "give 2, 4 or 6 digits, e.g. 33, 3301 or 330106")
    return code


def _time(env: tx.Envelope) -> datetime:
    return parse_time(env.created)


FEW = 5000  # enterprises read by their own entries (the submitter index); more read each type's entries once
OWN = ("dataset.declare", "dataset.shred", "dataset.anchor", "compute.attest")  # the types an enterprise submits


def _leaf(leaf: bytes) -> tuple[dict[str, Any], datetime]:
    """A stored leaf's payload and time. The store holds only leaves the validator accepted, so they are read as
    plain JSON (`tx.from_leaf` checks the canonical form again, which costs more than the read on a long log)."""
    obj = orjson.loads(leaf)
    return obj["payload"], parse_time(obj["created"])


def _rows(store: Any, type: str) -> Iterator[tuple[int, str, str, bytes]]:
    """(seq, txid, submitter, leaf) of every entry of one type, in log order."""
    q = select(entries.c.seq, entries.c.txid, entries.c.submitter, entries.c.leaf).where(entries.c.type == type)
    with store.engine.connect() as c:
        for seq, txid, submitter, leaf in c.execute(q.order_by(entries.c.seq)):
            yield seq, txid.hex(), submitter, leaf


def _own_rows(store: Any, submitters: Sequence[str], types: Sequence[str]) -> dict[str, list[tuple]]:
    """type -> (seq, txid, submitter, leaf) of the entries of `types` these submitters made, in log order: read
    on the submitter index alone (a condition on the type too lets a database walk that type's index instead,
    every enterprise's entries), so a page of enterprises costs their own entries."""
    out: dict[str, list[tuple]] = {t: [] for t in types}
    q = select(entries.c.seq, entries.c.txid, entries.c.type, entries.c.submitter, entries.c.leaf)
    with store.engine.connect() as c:
        for i in range(0, len(submitters), 400):
            chunk = submitters[i : i + 400]
            for seq, txid, type, submitter, leaf in c.execute(q.where(entries.c.submitter.in_(chunk))):
                if type in out:
                    out[type].append((seq, txid.hex(), submitter, leaf))
    for rows in out.values():
        rows.sort()
    return out


def registrations(store: Any, dids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """DID -> its region and industry, as its `identity.register` gave them (the member registry's rows)."""
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as c:
        for i in range(0, len(dids), 400):
            q = select(members.c.did, members.c.region, members.c.industry).where(members.c.did.in_(dids[i : i + 400]))
            out.update({d: {"region": r, "industry": ind} for d, r, ind in c.execute(q)})
    return out


def read_facts(ledger: Ledger, dids: Iterable[str] | None = None,
               outputs: dict[str, dict[str, Any]] | None = None) -> dict[str, Facts]:  # fmt: skip
    """The facts of the enterprises `dids` (default every enterprise) from the log's entries of the types they
    need: a few enterprises from their own entries (and their certificates' runs), many from one pass over
    each type; `outputs` maps an attestation (its JWS) to its verified output."""
    state = ledger.state
    wanted = [d for d in (dids if dids is not None else state.identities) if d in state.identities]
    wanted = [d for d in dict.fromkeys(wanted) if state.identities[d].role == "enterprise"]
    facts: dict[str, Facts] = {}
    store = ledger.store
    regs = registrations(store, wanted)
    for did in wanted:
        reg = regs.get(did) or ledger.registration(did)
        held = state.suspension("member", did)
        facts[did] = Facts(did, state.identities[did].name, reg.get("region"), reg.get("industry"),
                           suspended=held.reason if held else None)  # fmt: skip
    few = list(facts) if len(facts) <= FEW else None
    own = _own_rows(store, few, OWN) if few is not None else None

    def rows(type: str) -> Iterable[tuple[int, str, str, bytes]]:
        return own[type] if own is not None else _rows(store, type)

    for _, _, submitter, leaf in rows("dataset.declare"):
        if submitter in facts:
            p = orjson.loads(leaf)["payload"]
            facts[submitter].declared[p["dataset"]] = tuple(c["name"] for c in p.get("characteristics", []))
    for _, _, submitter, leaf in rows("dataset.shred"):
        if submitter in facts:
            facts[submitter].shredded.add(orjson.loads(leaf)["payload"]["dataset"])
    for _, _, submitter, leaf in rows("dataset.anchor"):
        if submitter in facts:
            p, at = _leaf(leaf)
            facts[submitter].anchors.setdefault(p["dataset"], []).append(at)
    runs: dict[str, Run] = {}

    def run(seq: int, txid: str, leaf: bytes) -> Run:
        p, at = _leaf(leaf)
        runs[txid] = Run(txid, seq, p["model"], at, tuple(p["datasets"]), (outputs or {}).get(p["attestation"]))
        return runs[txid]

    for seq, txid, submitter, leaf in rows("compute.attest"):
        made = run(seq, txid, leaf)
        if submitter in facts:
            facts[submitter].runs.append(made)
    suspended: dict[str, list[datetime]] = defaultdict(list)
    for _, _, _, leaf in _rows(store, "credential.status"):
        p, at = _leaf(leaf)
        if p["status"] == "suspended":
            suspended[p["credential"]].append(at)
    if few is None:
        issued: Iterable[tuple[int, bytes]] = ((seq, leaf) for seq, *_, leaf in _rows(store, "credential.issue"))
    else:  # the certificates of these enterprises, from the state's index of them, and the runs they rest on
        held = sorted(c.issued for c in state.credentials.values() if c.subject in facts)
        issued = [(seq, store.entry(seq).leaf) for seq in held]
    for seq, leaf in issued:
        p, at = _leaf(leaf)
        rec = state.credentials.get(p["credential"])
        if p["subject"] in facts and rec is not None:
            if few is not None:
                for t in p.get("attestations", []):
                    if t not in runs and (row := _entry(store, t)) is not None and row.type == "compute.attest":
                        run(row.seq, row.txid, row.leaf)
            models = tuple(sorted({runs[t].model_id for t in p.get("attestations", []) if t in runs}))
            facts[p["subject"]].certificates.append(Certificate(rec.id, rec.status, seq, at, models,
                                                                tuple(suspended.get(rec.id, ()))))  # fmt: skip
    for n in notifications(ledger):
        if n["recipient"] in facts:
            facts[n["recipient"]].notifications.append(n)
    for _, _, _, leaf in _rows(store, "inspection.result"):
        p = orjson.loads(leaf)["payload"]
        if isinstance(p, dict) and p.get("enterprise") in facts:
            facts[p["enterprise"]].inspections.append(p)
    return facts


def _entry(store: Any, txid: str) -> Any:
    """The entry with this id, or None (an attestation named that is not an entry of this log)."""
    try:
        return store.entry(txid=txid)
    except (NotFound, ValueError):
        return None


def notifications(ledger: Ledger) -> list[dict[str, Any]]:
    """Quality notifications as plain records {id, sender, recipient, severity, history [(state, at)]} from
    their `notification.transition` entries; none on a log that holds none."""
    byid: dict[str, dict[str, Any]] = {}
    for row in ledger.store.rows_of_type("notification.transition"):
        env = tx.from_leaf(row.leaf)
        p = env.payload
        if not isinstance(p, dict) or not isinstance(p.get("notification"), str):
            continue
        n = byid.setdefault(p["notification"], {"id": p["notification"], "sender": p.get("sender"),
                                                "recipient": p.get("recipient"), "severity": p.get("severity"),
                                                "history": []})  # fmt: skip
        n["history"].append((str(p.get("state")), _time(env)))
    return list(byid.values())


def enterprise(ledger: Ledger, did: str, now: datetime, outputs: dict[str, dict[str, Any]] | None = None) -> Assessment:
    """The assessment of one enterprise on this ledger."""
    ident = ledger.state.identities.get(did)
    if ident is None:
        raise NotFound(f"{did} is not registered on this ledger", "see the members: qdsn member list")
    if ident.role != "enterprise":
        raise InvalidInput(f"{did} is a {ident.role}: indicators are an enterprise's", "name a manufacturer's DID")
    return assess(read_facts(ledger, [did], outputs)[did], now)


def _prefix(code: str) -> str:
    """What the regions inside `code` begin with (as `in_region` reads it)."""
    prefix = code
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


def _in_region(code: str) -> Any:
    """The member registry's enterprises registered in region `code`."""
    like = _prefix(region_code(code)) + "%"  # digits only: nothing to escape
    return (members.c.role == "enterprise", members.c.region.like(like))


def region_members(ledger: Ledger, code: str, offset: int = 0, limit: int | None = None) -> tuple[int, list[str]]:
    """How many enterprises are registered in region `code`, and the DIDs of `limit` of them (all when None)
    from `offset`, by name and DID: one range of the member registry, whatever the region holds."""
    where = _in_region(code)
    q = select(members.c.did).where(*where).order_by(members.c.name, members.c.did).offset(offset)
    with ledger.store.engine.connect() as c:
        total = c.execute(select(func.count()).select_from(members).where(*where)).scalar_one()
        dids = [d for (d,) in c.execute(q if limit is None else q.limit(limit))]
    return total, dids


def region(ledger: Ledger, code: str, now: datetime) -> tuple[list[Assessment], dict[str, Any]]:
    """Every enterprise registered in region `code` assessed, and the region's summary."""
    code = region_code(code)
    with ledger.store.engine.connect() as c:
        dids = [d for (d,) in c.execute(select(members.c.did).where(*_in_region(code)).order_by(members.c.seq))]
    facts = read_facts(ledger, dids)
    inside = [assess(f, now) for f in facts.values() if in_region(code, f.region)]
    return inside, region_summary(inside)


def verified_outputs(ledger: Ledger, results: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """attestation → output for the job results ({attestation, output}) whose output is the one the
    attestation signs and whose attestation verifies on this ledger; the rest are left out."""
    from qdsn.compute import attest
    from qdsn.errors import QDSNError

    out = {}
    for r in results:
        token, output = r.get("attestation"), r.get("output")
        if not isinstance(token, str) or not isinstance(output, dict):
            continue
        try:
            attest.verify(token, ledger, output=output)
        except QDSNError:
            continue
        out[token] = output
    return out
