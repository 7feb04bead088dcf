"""Risk classes A–D per enterprise (企业信用风险分类: A lowest risk, D highest), from ledger evidence.

Five factors, each a value in [0, 1] with its weight; a factor's contribution is weight × value × 100
points, and the score is the sum of the contributions, so every class can be explained to the
enterprise line by line. The weights (see docs/architecture.md, "supervision/"):

- sampling inspections 0.30 — the direct measure of what an inspection looks for. SAMR's national
  supervision sampling found 3,476 of 28,265 batches nonconforming in 2023 (12.3 %), and product
  categories differ far more than firms of one category do (from under 1 % to over 80 %), so a firm
  is first put at its industry's rate on the ledger (GB/T 4754 division, shrunk to the national rate
  with a prior of 20 inspections), and its own results move it from there (a prior of 4).
- certificates 0.20 — suspensions and revocations of the firm's certificates (a certified process
  that lapses is a process out of control); no certificate is "unknown", half the scale.
- attested capability 0.20 — attested model runs that suspended a certificate (failed) against runs a
  certificate was issued or reinstated on (passed), smoothed; no attested run is "unknown".
- quality notifications 0.20 — the notifications about the firm's products (investigations it received,
  alerts it raised itself), by severity and by how it handled them; any one enterprise's notifications
  about it count for at most half the factor, so a competitor cannot class a firm by filing them.
- data freshness 0.10 — days since the firm's last anchored batch: a firm whose data stopped
  flowing is one the network no longer sees.

This module is pure: `Evidence` in, `Assessment` out; `supervision.evidence` reads the `Evidence` off a ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from qdsn.errors import InvalidInput

MODEL = "qdsn-risk/1"
BASE_RATE = 0.123  # SAMR, 2023 national supervision sampling: 3,476 of 28,265 batches nonconforming
PRIOR = 4.0  # the industry's rate counts as this many of the firm's own inspections
INDUSTRY_PRIOR = 20.0  # the national rate counts as this many of an industry's inspections
WEIGHTS: dict[str, float] = {
    "inspections": 0.30,
    "certificates": 0.20,
    "capability": 0.20,
    "notifications": 0.20,
    "freshness": 0.10,
}
THRESHOLDS = (("A", 25.0), ("B", 40.0), ("C", 55.0))  # score below → class; D at 55 and above
SEVERITY = {"MINOR": 0.25, "MAJOR": 0.5, "CRITICAL": 0.75, "LIFE-THREATENING": 1.0}
STALE_DAYS = 180  # a half-year without an anchored batch counts as fully stale

FACTOR_NAMES = {
    "inspections": ("sampling inspections", "监督抽查结果"),
    "certificates": ("certificate status history", "证书状态记录"),
    "capability": ("attested process capability", "经证明的过程能力"),
    "notifications": ("quality notifications and handling", "质量通报及处理"),
    "freshness": ("data freshness", "数据新鲜度"),
}
CLASS_NAMES = {"A": "低风险", "B": "一般风险", "C": "较高风险", "D": "高风险"}


@dataclass(frozen=True)
class Notice:
    """A quality notification about an enterprise's products: an investigation it received (CX-0125:
    sent upstream to the suspected supplier) or an alert it raised itself (sent downstream about its own
    problem); its severity, the states it reached, and who sent it (`by`: the sender's role)."""

    severity: str
    states: tuple[str, ...]
    sender: str = ""
    by: str = "enterprise"
    own: bool = False  # an alert the enterprise raised itself


@dataclass(frozen=True)
class Evidence:
    """What the ledger shows of one enterprise up to a point of the log."""

    enterprise: str
    certificates: int = 0
    suspensions: int = 0  # credential.status → suspended
    revocations: int = 0  # credential.status → invalid
    runs: int = 0  # compute.attest entries
    runs_failed: int = 0  # attested runs that suspended a certificate
    runs_passed: int = 0  # attested runs a certificate was issued or reinstated on
    notices: tuple[Notice, ...] = ()  # the notifications about its products
    inspections: int = 0
    inspections_failed: int = 0
    last_anchor: date | None = None
    industry: str | None = None  # GB/T 4754 division, e.g. C38
    industry_rate: float | None = None  # its pooled nonconformity (`industry_rate`)

    def __post_init__(self) -> None:
        counts = ("certificates", "suspensions", "revocations", "runs", "runs_failed", "runs_passed", "inspections",
                  "inspections_failed")  # fmt: skip
        for name in counts:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"evidence of {self.enterprise}: {name} must be a count (an integer ≥ 0), "
                                   f"not {value!r}")  # fmt: skip
        if self.inspections_failed > self.inspections:
            raise InvalidInput(f"evidence of {self.enterprise}: {self.inspections_failed} failed of "
                               f"{self.inspections} inspections")  # fmt: skip
        if self.industry_rate is not None and not 0 <= self.industry_rate <= 1:
            raise InvalidInput(f"evidence of {self.enterprise}: an industry rate is a share from 0 to 1")
        for n in self.notices:
            if n.severity not in SEVERITY:
                raise InvalidInput(f"evidence of {self.enterprise}: severity {n.severity!r} is not one of "
                                   f"{', '.join(SEVERITY)}")  # fmt: skip


def industry_rate(inspections: int, failed: int) -> float:
    """An industry's nonconformity from the results on the ledger, shrunk to the national base rate."""
    return (failed + INDUSTRY_PRIOR * BASE_RATE) / (inspections + INDUSTRY_PRIOR)


@dataclass(frozen=True)
class Factor:
    """One line of an explanation: the factor, its weight, its value, its points, and why."""

    name: str
    weight: float
    value: float
    contribution: float  # points: weight × value × 100, rounded to 2 decimals
    why: str
    why_zh: str

    def to_json(self) -> dict[str, Any]:
        en, zh = FACTOR_NAMES[self.name]
        return {"factor": self.name, "title": en, "title_zh": zh, "weight": self.weight, "value": self.value,
                "contribution": self.contribution, "why": self.why, "why_zh": self.why_zh}  # fmt: skip


@dataclass(frozen=True)
class Assessment:
    """An enterprise's score (0–100 points, the sum of its factors' contributions) and class."""

    enterprise: str
    score: float
    risk_class: str
    factors: tuple[Factor, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"enterprise": self.enterprise, "score": self.score, "class": self.risk_class,
                "class_zh": CLASS_NAMES[self.risk_class], "model": MODEL,
                "factors": [f.to_json() for f in self.factors]}  # fmt: skip


def classify(score: float) -> str:
    """The class of a score: A below 25 points, B below 40, C below 55, D from 55."""
    for name, below in THRESHOLDS:
        if score < below:
            return name
    return "D"


def assess(ev: Evidence, as_of: date) -> Assessment:
    """The risk score and class of one enterprise, each factor with its weight and contribution."""
    values = [
        ("inspections", *_inspections(ev)),
        ("certificates", *_certificates(ev)),
        ("capability", *_capability(ev)),
        ("notifications", *_notifications(ev)),
        ("freshness", *_freshness(ev, as_of)),
    ]
    factors = tuple(
        Factor(name, WEIGHTS[name], round(v, 4), round(WEIGHTS[name] * v * 100, 2), why, zh)
        for name, v, why, zh in values
    )
    score = round(sum(f.contribution for f in factors), 2)
    return Assessment(ev.enterprise, score, classify(score), factors)


def score(ev: Evidence, as_of: date) -> float:
    """The score `assess` gives, without the explanation: the factors' values by the same arithmetic, so that
    a region's enterprises are ranked in one quick pass and only the ones shown are explained."""
    prior = BASE_RATE if ev.industry_rate is None else ev.industry_rate
    inspections = min(1.0, 2 * ((ev.inspections_failed + PRIOR * prior) / (ev.inspections + PRIOR)))
    certificates = min(1.0, (ev.suspensions + 2 * ev.revocations) / (ev.certificates + 1)) if ev.certificates else 0.5
    judged = ev.runs_failed + ev.runs_passed
    capability = (ev.runs_failed + 0.5) / (judged + 1) if judged else 0.5
    notifications = _notifications(ev)[0] if ev.notices else 0.0
    freshness = 1.0 if ev.last_anchor is None else min(1.0, max(0, (as_of - ev.last_anchor).days) / STALE_DAYS)
    values = (inspections, certificates, capability, notifications, freshness)
    return round(sum(round(WEIGHTS[name] * v * 100, 2) for name, v in zip(WEIGHTS, values, strict=True)), 2)


def _inspections(ev: Evidence) -> tuple[float, str, str]:
    n, bad = ev.inspections, ev.inspections_failed
    prior = BASE_RATE if ev.industry_rate is None else ev.industry_rate
    rate = (bad + PRIOR * prior) / (n + PRIOR)
    if ev.industry_rate is None:
        start, start_zh = f"the national rate {BASE_RATE:.1%}", f"全国基准不合格率 {BASE_RATE:.1%}"
    else:
        start, start_zh = f"industry {ev.industry} at {prior:.1%}", f"行业 {ev.industry} 不合格率 {prior:.1%}"
    return (min(1.0, 2 * rate), f"{bad} of {n} inspections failed, from {start}: estimated nonconformity {rate:.1%}",
            f"{n} 次抽查中 {bad} 次不合格，起点为{start_zh}：估计不合格率 {rate:.1%}")  # fmt: skip


def _certificates(ev: Evidence) -> tuple[float, str, str]:
    if not ev.certificates:
        return 0.5, "no certificate on the ledger: unknown", "账本上无证书：未知"
    v = min(1.0, (ev.suspensions + 2 * ev.revocations) / (ev.certificates + 1))
    return (v, f"{ev.certificates} certificates, {ev.suspensions} suspensions, {ev.revocations} revocations",
            f"{ev.certificates} 张证书，暂停 {ev.suspensions} 次，撤销 {ev.revocations} 次")  # fmt: skip


def _capability(ev: Evidence) -> tuple[float, str, str]:
    judged = ev.runs_failed + ev.runs_passed
    if not judged:
        return 0.5, f"{ev.runs} attested runs, none judged by a certifier: unknown", \
            f"{ev.runs} 次经证明的运行，无认证机构判定：未知"  # fmt: skip
    v = (ev.runs_failed + 0.5) / (judged + 1)
    return (v, f"{ev.runs_failed} attested runs failed, {ev.runs_passed} passed",
            f"经证明的运行：{ev.runs_failed} 次未通过，{ev.runs_passed} 次通过")  # fmt: skip


def _handling(n: Notice) -> float:
    """How much a notification weighs by what became of it."""
    states = set(n.states)
    if "CANCELED" in states or states <= {"CREATED"}:
        return 0.0  # withdrawn, or never sent
    if n.own:
        return 0.5  # the firm disclosed its own problem: counted, but less, so that disclosing pays
    if "ACCEPTED" in states:
        return 1.0  # the problem confirmed by the firm itself
    if "DECLINED" in states:
        return 0.5  # disputed: half the weight
    if "ACKNOWLEDGED" in states:
        return 0.75  # being handled
    return 1.0  # left unanswered, or closed without an answer


ENTERPRISE_CAP = 0.5  # the most one enterprise's notifications about another can add to the factor


def _notifications(ev: Evidence) -> tuple[float, str, str]:
    counted = [n for n in ev.notices if _handling(n) > 0]
    if not counted:
        return 0.0, "no quality notification about its products", "无涉及其产品的质量通报"
    by_sender: dict[str, float] = defaultdict(float)
    total = 0.0
    for n in counted:
        weight = SEVERITY[n.severity] * _handling(n)
        if n.by not in ("regulator", "certifier") and not n.own:  # another enterprise, or a sender unknown
            by_sender[n.sender] += weight
        else:
            total += weight
    total += sum(min(ENTERPRISE_CAP, w) for w in by_sender.values())
    own = sum(n.own for n in counted)
    open_ = sum(1 for n in counted if not n.own and not {"ACCEPTED", "DECLINED", "ACKNOWLEDGED"} & set(n.states))
    return (min(1.0, total), f"{len(counted) - own} notifications received ({open_} unanswered), {own} own alerts",
            f"收到 {len(counted) - own} 条质量通报（{open_} 条未答复），自行发出警报 {own} 条")  # fmt: skip


def _freshness(ev: Evidence, as_of: date) -> tuple[float, str, str]:
    if ev.last_anchor is None:
        return 1.0, "no data anchored on the ledger", "账本上无锚定数据"
    days = max(0, (as_of - ev.last_anchor).days)
    return (min(1.0, days / STALE_DAYS), f"last batch anchored {days} days before {as_of}",
            f"最近一次数据锚定在 {as_of} 前 {days} 天")  # fmt: skip


def assess_all(evidence: Mapping[str, Evidence], as_of: date) -> dict[str, Assessment]:
    """Every enterprise's assessment, keyed by DID."""
    return {did: assess(ev, as_of) for did, ev in evidence.items()}


def explain(a: Assessment) -> list[str]:
    """The explanation of a class as lines for the enterprise (English, then Chinese)."""
    lines = [f"class {a.risk_class} ({CLASS_NAMES[a.risk_class]}): {a.score:.2f} points of 100 "
             f"(A < 25 ≤ B < 40 ≤ C < 55 ≤ D), model {MODEL}"]  # fmt: skip
    for f in a.factors:
        en, zh = FACTOR_NAMES[f.name]
        lines.append(f"  {en} / {zh}: weight {f.weight:.2f} × value {f.value:.4f} = {f.contribution:.2f} points — "
                     f"{f.why}；{f.why_zh}")  # fmt: skip
    return lines


def as_of_date(text: str | None, today: date) -> date:
    """The date a user gave (YYYY-MM-DD), or today; a clear refusal otherwise."""
    if text is None:
        return today
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--as-of {text!r} is not a date", "give it as YYYY-MM-DD, e.g. 2026-03-31") from None
